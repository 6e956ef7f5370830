//! Gate statistics over a data split: how much each task's gate weighs every expert, and how
//! many experts it effectively uses, so that expert collapse shows.
//!
//! For gate `u` and the split's rows `x_1..x_R`, the **mean gate weight** of expert `j` is
//! `pbar_uj = (1/R) sum_r g_u(x_r)_j`. Its **effective experts** are the perplexity of that
//! mean distribution over the experts the gate can reach (`pbar` renormalised over them, which
//! only changes AutoMTL's masked gates, whose weights need not sum to 1):
//! `exp(H(pbar)) = exp(-sum_j pbar_j ln pbar_j)`, between 1 (one expert takes everything) and
//! `K`, the number of reachable experts (all weighted equally). The **share** is
//! `exp(H(pbar)) / K`: 1 for even use, `1/K` for collapse onto one expert.
//!
//! Averaging before the entropy measures which experts a task relies on over the data: a gate
//! that sends every row to a different single expert still uses many of them, one that mixes
//! the same two experts for every row uses two.

use burn::prelude::*;
use mtrec_arch::{ExpertOwner, GateLayer, GateOwner, Model, gate_weights};
use mtrec_data::{EncodedTable, batches};
use serde::{Deserialize, Serialize};

use crate::Predictor;
use crate::tensors::input_of;

/// How many experts one gate effectively uses (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ExpertUse {
    /// `exp(H(pbar))`, in `[1, reachable]`.
    pub effective: f64,
    /// Experts the gate can give weight to.
    pub reachable: usize,
    /// `effective / reachable`, in `[1/reachable, 1]`.
    pub share: f64,
}

/// The effective number and share of experts of a mean gate distribution; experts marked
/// unreachable are ignored, and the reachable weights renormalised to sum to 1.
pub fn expert_use(mean: &[f64], reachable: &[bool]) -> ExpertUse {
    let weights: Vec<f64> = mean
        .iter()
        .zip(reachable)
        .filter(|(_, r)| **r)
        .map(|(w, _)| w.max(0.0))
        .collect();
    let k = weights.len();
    let total: f64 = weights.iter().sum();
    if k == 0 || total <= 0.0 {
        return ExpertUse {
            effective: 0.0,
            reachable: k,
            share: 0.0,
        };
    }
    let entropy: f64 = weights
        .iter()
        .map(|w| w / total)
        .filter(|p| *p > 0.0)
        .map(|p| -p * p.ln())
        .sum();
    let effective = entropy.exp();
    ExpertUse {
        effective,
        reachable: k,
        share: effective / k as f64,
    }
}

/// One gated level of a model, averaged over a split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateStats {
    /// 1-based level (PLE/AdaTT levels, AutoMTL layers; MoE has one).
    pub level: usize,
    /// Gate names: task names, `all tasks` (OMoE), `shared` (the shared unit of PLE and
    /// AdaTT), `expert j of layer l` (AutoMTL's inner layers).
    pub gates: Vec<String>,
    /// Expert names: `e1..eN` for a pool, `<task> i` for a task's own, `shared i`.
    pub experts: Vec<String>,
    /// `[gate][expert]`: mean gate weight over the split.
    pub mean: Vec<Vec<f64>>,
    /// `[gate][expert]`: whether the gate can weigh the expert at all.
    pub reachable: Vec<Vec<bool>>,
    /// Per gate.
    pub usage: Vec<ExpertUse>,
    /// Rows averaged over.
    pub rows: usize,
}

/// Sums of gate weights over rows, per level, before naming.
struct Sums {
    layers: Vec<GateLayer>,
    sums: Vec<Vec<f64>>,
}

/// Mean gate weights of every gated level of `model` over `table`, or `None` for a model
/// without softmax gates over experts. `task_names` names the data's tasks in order; a
/// per-task model (a masked sub-network per task) contributes each task's gate from its own
/// network.
pub fn gate_stats(
    model: &Predictor,
    table: &EncodedTable,
    task_names: &[String],
    batch_size: usize,
    device: &Device,
) -> Option<Vec<GateStats>> {
    if table.n_rows == 0 {
        return None;
    }
    match model {
        Predictor::Whole(m) | Predictor::Leading { model: m, .. } => {
            let sums = sum_gates(m, table, batch_size, device)?;
            Some(name_levels(&sums, None, task_names, table.n_rows))
        }
        Predictor::PerTask(models) => {
            let per_model: Vec<Sums> = models
                .iter()
                .map(|m| sum_gates(m, table, batch_size, device))
                .collect::<Option<_>>()?;
            let mut levels = Vec::new();
            for (k, sums) in per_model.iter().enumerate() {
                for (l, stats) in name_levels(sums, Some(k), task_names, table.n_rows)
                    .into_iter()
                    .enumerate()
                {
                    match levels.get_mut(l) {
                        None => levels.push(stats),
                        Some(level) => merge_rows(level, stats),
                    }
                }
            }
            Some(levels)
        }
    }
}

