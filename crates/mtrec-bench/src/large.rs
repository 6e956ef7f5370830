//! The `mmoe-large` workload of `../shared/docs/benchmarks.md` (a Criteo-like layout: 26
//! categorical fields with large vocabularies, 13 dense values, two binary tasks), the
//! arithmetic an MMoE step does, and the machine's matrix-product peak to set it against.

use std::time::Instant;

use burn::prelude::*;
use mtrec_arch::MoeConfig;
use mtrec_data::{EncodedTable, FeatureMeta, TaskKind};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub const SPARSE_FIELDS: usize = 26;
pub const DENSE_FIELDS: usize = 13;

/// `rows` rows with ids drawn uniformly from each field's `vocab` (id 0, unknown, never):
/// the hardest case for lazy updates, since skewed real ids repeat more and touch fewer rows.
/// Dense values are N(0, 1)-like, labels Bernoulli(0.25) and (0.05): throughput only, nothing
/// is learnt.
pub fn data(vocab: usize, rows: usize) -> (EncodedTable, FeatureMeta) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut t = EncodedTable::with_widths(SPARSE_FIELDS, DENSE_FIELDS, 2);
    t.n_rows = rows;
    t.sparse = (0..rows * SPARSE_FIELDS)
        .map(|_| rng.random_range(1..vocab as u32))
        .collect();
    // The sum of three uniforms, centred and scaled to variance 1: close enough to normal.
    t.dense = (0..rows * DENSE_FIELDS)
        .map(|_| (rng.random::<f32>() + rng.random::<f32>() + rng.random::<f32>() - 1.5) * 2.0)
        .collect();
    t.labels = (0..rows)
        .flat_map(|_| {
            let click = rng.random_bool(0.25);
            [f32::from(click), f32::from(click && rng.random_bool(0.2))]
        })
        .collect();
    let meta = FeatureMeta {
        sparse_names: (0..SPARSE_FIELDS).map(|i| format!("C{}", i + 1)).collect(),
        vocab_sizes: vec![vocab; SPARSE_FIELDS],
        bags: Vec::new(),
        dense_names: (0..DENSE_FIELDS).map(|i| format!("I{}", i + 1)).collect(),
        task_names: vec!["click".into(), "convert".into()],
        task_kinds: vec![TaskKind::Binary; 2],
    };
    (t, meta)
}

/// Multiply-adds of one example's MMoE forward pass outside the embedding lookup: experts,
/// gates, the gated mixtures and the towers with their output layers.
pub fn mmoe_forward_macs(input: usize, moe: &MoeConfig, n_tasks: usize) -> usize {
    let chain = |first: usize, layers: &[usize]| {
        let mut width = first;
        let mut macs = 0;
        for &h in layers {
            macs += width * h;
            width = h;
        }
        (macs, width)
    };
    let (expert, expert_out) = chain(input, &moe.expert);
    let (tower, tower_out) = chain(expert_out, &moe.tower);
    moe.n_experts * expert
        + n_tasks * input * moe.n_experts
        + n_tasks * moe.n_experts * expert_out
        + n_tasks * (tower + tower_out)
}

/// Training FLOPs per example: the backward pass costs about twice the forward (a product
/// for the input's gradient and one for the weights'), and a multiply-add is two FLOPs.
pub fn training_flops(forward_macs: usize) -> f64 {
    3.0 * 2.0 * forward_macs as f64
}

/// GFLOP/s of a 1024 x 1024 by 1024 x 1024 single-precision product through burn on `device`
/// (the stack mtrec trains with), the median of `reps` after one untimed product.
pub fn sgemm_peak(device: &Device, reps: usize) -> f64 {
    let n = 1024;
    let a = Tensor::<2>::random([n, n], burn::tensor::Distribution::Default, device);
    let b = Tensor::<2>::random([n, n], burn::tensor::Distribution::Default, device);
    let _ = a.clone().matmul(b.clone()).into_data();
    let mut rates: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let start = Instant::now();
            let c = a.clone().matmul(b.clone());
            let _ = c.into_data();
            2.0 * (n * n * n) as f64 / start.elapsed().as_secs_f64() / 1e9
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Input 3, 2 experts [4, 2], towers [5], 2 tasks, counted by hand: experts 2 x (3*4 +
    /// 4*2) = 40, gates 2 x 3*2 = 12, mixtures 2 x 2*2 = 8, towers 2 x (2*5 + 5*1) = 30.
    #[test]
    fn mmoe_macs_by_hand() {
        let moe = MoeConfig {
            n_experts: 2,
            expert: vec![4, 2],
            tower: vec![5],
        };
        assert_eq!(mmoe_forward_macs(3, &moe, 2), 40 + 12 + 8 + 30);
        assert_eq!(training_flops(90), 540.0);
    }

    #[test]
    fn large_data_has_the_declared_layout() {
        let (t, meta) = data(50, 100);
        assert_eq!(t.sparse.len(), 100 * SPARSE_FIELDS);
        assert!(t.sparse.iter().all(|&id| (1..50).contains(&id)));
        assert_eq!(t.dense.len(), 100 * DENSE_FIELDS);
        assert_eq!(t.labels.len(), 200);
        // A conversion is only ever labelled on a click.
        assert!(t.labels.chunks(2).all(|l| l[1] <= l[0]));
        assert_eq!(meta.vocab_sizes, vec![50; SPARSE_FIELDS]);
    }
}
