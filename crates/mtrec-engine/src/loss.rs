//! Per-task losses of spec §1: binary cross-entropy on logits, or mean squared error.

use burn::prelude::*;
use burn::tensor::activation::log_sigmoid;
use mtrec_data::TaskKind;

/// Mean loss of every task over the batch: outputs and labels `[B, T]` -> `[T]`.
///
/// BCE is written as `-(y log sigma(z) + (1-y) log sigma(-z))` with a stable log-sigmoid, so
/// large logits cannot overflow. Both losses are computed for all columns and selected by a
/// per-task mask: two fused element-wise passes beat `T` narrow slices on small batches.
pub fn task_losses(outputs: Tensor<2>, labels: Tensor<2>, kinds: &[TaskKind]) -> Tensor<1> {
    let device = outputs.device();
    let t = kinds.len();
    let binary: Vec<f32> = kinds
        .iter()
        .map(|k| if *k == TaskKind::Binary { 1.0 } else { 0.0 })
        .collect();
    let n_binary = binary.iter().filter(|&&b| b > 0.0).count();
    let per_element = if n_binary == t {
        bce(outputs, labels)
    } else if n_binary == 0 {
        (outputs - labels).powi_scalar(2)
    } else {
        let mask = Tensor::<2>::from_data(TensorData::new(binary, [1, t]), &device);
        let sq = (outputs.clone() - labels.clone()).powi_scalar(2);
        bce(outputs, labels) * mask.clone() + sq * (mask.neg() + 1.0)
    };
    per_element.mean_dim(0).reshape([t])
}

fn bce(logits: Tensor<2>, labels: Tensor<2>) -> Tensor<2> {
    let pos = log_sigmoid(logits.clone());
    let neg = log_sigmoid(logits.neg());
    (labels.clone() * pos + (labels.neg() + 1.0) * neg).neg()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_hand_computed_bce_and_mse() {
        let device = Device::default();
        // logits/values [B=2, T=2]; task 0 binary, task 1 regression.
        let out = Tensor::<2>::from_floats([[0.0, 1.5], [2.0, -1.0]], &device);
        let y = Tensor::<2>::from_floats([[1.0, 1.0], [0.0, 0.0]], &device);
        let l: Vec<f32> = task_losses(out, y, &[TaskKind::Binary, TaskKind::Regression])
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        // BCE: row 0: -ln sigma(0) = ln 2; row 1: -ln(1 - sigma(2)) = ln(1 + e^2).
        let bce = ((2f64).ln() + (1.0 + 2f64.exp()).ln()) / 2.0;
        // MSE: ((1.5-1)^2 + (-1-0)^2) / 2 = 0.625.
        assert!((l[0] as f64 - bce).abs() < 1e-5, "{l:?} vs {bce}");
        assert!((l[1] - 0.625).abs() < 1e-6, "{l:?}");
    }

    #[test]
    fn large_logits_stay_finite() {
        let device = Device::default();
        let out = Tensor::<2>::from_floats([[80.0], [-80.0]], &device);
        let y = Tensor::<2>::from_floats([[0.0], [1.0]], &device);
        let l: Vec<f32> = task_losses(out, y, &[TaskKind::Binary])
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert!((l[0] - 80.0).abs() < 1e-3, "{l:?}");
    }
}
