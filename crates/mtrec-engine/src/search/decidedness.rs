//! How decided the search was when it fixed each choice: the normalised entropy of every block
//! when it was fixed (0: one op had all the weight, 1: a uniform draw) and `|p - 1/2|` of every
//! gate when it was binarised (0: a coin flip, 1/2: certain). A search whose choices are fixed
//! at entropy ~1 and margin ~0 exported a random architecture, whatever its test figures.

use mtrec_arch::automtl::Decision;
use serde::{Deserialize, Serialize};

/// Targets of a search that decides (issue 11): median block entropy at fixing at most this.
pub const MAX_MEDIAN_BLOCK_ENTROPY: f64 = 0.9;
/// ... and median gate margin `|p - 1/2|` at binarisation at least this.
pub const MIN_MEDIAN_GATE_MARGIN: f64 = 0.2;

/// Summary of a set of discretisation decisions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Decidedness {
    pub blocks_fixed: usize,
    /// Median normalised entropy of the blocks when fixed (`None`: no block fixed).
    pub median_block_entropy: Option<f64>,
    pub max_block_entropy: Option<f64>,
    pub gates_fixed: usize,
    /// Median `|p - 1/2|` of the gates when binarised.
    pub median_gate_margin: Option<f64>,
    pub min_gate_margin: Option<f64>,
}

impl Decidedness {
    /// Whether both medians meet the targets (a kind with no decision counts as met).
    pub fn meets_targets(&self) -> bool {
        self.median_block_entropy
            .is_none_or(|h| h <= MAX_MEDIAN_BLOCK_ENTROPY)
            && self
                .median_gate_margin
                .is_none_or(|m| m >= MIN_MEDIAN_GATE_MARGIN)
    }
}

/// The decidedness of `decisions` (block scores are entropies, gate scores keep-probabilities).
pub fn decidedness<'a>(decisions: impl IntoIterator<Item = &'a Decision>) -> Decidedness {
    let mut entropies = Vec::new();
    let mut margins = Vec::new();
    for d in decisions {
        match d.kind.as_str() {
            "block" => entropies.push(d.score),
            "gate" => margins.push((d.score - 0.5).abs()),
            _ => {}
        }
    }
    Decidedness {
        blocks_fixed: entropies.len(),
        median_block_entropy: median(&mut entropies),
        max_block_entropy: entropies.iter().copied().reduce(f64::max),
        gates_fixed: margins.len(),
        median_gate_margin: median(&mut margins),
        min_gate_margin: margins.iter().copied().reduce(f64::min),
    }
}

/// The middle value (mean of the two middle ones for an even count).
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(kind: &str, score: f64) -> Decision {
        Decision {
            kind: kind.into(),
            target: "x".into(),
            choice: "y".into(),
            score,
        }
    }

    /// A hand-made log: entropies 0.2, 0.95, 0.5, 0.7 (median (0.5 + 0.7) / 2 = 0.6), gate
    /// probabilities 0.9, 0.45, 0.1 (margins 0.4, 0.05, 0.4: median 0.4, min 0.05).
    #[test]
    fn medians_and_extremes_of_a_hand_made_log() {
        let log = [
            decision("block", 0.2),
            decision("gate", 0.9),
            decision("block", 0.95),
            decision("gate", 0.45),
            decision("block", 0.5),
            decision("gate", 0.1),
            decision("block", 0.7),
        ];
        let d = decidedness(&log);
        assert_eq!(d.blocks_fixed, 4);
        assert!((d.median_block_entropy.unwrap() - 0.6).abs() < 1e-12);
        assert_eq!(d.max_block_entropy, Some(0.95));
        assert_eq!(d.gates_fixed, 3);
        assert!((d.median_gate_margin.unwrap() - 0.4).abs() < 1e-12);
        assert!((d.min_gate_margin.unwrap() - 0.05).abs() < 1e-12);
        assert!(d.meets_targets());
        // The authors' defaults on Census: everything fixed near the undecided point.
        let undecided = [decision("block", 0.9999), decision("gate", 0.51)];
        assert!(!decidedness(&undecided).meets_targets());
        assert_eq!(decidedness(&[]), Decidedness::default());
    }
}
