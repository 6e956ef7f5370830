//! Binary logloss (mean binary cross-entropy).
//!
//! ```text
//! logloss = -1/n sum_i [ y_i ln p_i + (1 - y_i) ln(1 - p_i) ],
//! p_i     = clamp(prob_i, 1e-7, 1 - 1e-7)
//! ```
//!
//! computed in `f64`. The clamp keeps a confident wrong prediction (`p = 0`
//! for a positive) finite, at `-ln(1e-7) ~ 16.1`, the usual convention of
//! recommender benchmarks. Labels enter as they are, so soft labels in
//! `[0, 1]` give the cross-entropy PyTorch's `BCELoss` gives.

use crate::error::{MetricError, check_inputs, weighted_rows};

/// Probabilities are clamped to `[EPS, 1 - EPS]` before the logarithm.
pub const EPS: f64 = 1e-7;

/// Mean binary cross-entropy of probabilities `probs` (not logits) against
/// `labels` in `[0, 1]`.
///
/// # Errors
/// [`MetricError::LengthMismatch`], [`MetricError::Empty`],
/// [`MetricError::NonFinite`].
pub fn logloss(probs: &[f32], labels: &[f32]) -> Result<f64, MetricError> {
    check_inputs(probs, labels)?;
    let total: f64 = probs
        .iter()
        .zip(labels)
        .map(|(&p, &y)| {
            let p = f64::from(p).clamp(EPS, 1.0 - EPS);
            let y = f64::from(y);
            -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
        })
        .sum();
    Ok(total / probs.len() as f64)
}

/// Weighted mean binary cross-entropy, `sum_i w_i l_i / sum_i w_i` with `l_i` the term of
/// [`logloss`]; rows of weight 0 drop out. With every weight 1 it is [`logloss`].
///
/// # Errors
/// Those of [`logloss`], plus [`MetricError::WeightLengthMismatch`] and
/// [`MetricError::BadWeight`]; [`MetricError::Empty`] when no weight is above 0.
pub fn weighted_logloss(
    probs: &[f32],
    labels: &[f32],
    weights: &[f32],
) -> Result<f64, MetricError> {
    let kept = weighted_rows(probs, labels, weights)?;
    let (mut total, mut weight) = (0.0f64, 0.0f64);
    for i in kept {
        let p = f64::from(probs[i]).clamp(EPS, 1.0 - EPS);
        let y = f64::from(labels[i]);
        let w = f64::from(weights[i]);
        total += -w * (y * p.ln() + (1.0 - y) * (1.0 - p).ln());
        weight += w;
    }
    Ok(total / weight)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_hand_value() {
        // Rows (p, y, w): (0.9, 1, 3), (0.2, 0, 1), (0.6, 1, 0).
        // (3 * -ln 0.9 + 1 * -ln 0.8) / 4 = (3 * 0.1053605 + 0.2231436) / 4 = 0.1348063.
        let got = weighted_logloss(&[0.9, 0.2, 0.6], &[1.0, 0.0, 1.0], &[3.0, 1.0, 0.0]).unwrap();
        let want = (3.0 * -(0.9f32 as f64).ln() - (1.0 - 0.2f32 as f64).ln()) / 4.0;
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        assert!((got - 0.1348063).abs() < 1e-6, "{got}");
        let ones = weighted_logloss(&[0.9, 0.2], &[1.0, 0.0], &[1.0, 1.0]).unwrap();
        assert!((ones - logloss(&[0.9, 0.2], &[1.0, 0.0]).unwrap()).abs() < 1e-15);
    }

    #[test]
    fn hand_value() {
        // -(ln 0.9 + ln(1 - 0.2)) / 2 = (0.1053605 + 0.2231436) / 2 = 0.1642520
        let got = logloss(&[0.9, 0.2], &[1.0, 0.0]).unwrap();
        let want = -((0.9f32 as f64).ln() + (1.0 - 0.2f32 as f64).ln()) / 2.0;
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        assert!((got - 0.164252).abs() < 1e-6, "{got}");
    }

    #[test]
    fn clamps_certain_predictions() {
        // Wrong and certain: each term is -ln(1e-7).
        let got = logloss(&[0.0, 1.0], &[1.0, 0.0]).unwrap();
        assert!(got.is_finite());
        assert!((got - (-(1e-7f64).ln())).abs() < 1e-6, "{got}");
        // Right and certain: each term is -ln(1 - 1e-7) ~ 1e-7.
        let got = logloss(&[1.0, 0.0], &[1.0, 0.0]).unwrap();
        assert!(got > 0.0 && got < 2e-7, "{got}");
    }

    #[test]
    fn coin_flip_is_ln2() {
        let got = logloss(&[0.5; 4], &[1.0, 0.0, 1.0, 0.0]).unwrap();
        assert!((got - std::f64::consts::LN_2).abs() < 1e-12, "{got}");
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(logloss(&[], &[]), Err(MetricError::Empty));
        assert_eq!(
            logloss(&[0.5, 0.5], &[1.0]),
            Err(MetricError::LengthMismatch {
                scores: 2,
                labels: 1
            })
        );
        assert_eq!(
            logloss(&[0.5, f32::INFINITY], &[1.0, 0.0]),
            Err(MetricError::non_finite(1, false))
        );
    }
}
