//! Per-task losses of spec §1: binary cross-entropy on logits, or mean squared error, each the
//! mean over the batch's rows, or with example weights (partial labels, conditional tasks,
//! weight columns) the weighted mean.

use burn::prelude::*;
use burn::tensor::activation::log_sigmoid;
use mtrec_data::TaskKind;

/// Mean loss of every task over the batch: outputs and labels `[B, T]` -> `[T]`.
///
/// BCE is written as `-(y log sigma(z) + (1-y) log sigma(-z))` with a stable log-sigmoid, so
/// large logits cannot overflow. Both losses are computed for all columns and selected by a
/// per-task mask: two fused element-wise passes beat `T` narrow slices on small batches.
pub fn task_losses(outputs: Tensor<2>, labels: Tensor<2>, kinds: &[TaskKind]) -> Tensor<1> {
    weighted_task_losses(outputs, labels, None, kinds)
}

/// [`task_losses`] with example weights `[B, T]`: task `t`'s loss is
/// `sum_r w[r, t] l[r, t] / sum_r w[r, t]`, so a row of weight 0 (a masked label, a row where
/// a conditional task's `given` task is negative) adds neither loss nor gradient. A task whose
/// weights in the batch sum to 0 has loss 0 for that batch (a conditional task on a batch
/// without one qualifying row): nothing to learn from, rather than 0/0. Without weights this
/// is exactly [`task_losses`]' plain mean.
pub fn weighted_task_losses(
    outputs: Tensor<2>,
    labels: Tensor<2>,
    weights: Option<Tensor<2>>,
    kinds: &[TaskKind],
) -> Tensor<1> {
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
    let Some(w) = weights else {
        return per_element.mean_dim(0).reshape([t]);
    };
    let total = w.clone().sum_dim(0);
    let denominator = total.clone() + total.equal_elem(0.0).float();
    ((per_element * w).sum_dim(0) / denominator).reshape([t])
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
    fn weighted_losses_are_weighted_means_and_masked_rows_get_no_gradient() {
        let device = Device::default().autodiff();
        // Three rows; task 0 binary, task 1 regression.
        let out = Tensor::<2>::from_floats([[0.0, 1.5], [2.0, -1.0], [-1.0, 4.0]], &device)
            .require_grad();
        let y = Tensor::<2>::from_floats([[1.0, 1.0], [0.0, 0.0], [1.0, 0.0]], &device);
        // Task 0: rows 0 and 1 with weights 3 and 1, row 2 masked. Task 1: no weight at all.
        let w = Tensor::<2>::from_floats([[3.0, 0.0], [1.0, 0.0], [0.0, 0.0]], &device);
        let kinds = [TaskKind::Binary, TaskKind::Regression];
        let losses = weighted_task_losses(out.clone(), y, Some(w), &kinds);
        let l: Vec<f32> = losses.clone().into_data().try_to_vec::<f32>().unwrap();
        // (3 ln 2 + ln(1 + e^2)) / 4.
        let want = (3.0 * 2f64.ln() + (1.0 + 2f64.exp()).ln()) / 4.0;
        assert!((l[0] as f64 - want).abs() < 1e-5, "{l:?} vs {want}");
        assert_eq!(
            l[1], 0.0,
            "a task without weight in the batch has loss 0, not NaN"
        );
        let grads = losses.sum().backward();
        let g: Vec<f32> = out.grad(&grads).unwrap().into_data().try_to_vec().unwrap();
        // d/dz of BCE is sigma(z) - y: row 0: (0.5 - 1) * 3/4, row 1: sigma(2) * 1/4.
        assert!((g[0] + 0.375).abs() < 1e-6, "{g:?}");
        assert!(
            (g[2] as f64 - 0.25 / (1.0 + (-2f64).exp())).abs() < 1e-6,
            "{g:?}"
        );
        assert_eq!((g[4], g[1], g[3], g[5]), (0.0, 0.0, 0.0, 0.0), "{g:?}");
        // Unit weights give the plain mean.
        let out = Tensor::<2>::from_floats([[0.0, 1.5], [2.0, -1.0]], &device);
        let y = Tensor::<2>::from_floats([[1.0, 1.0], [0.0, 0.0]], &device);
        let ones = Tensor::<2>::ones([2, 2], &device);
        let a: Vec<f32> = weighted_task_losses(out.clone(), y.clone(), Some(ones), &kinds)
            .into_data()
            .try_to_vec()
            .unwrap();
        let b: Vec<f32> = task_losses(out, y, &kinds)
            .into_data()
            .try_to_vec()
            .unwrap();
        assert!((a[0] - b[0]).abs() < 1e-6 && (a[1] - b[1]).abs() < 1e-6);
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
