//! Exact area under the ROC curve.
//!
//! AUC is the probability that a randomly drawn positive scores above a
//! randomly drawn negative, a tie counting one half. With `P` positives, `N`
//! negatives and average ranks `r_i` (1-based, ascending scores, tied scores
//! sharing the mean of their ranks), that is the Mann-Whitney statistic
//!
//! ```text
//! U   = sum_{i positive} r_i - P (P + 1) / 2
//!     = #{(p, n): s_p > s_n} + 1/2 #{(p, n): s_p = s_n}
//! AUC = U / (P N)
//! ```
//!
//! We sort once and walk the groups of tied scores from the lowest up: a group
//! with `p` positives and `q` negatives above `below` negatives adds
//! `p * below + p * q / 2` to `U`. Counting `2U` in integers keeps the result
//! exact up to the final division; cost `O(n log n)` time, `O(n)` memory.
//! This equals scikit-learn's `roc_auc_score` on binary labels.

use std::cmp::Ordering;

use crate::error::{MetricError, check_inputs, weighted_rows};

/// Exact ROC AUC of `scores` against 0/1 `labels` (a label `> 0.5` is
/// positive). Scores may be logits or probabilities: only their order counts.
///
/// # Errors
/// [`MetricError::LengthMismatch`], [`MetricError::Empty`],
/// [`MetricError::NonFinite`] for bad input, and
/// [`MetricError::SingleClass`] when all labels are on one side.
pub fn auc(scores: &[f32], labels: &[f32]) -> Result<f64, MetricError> {
    check_inputs(scores, labels)?;
    let positives = labels.iter().filter(|&&y| is_positive(y)).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return Err(MetricError::SingleClass {
            positives,
            negatives,
        });
    }

    let mut ranked: Vec<(f32, bool)> = scores
        .iter()
        .zip(labels)
        .map(|(&s, &y)| (s, is_positive(y)))
        .collect();
    // Scores are finite (checked above), so `partial_cmp` is total here and,
    // unlike `total_cmp`, treats -0.0 and 0.0 as the tie they are.
    ranked.sort_unstable_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(Ordering::Equal));

    let mut twice_u: u128 = 0;
    let mut negatives_below: u128 = 0;
    for group in ranked.chunk_by(|a, b| a.0 == b.0) {
        let p = group.iter().filter(|(_, pos)| *pos).count() as u128;
        let q = group.len() as u128 - p;
        twice_u += p * (2 * negatives_below + q);
        negatives_below += q;
    }
    Ok(twice_u as f64 / (2.0 * positives as f64 * negatives as f64))
}

/// ROC AUC with example weights: the probability that a positive outranks a negative when
/// each is drawn with probability proportional to its weight, ties counting one half,
///
/// ```text
/// AUC_w = sum_{i pos, j neg} w_i w_j ([s_i > s_j] + 1/2 [s_i = s_j]) / (W_pos W_neg)
/// ```
///
/// with `W_pos`, `W_neg` the weight sums of the positives and negatives. Computed like
/// [`auc`], one sort and a walk over the groups of tied scores (`O(n log n)`), with weight
/// sums in `f64` in place of counts; with every weight 1 it is [`auc`]. Rows of weight 0 drop
/// out entirely (a masked label, a row a conditional task does not score).
///
/// # Errors
/// [`MetricError::LengthMismatch`], [`MetricError::WeightLengthMismatch`],
/// [`MetricError::BadWeight`] (negative or non-finite), [`MetricError::Empty`] (no weight
/// above 0), [`MetricError::NonFinite`], and [`MetricError::SingleClass`] when the rows of
/// positive weight hold one class only.
pub fn weighted_auc(scores: &[f32], labels: &[f32], weights: &[f32]) -> Result<f64, MetricError> {
    let kept = weighted_rows(scores, labels, weights)?;
    let positives = kept.iter().filter(|&&i| is_positive(labels[i])).count();
    let negatives = kept.len() - positives;
    if positives == 0 || negatives == 0 {
        return Err(MetricError::SingleClass {
            positives,
            negatives,
        });
    }
    let mut ranked: Vec<(f32, bool, f64)> = kept
        .iter()
        .map(|&i| (scores[i], is_positive(labels[i]), f64::from(weights[i])))
        .collect();
    ranked.sort_unstable_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(Ordering::Equal));

    let (mut u, mut negatives_below, mut w_pos) = (0.0f64, 0.0f64, 0.0f64);
    for group in ranked.chunk_by(|a, b| a.0 == b.0) {
        let p: f64 = group.iter().filter(|r| r.1).map(|r| r.2).sum();
        let q: f64 = group.iter().filter(|r| !r.1).map(|r| r.2).sum();
        u += p * (negatives_below + 0.5 * q);
        negatives_below += q;
        w_pos += p;
    }
    Ok(u / (w_pos * negatives_below))
}

