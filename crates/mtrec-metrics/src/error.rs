//! The one error type of `mtrec-metrics`, and the input checks shared by every
//! metric.

use thiserror::Error;

/// Why a metric could not be computed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum MetricError {
    /// AUC needs at least one positive and one negative label.
    #[error(
        "AUC is undefined for a single class: {positives} positive and {negatives} negative labels"
    )]
    SingleClass {
        /// Labels `> 0.5`.
        positives: usize,
        /// Labels `<= 0.5`.
        negatives: usize,
    },
    /// Predictions and labels differ in length.
    #[error("length mismatch: {scores} predictions but {labels} labels")]
    LengthMismatch {
        /// Number of predictions (scores, probabilities or regression outputs).
        scores: usize,
        /// Number of labels (or regression targets).
        labels: usize,
    },
    /// No examples at all.
    #[error("cannot compute a metric over zero examples")]
    Empty,
    /// A prediction or label is NaN or infinite. The message names which and the row
    /// (1-based within the split) so a user can tell a diverged model from a bad label.
    #[error("{operand} of row {row} is not finite (NaN or infinite){}", operand.cause())]
    NonFinite {
        /// Position of the first offending example, 0-based.
        index: usize,
        /// 1-based row, for the message.
        row: usize,
        /// Whether the prediction or the label is non-finite (the prediction when both are).
        operand: Operand,
    },
    /// An example weight is negative or not finite: a weight is how many times a row counts,
    /// so neither has a meaning. `value` is the weight as written.
    #[error("the weight of row {row} is {value}: example weights must be finite and >= 0")]
    BadWeight {
        /// Position of the first offending example, 0-based.
        index: usize,
        /// 1-based row, for the message.
        row: usize,
        value: String,
    },
    /// Weights and examples differ in number.
    #[error("length mismatch: {rows} examples but {weights} weights")]
    WeightLengthMismatch { rows: usize, weights: usize },
}

/// Which input of a metric was bad.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    Prediction,
    Label,
}

impl Operand {
    fn cause(self) -> &'static str {
        match self {
            Operand::Prediction => {
                ": the model's output is non-finite; training diverged (lower the learning \
                 rate) or an input feature is non-finite"
            }
            Operand::Label => "",
        }
    }
}

impl std::fmt::Display for Operand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Operand::Prediction => "the prediction",
            Operand::Label => "the label",
        })
    }
}

impl MetricError {
    /// The `NonFinite` error for example `index`, naming the prediction when it is bad.
    pub(crate) fn non_finite(index: usize, prediction_is_finite: bool) -> Self {
        MetricError::NonFinite {
            index,
            row: index + 1,
            operand: if prediction_is_finite {
                Operand::Label
            } else {
                Operand::Prediction
            },
        }
    }
}

/// Checks what every metric requires of its inputs, in this order: equal
/// lengths, at least one example, every prediction and label finite.
pub(crate) fn check_inputs(preds: &[f32], labels: &[f32]) -> Result<(), MetricError> {
    if preds.len() != labels.len() {
        return Err(MetricError::LengthMismatch {
            scores: preds.len(),
            labels: labels.len(),
        });
    }
    if preds.is_empty() {
        return Err(MetricError::Empty);
    }
    match preds
        .iter()
        .zip(labels)
        .position(|(p, y)| !p.is_finite() || !y.is_finite())
    {
        Some(index) => Err(MetricError::non_finite(index, preds[index].is_finite())),
        None => Ok(()),
    }
}

/// The examples of a weighted metric that count: the indices whose weight is above 0, after
/// checking lengths and that every weight is finite and >= 0. Rows of weight 0 drop out before
/// any other check (a masked label's prediction is never looked at); then at least one example
/// must remain and its prediction and label be finite.
pub(crate) fn weighted_rows(
    preds: &[f32],
    labels: &[f32],
    weights: &[f32],
) -> Result<Vec<usize>, MetricError> {
    if preds.len() != labels.len() {
        return Err(MetricError::LengthMismatch {
            scores: preds.len(),
            labels: labels.len(),
        });
    }
    if weights.len() != preds.len() {
        return Err(MetricError::WeightLengthMismatch {
            rows: preds.len(),
            weights: weights.len(),
        });
    }
    if let Some(index) = weights.iter().position(|w| !(w.is_finite() && *w >= 0.0)) {
        return Err(MetricError::BadWeight {
            index,
            row: index + 1,
            value: weights[index].to_string(),
        });
    }
    let kept: Vec<usize> = (0..weights.len()).filter(|&i| weights[i] > 0.0).collect();
    if kept.is_empty() {
        return Err(MetricError::Empty);
    }
    if let Some(&index) = kept
        .iter()
        .find(|&&i| !preds[i].is_finite() || !labels[i].is_finite())
    {
        return Err(MetricError::non_finite(index, preds[index].is_finite()));
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_run_in_order() {
        assert_eq!(
            check_inputs(&[1.0], &[]),
            Err(MetricError::LengthMismatch {
                scores: 1,
                labels: 0
            })
        );
        assert_eq!(check_inputs(&[], &[]), Err(MetricError::Empty));
        assert_eq!(
            check_inputs(&[0.1, 0.2, f32::NAN], &[0.0, f32::INFINITY, 1.0]),
            Err(MetricError::non_finite(1, true))
        );
        assert_eq!(
            check_inputs(&[0.1, f32::NAN], &[0.0, f32::NAN]),
            Err(MetricError::non_finite(1, false))
        );
        assert_eq!(check_inputs(&[0.1, 0.2], &[0.0, 1.0]), Ok(()));
    }

    #[test]
    fn messages_name_the_numbers() {
        let e = MetricError::SingleClass {
            positives: 0,
            negatives: 7,
        };
        assert_eq!(
            e.to_string(),
            "AUC is undefined for a single class: 0 positive and 7 negative labels"
        );
        let e = MetricError::LengthMismatch {
            scores: 3,
            labels: 4,
        };
        assert_eq!(e.to_string(), "length mismatch: 3 predictions but 4 labels");
        let e = MetricError::non_finite(5, true);
        assert_eq!(
            e.to_string(),
            "the label of row 6 is not finite (NaN or infinite)"
        );
        let e = MetricError::non_finite(0, false);
        assert_eq!(
            e.to_string(),
            "the prediction of row 1 is not finite (NaN or infinite): the model's output is \
             non-finite; training diverged (lower the learning rate) or an input feature is \
             non-finite"
        );
    }
}
