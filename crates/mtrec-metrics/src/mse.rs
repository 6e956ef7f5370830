//! Mean squared error, `1/n sum_i (pred_i - target_i)^2`, accumulated in `f64`.

use crate::error::{MetricError, check_inputs};

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

#[cfg(test)]
mod tests {
    use super::*;

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