/// The label convention shared by every binary metric in this crate.
fn is_positive(label: f32) -> bool {
    label > 0.5
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn hand_example_without_ties() {
        // scikit-learn's doc example: labels [0,0,1,1], scores [.1,.4,.35,.8].
        // Pairs (pos, neg): (.35,.1)=1 (.35,.4)=0 (.8,.1)=1 (.8,.4)=1 -> 3/4.
        let got = auc(&[0.1, 0.4, 0.35, 0.8], &[0.0, 0.0, 1.0, 1.0]).unwrap();
        assert!(close(got, 0.75), "{got}");
    }

    #[test]
    fn hand_example_with_ties_between_classes() {
        // positives: .9, .4, .2    negatives: .4, .3, .4
        //   .9 vs (.4, .3, .4) = 1 + 1 + 1     = 3
        //   .4 vs (.4, .3, .4) = .5 + 1 + .5   = 2
        //   .2 vs (.4, .3, .4) = 0 + 0 + 0     = 0
        // U = 5 of 3 * 3 = 9 pairs -> 5/9.
        // Check by ranks: sorted .2 .3 .4 .4 .4 .9 -> ranks 1 2 4 4 4 6;
        // positives hold 6 + 4 + 1 = 11, U = 11 - 3*4/2 = 5.
        let scores = [0.9, 0.4, 0.4, 0.3, 0.2, 0.4];
        let labels = [1.0, 1.0, 0.0, 0.0, 1.0, 0.0];
        let got = auc(&scores, &labels).unwrap();
        assert!(close(got, 5.0 / 9.0), "{got}");
    }

    #[test]
    fn all_tied_is_one_half() {
        let got = auc(&[0.3; 5], &[1.0, 0.0, 0.0, 1.0, 0.0]).unwrap();
        assert!(close(got, 0.5), "{got}");
    }

    #[test]
    fn signed_zeros_tie() {
        let got = auc(&[-0.0, 0.0], &[1.0, 0.0]).unwrap();
        assert!(close(got, 0.5), "{got}");
    }

    #[test]
    fn perfect_and_reversed() {
        let labels = [0.0, 0.0, 1.0, 0.0, 1.0, 1.0];
        let perfect = [-3.0, -2.0, 5.0, -1.0, 6.0, 7.0];
        let reversed: Vec<f32> = perfect.iter().map(|s| -s).collect();
        assert!(close(auc(&perfect, &labels).unwrap(), 1.0));
        assert!(close(auc(&reversed, &labels).unwrap(), 0.0));
    }

    #[test]
    fn labels_split_at_one_half() {
        // 0.7 is positive, 0.5 is not.
        let got = auc(&[0.2, 0.8], &[0.5, 0.7]).unwrap();
        assert!(close(got, 1.0), "{got}");
    }

    #[test]
    fn single_class_is_an_error() {
        assert_eq!(
            auc(&[0.1, 0.2, 0.3], &[1.0, 1.0, 1.0]),
            Err(MetricError::SingleClass {
                positives: 3,
                negatives: 0
            })
        );
        assert_eq!(
            auc(&[0.1, 0.2], &[0.0, 0.0]),
            Err(MetricError::SingleClass {
                positives: 0,
                negatives: 2
            })
        );
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(auc(&[], &[]), Err(MetricError::Empty));
        assert_eq!(
            auc(&[0.1], &[1.0, 0.0]),
            Err(MetricError::LengthMismatch {
                scores: 1,
                labels: 2
            })
        );
        assert_eq!(
            auc(&[0.1, f32::NAN], &[1.0, 0.0]),
            Err(MetricError::non_finite(1, false))
        );
    }

    /// Knuth's MMIX linear congruential generator; enough randomness for a
    /// test and no dependency.
    struct Lcg(u64);

    impl Lcg {
        fn next_below(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }

    /// The definition itself: every (positive, negative) pair, ties one half.
    fn brute_force_auc(scores: &[f32], labels: &[f32]) -> f64 {
        let mut twice_u = 0u64;
        let (mut p, mut n) = (0u64, 0u64);
        for (i, (&si, &yi)) in scores.iter().zip(labels).enumerate() {
            if yi > 0.5 {
                p += 1;
            } else {
                n += 1;
                continue;
            }
            for (j, (&sj, &yj)) in scores.iter().zip(labels).enumerate() {
                if i == j || yj > 0.5 {
                    continue;
                }
                twice_u += match si.partial_cmp(&sj) {
                    Some(Ordering::Greater) => 2,
                    Some(Ordering::Equal) => 1,
                    _ => 0,
                };
            }
        }
        twice_u as f64 / (2.0 * p as f64 * n as f64)
    }

    /// The weighted definition itself: every (positive, negative) pair weighs `w_i w_j`.
    fn brute_force_weighted_auc(scores: &[f32], labels: &[f32], weights: &[f32]) -> f64 {
        let (mut u, mut wp, mut wn) = (0.0f64, 0.0f64, 0.0f64);
        for i in 0..scores.len() {
            let wi = f64::from(weights[i]);
            if labels[i] > 0.5 {
                wp += wi;
            } else {
                wn += wi;
                continue;
            }
            for j in 0..scores.len() {
                if labels[j] > 0.5 {
                    continue;
                }
                let wj = f64::from(weights[j]);
                u += wi
                    * wj
                    * match scores[i].partial_cmp(&scores[j]) {
                        Some(Ordering::Greater) => 1.0,
                        Some(Ordering::Equal) => 0.5,
                        _ => 0.0,
                    };
            }
        }
        u / (wp * wn)
    }

    #[test]
    fn weighted_hand_example() {
        // positives: s = .9 (w 2), .4 (w 1); negatives: s = .4 (w 3), .1 (w 1), .8 (w 0).
        // The weight-0 negative drops out. Pairs, w_i w_j times the outcome:
        //   .9 vs .4: 2*3*1 = 6    .9 vs .1: 2*1*1 = 2
        //   .4 vs .4: 1*3*0.5 = 1.5 .4 vs .1: 1*1*1 = 1
        // sum 10.5 over W_pos W_neg = 3 * 4 = 12 -> 0.875.
        let scores = [0.9, 0.4, 0.4, 0.1, 0.8];
        let labels = [1.0, 1.0, 0.0, 0.0, 0.0];
        let weights = [2.0, 1.0, 3.0, 1.0, 0.0];
        let got = weighted_auc(&scores, &labels, &weights).unwrap();
        assert!(close(got, 0.875), "{got}");
        // Unit weights give the plain AUC: .9 beats all three, .4 ties .4, beats .1, loses
        // to .8: (3 + 1.5) / 6 = 0.75.
        let ones = [1.0; 5];
        assert!(close(weighted_auc(&scores, &labels, &ones).unwrap(), 0.75));
        assert!(close(auc(&scores, &labels).unwrap(), 0.75));
        // An integer weight counts as that many copies of the row.
        let copies_s = [0.9, 0.9, 0.4, 0.4, 0.4, 0.4, 0.1];
        let copies_y = [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0];
        assert!(close(auc(&copies_s, &copies_y).unwrap(), 0.875));
    }

    #[test]
    fn weighted_matches_brute_force_and_rejects_bad_weights() {
        let mut rng = Lcg(7);
        for round in 0..40 {
            let n = 2 + rng.next_below(200) as usize;
            let levels = 1 + rng.next_below(if round % 2 == 0 { 4 } else { 40 });
            let scores: Vec<f32> = (0..n)
                .map(|_| rng.next_below(levels) as f32 / levels as f32)
                .collect();
            let mut labels: Vec<f32> = (0..n).map(|_| rng.next_below(2) as f32).collect();
            // Weights in {0, 0.25, ..., 2}, with a non-zero weight on one row of each class.
            let mut weights: Vec<f32> = (0..n).map(|_| rng.next_below(9) as f32 / 4.0).collect();
            labels[0] = 0.0;
            labels[1] = 1.0;
            weights[0] = 0.5;
            weights[1] = 1.5;
            let fast = weighted_auc(&scores, &labels, &weights).unwrap();
            let slow = brute_force_weighted_auc(&scores, &labels, &weights);
            assert!(
                (fast - slow).abs() < 1e-12,
                "round {round}: fast={fast} slow={slow}"
            );
        }
        assert_eq!(
            weighted_auc(&[0.1, 0.2], &[1.0, 0.0], &[1.0, -1.0]),
            Err(MetricError::BadWeight {
                index: 1,
                row: 2,
                value: "-1".into()
            })
        );
        assert!(matches!(
            weighted_auc(&[0.1, 0.2], &[1.0, 0.0], &[f32::NAN, 1.0]),
            Err(MetricError::BadWeight { row: 1, .. })
        ));
        assert_eq!(
            weighted_auc(&[0.1, 0.2], &[1.0, 0.0], &[1.0]),
            Err(MetricError::WeightLengthMismatch {
                rows: 2,
                weights: 1
            })
        );
        assert_eq!(
            weighted_auc(&[0.1, 0.2], &[1.0, 0.0], &[0.0, 0.0]),
            Err(MetricError::Empty)
        );
        // The only negative has weight 0: one class is left.
        assert_eq!(
            weighted_auc(&[0.1, 0.2, 0.3], &[1.0, 0.0, 1.0], &[1.0, 0.0, 2.0]),
            Err(MetricError::SingleClass {
                positives: 2,
                negatives: 0
            })
        );
        // A non-finite prediction on a row of weight 0 is never looked at.
        let got = weighted_auc(&[0.1, f32::NAN, 0.3], &[0.0, 1.0, 1.0], &[1.0, 0.0, 1.0]);
        assert_eq!(got, Ok(1.0));
    }

    #[test]
    fn matches_brute_force_on_random_data_with_many_ties() {
        let mut rng = Lcg(42);
        for round in 0..50 {
            let n = 2 + rng.next_below(300) as usize;
            // Few distinct score values -> many ties, also across classes.
            let levels = 1 + rng.next_below(if round % 2 == 0 { 5 } else { 50 });
            let scores: Vec<f32> = (0..n)
                .map(|_| rng.next_below(levels) as f32 / levels as f32 - 0.5)
                .collect();
            let mut labels: Vec<f32> = (0..n).map(|_| rng.next_below(2) as f32).collect();
            labels[0] = 0.0;
            labels[1] = 1.0;
            let fast = auc(&scores, &labels).unwrap();
            let slow = brute_force_auc(&scores, &labels);
            assert!(
                close(fast, slow),
                "round {round}: n={n} fast={fast} slow={slow}"
            );
        }
    }
}