fn sum_gates(
    model: &Model,
    table: &EncodedTable,
    batch_size: usize,
    device: &Device,
) -> Option<Sums> {
    let mut sums: Option<Sums> = None;
    for batch in batches(table, batch_size.max(1), None) {
        let layers = gate_weights(model, &input_of(&batch, device))?;
        let totals: Vec<Vec<f64>> = layers
            .iter()
            .map(|layer| {
                let [_, u, n] = layer.weights.dims();
                let summed = layer.weights.clone().sum_dim(0).reshape([u * n]);
                summed
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap_or_default()
                    .into_iter()
                    .map(f64::from)
                    .collect()
            })
            .collect();
        match &mut sums {
            None => {
                sums = Some(Sums {
                    layers,
                    sums: totals,
                })
            }
            Some(s) => {
                for (acc, add) in s.sums.iter_mut().zip(totals) {
                    for (a, b) in acc.iter_mut().zip(add) {
                        *a += b;
                    }
                }
            }
        }
    }
    sums
}

/// Names gates and experts and turns sums into means; with `only = Some(k)`, keeps only task
/// `k`'s gate (a per-task model's own network), named after task `k`.
fn name_levels(
    sums: &Sums,
    only: Option<usize>,
    task_names: &[String],
    rows: usize,
) -> Vec<GateStats> {
    let task = |k: usize| {
        task_names
            .get(k)
            .cloned()
            .unwrap_or_else(|| format!("output {}", k + 1))
    };
    let n_levels = sums.layers.len();
    sums.layers
        .iter()
        .zip(&sums.sums)
        .enumerate()
        .map(|(l, (layer, total))| {
            let n = layer.experts.len();
            let mut stats = GateStats {
                level: l + 1,
                gates: Vec::new(),
                experts: expert_names(&layer.experts, &task),
                mean: Vec::new(),
                reachable: Vec::new(),
                usage: Vec::new(),
                rows,
            };
            for (u, owner) in layer.gates.iter().enumerate() {
                let name = match (owner, only) {
                    (GateOwner::Task(k), Some(o)) if *k != o => continue,
                    (GateOwner::AllTasks, Some(o)) => task(o),
                    (GateOwner::Task(k), _) => task(*k),
                    (GateOwner::AllTasks, None) => "all tasks".to_string(),
                    (GateOwner::Shared, Some(_)) => continue,
                    (GateOwner::Shared, None) => "shared".to_string(),
                    (GateOwner::NextExpert(_), Some(_)) if l + 1 == n_levels => continue,
                    (GateOwner::NextExpert(j), Some(o)) => {
                        format!("{}: e{} of layer {}", task(o), j + 1, l + 2)
                    }
                    (GateOwner::NextExpert(j), None) => format!("e{} of layer {}", j + 1, l + 2),
                };
                let mean: Vec<f64> = total[u * n..(u + 1) * n]
                    .iter()
                    .map(|s| s / rows as f64)
                    .collect();
                let reachable = layer.reachable[u].clone();
                stats.usage.push(expert_use(&mean, &reachable));
                stats.gates.push(name);
                stats.mean.push(mean);
                stats.reachable.push(reachable);
            }
            stats
        })
        .collect()
}

fn merge_rows(into: &mut GateStats, from: GateStats) {
    into.gates.extend(from.gates);
    into.mean.extend(from.mean);
    into.reachable.extend(from.reachable);
    into.usage.extend(from.usage);
}

