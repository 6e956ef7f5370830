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
    /// A prediction or label is NaN or infinite.
    #[error("non-finite prediction or label at index {index}")]
    NonFinite {
        /// Position of the first offending example.
        index: usize,
    },
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
        Some(index) => Err(MetricError::NonFinite { index }),
        None => Ok(()),
    }
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
            Err(MetricError::NonFinite { index: 1 })
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
        let e = MetricError::NonFinite { index: 5 };
        assert_eq!(e.to_string(), "non-finite prediction or label at index 5");
    }
}
