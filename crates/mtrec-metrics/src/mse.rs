//! Mean squared error, `1/n sum_i (pred_i - target_i)^2`, accumulated in `f64`.

use crate::error::{MetricError, check_inputs, weighted_rows};

/// Mean squared error of `preds` against `targets`.
///
/// # Errors
/// [`MetricError::LengthMismatch`], [`MetricError::Empty`],
/// [`MetricError::NonFinite`].
pub fn mse(preds: &[f32], targets: &[f32]) -> Result<f64, MetricError> {
    check_inputs(preds, targets)?;
    let total: f64 = preds
        .iter()
        .zip(targets)
        .map(|(&p, &t)| {
            let d = f64::from(p) - f64::from(t);
            d * d
        })
        .sum();
    Ok(total / preds.len() as f64)
}

/// Weighted mean squared error, `sum_i w_i (pred_i - target_i)^2 / sum_i w_i`; rows of
/// weight 0 drop out. With every weight 1 it is [`mse`].
///
/// # Errors
/// Those of [`mse`], plus [`MetricError::WeightLengthMismatch`] and
/// [`MetricError::BadWeight`]; [`MetricError::Empty`] when no weight is above 0.
pub fn weighted_mse(preds: &[f32], targets: &[f32], weights: &[f32]) -> Result<f64, MetricError> {
    let kept = weighted_rows(preds, targets, weights)?;
    let (mut total, mut weight) = (0.0f64, 0.0f64);
    for i in kept {
        let d = f64::from(preds[i]) - f64::from(targets[i]);
        let w = f64::from(weights[i]);
        total += w * d * d;
        weight += w;
    }
    Ok(total / weight)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_hand_value() {
        // errors 0.5 (w 2), -1 (w 0.5), 2 (w 0): (2 * 0.25 + 0.5 * 1) / 2.5 = 0.4.
        let got = weighted_mse(&[1.5, 2.0, 5.0], &[1.0, 3.0, 3.0], &[2.0, 0.5, 0.0]).unwrap();
        assert!((got - 0.4).abs() < 1e-12, "{got}");
    }

    #[test]
    fn hand_value() {
        // errors 0.5, -1, 2 -> (0.25 + 1 + 4) / 3 = 1.75
        let got = mse(&[1.5, 2.0, 5.0], &[1.0, 3.0, 3.0]).unwrap();
        assert!((got - 1.75).abs() < 1e-12, "{got}");
    }

    #[test]
    fn perfect_is_zero() {
        assert_eq!(mse(&[0.25, -4.0], &[0.25, -4.0]), Ok(0.0));
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(mse(&[], &[]), Err(MetricError::Empty));
        assert_eq!(
            mse(&[1.0], &[1.0, 2.0]),
            Err(MetricError::LengthMismatch {
                scores: 1,
                labels: 2
            })
        );
        assert_eq!(
            mse(&[f32::NAN], &[1.0]),
            Err(MetricError::non_finite(0, false))
        );
    }
}