/// `e1..eN` for a pool; otherwise `<task> i` and `shared i`, counted within each owner.
fn expert_names(owners: &[ExpertOwner], task: &impl Fn(usize) -> String) -> Vec<String> {
    let mut seen: Vec<ExpertOwner> = Vec::new();
    owners
        .iter()
        .enumerate()
        .map(|(j, owner)| {
            seen.push(*owner);
            let i = seen.iter().filter(|o| *o == owner).count();
            match owner {
                ExpertOwner::Pool => format!("e{}", j + 1),
                ExpertOwner::Task(k) => format!("{} {i}", task(*k)),
                ExpertOwner::Shared => format!("shared {i}"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Param;
    use mtrec_arch::{ArchConfig, EmbeddingConfig, MoeConfig};
    use mtrec_data::{FeatureMeta, TaskKind};

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn expert_use_of_hand_computed_distributions() {
        let all = [true; 4];
        // Even use of all 4: entropy ln 4, perplexity 4, share 1.
        let u = expert_use(&[0.25; 4], &all);
        assert!(close(u.effective, 4.0) && close(u.share, 1.0), "{u:?}");
        // Collapse onto one expert: perplexity 1, share 1/4.
        let u = expert_use(&[0.0, 1.0, 0.0, 0.0], &all);
        assert!(close(u.effective, 1.0) && close(u.share, 0.25), "{u:?}");
        // Two of four evenly: entropy ln 2, perplexity 2, share 1/2.
        let u = expert_use(&[0.5, 0.0, 0.5, 0.0], &all);
        assert!(close(u.effective, 2.0) && close(u.share, 0.5), "{u:?}");
        // 0.7/0.2/0.1: exp(H) = 0.7^-0.7 0.2^-0.2 0.1^-0.1 = 2.229592 (by hand: H = 0.2497 +
        // 0.3219 + 0.2303 = 0.8018).
        let u = expert_use(&[0.7, 0.2, 0.1], &[true; 3]);
        assert!((u.effective - 2.229_592).abs() < 1e-6, "{u:?}");
        assert!((u.share - 2.229_592 / 3.0).abs() < 1e-6);
        // Unreachable experts do not count, and masked weights are renormalised: an AutoMTL
        // tower with 0.25 on each of its 3 connected experts uses all 3 evenly.
        let u = expert_use(&[0.0, 0.25, 0.25, 0.25], &[false, true, true, true]);
        assert_eq!(u.reachable, 3);
        assert!(close(u.effective, 3.0) && close(u.share, 1.0), "{u:?}");
    }

    /// MMoE with one task and two experts, input one dense value `x`, gate logits `(x, 0)`:
    /// `g(x)_1 = e^x / (e^x + 1)`, 1/2 at `x = 0` and 3/4 at `x = ln 3`. Two rows at 0 and
    /// three at ln 3, in batches of 2, 2 and 1: mean `(2 * 0.5 + 3 * 0.75) / 5 = 0.65`.
    #[test]
    fn means_over_uneven_batches_equal_the_hand_computed_average() {
        let device = Device::default();
        let meta = FeatureMeta {
            sparse_names: Vec::new(),
            vocab_sizes: Vec::new(),
            bags: Vec::new(),
            dense_names: vec!["x".into()],
            task_names: vec!["click".into()],
            task_kinds: vec![TaskKind::Binary],
        };
        let cfg = ArchConfig::Mmoe(MoeConfig {
            n_experts: 2,
            expert: vec![3],
            tower: vec![],
        });
        let emb = EmbeddingConfig {
            dim: 2,
            init_std: 0.1,
        };
        let Ok(Model::Moe(mut moe)) = mtrec_arch::build(&cfg, &emb, &meta, &device) else {
            panic!("mmoe builds Moe")
        };
        moe.gates.linear.weight = Param::from_tensor(Tensor::from_data(
            TensorData::new(vec![1.0f32, 0.0], [1, 2]),
            &device,
        ));
        moe.gates.linear.bias = Some(Param::from_tensor(Tensor::zeros([2], &device)));
        let ln3 = 3f32.ln();
        let mut table = EncodedTable::with_widths(0, 1, 1);
        table.n_rows = 5;
        table.dense = vec![0.0, ln3, 0.0, ln3, ln3];
        table.labels = vec![0.0; 5];
        let model = Predictor::Whole(Model::Moe(moe));
        let stats = gate_stats(&model, &table, &["click".into()], 2, &device).unwrap();
        assert_eq!(stats.len(), 1);
        let s = &stats[0];
        assert_eq!((s.level, s.rows), (1, 5));
        assert_eq!(s.gates, vec!["click"]);
        assert_eq!(s.experts, vec!["e1", "e2"]);
        assert!((s.mean[0][0] - 0.65).abs() < 1e-6, "{:?}", s.mean);
        assert!((s.mean[0][1] - 0.35).abs() < 1e-6, "{:?}", s.mean);
        // exp(H) = 0.65^-0.65 0.35^-0.35 = 1.910656.
        assert!(
            (s.usage[0].effective - 1.910_656).abs() < 1e-5,
            "{:?}",
            s.usage
        );
        assert!((s.usage[0].share - 1.910_656 / 2.0).abs() < 1e-5);
    }

    #[test]
    fn experts_are_named_by_owner() {
        let names = ["income".to_string(), "marital".to_string()];
        let task = |k: usize| names[k].clone();
        let owners = [
            ExpertOwner::Task(0),
            ExpertOwner::Task(0),
            ExpertOwner::Task(1),
            ExpertOwner::Task(1),
            ExpertOwner::Shared,
        ];
        assert_eq!(
            expert_names(&owners, &task),
            vec!["income 1", "income 2", "marital 1", "marital 2", "shared 1"]
        );
        assert_eq!(
            expert_names(&[ExpertOwner::Pool; 3], &task),
            vec!["e1", "e2", "e3"]
        );
    }
}
