//! Per-task binary masks over a model's shared weight matrices: the machinery LT4Rec and CSM
//! share. The masks live outside the model: a task's step writes `W * mask_t` into the
//! model's parameters, masks the gradient, and keeps the result only where `mask_t` is 1, so
//! any architecture of the zoo gets sub-networks without knowing about them.

use std::collections::{BTreeMap, HashMap};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::Gradients;
use mtrec_arch::{Model, MultiTaskModel};
use mtrec_data::{Batch, TaskKind};

use crate::EngineError;
use crate::stepper::{task_grads, tasks_sharing};
use crate::tensors::{input_of, labels_of};

/// One prunable weight tensor.
#[derive(Debug, Clone)]
struct Entry {
    id: ParamId,
    name: String,
    shape: Shape,
}

/// The weights a masking scheme prunes: float tensors of rank 2 or more that several tasks
/// reach (per element, so a bank of per-task towers is not one of them). Biases, batch-norm
/// scales (rank 1), embedding tables and towers are never pruned (spec §3, LT4Rec).
#[derive(Debug, Clone)]
pub struct SharedWeights {
    entries: Vec<Entry>,
    index: HashMap<ParamId, usize>,
}

impl SharedWeights {
    /// Finds the shared weights of `model` (on an autodiff device) from one forward and
    /// backward pass per task on `batch`. The losses are plain means, whatever the example
    /// weights: only which weights a task's loss reaches matters here, and a conditional task
    /// with no qualifying row in the batch would otherwise reach none.
    pub fn discover(
        model: &Model,
        batch: &Batch,
        kinds: &[TaskKind],
        device: &Device,
    ) -> Result<Self, EngineError> {
        let input = input_of(batch, device);
        let labels = labels_of(batch, device);
        let per_task: Vec<Gradients> = (0..kinds.len())
            .map(|k| {
                let out = model.forward(&input);
                crate::task_losses(out.outputs.narrow(1, 0, kinds.len()), labels.clone(), kinds)
                    .narrow(0, k, 1)
                    .backward()
            })
            .collect();
        let mut finder = Finder {
            per_task: &per_task,
            path: Vec::new(),
            entries: Vec::new(),
        };
        model.visit(&mut finder);
        if finder.entries.is_empty() {
            return Err(EngineError::Invalid(
                "the model has no weight matrix shared by several tasks to mask".into(),
            ));
        }
        Ok(Self::from_entries(finder.entries))
    }

    fn from_entries(entries: Vec<Entry>) -> Self {
        let index = entries.iter().enumerate().map(|(i, e)| (e.id, i)).collect();
        Self { entries, index }
    }

    /// Parameter paths, in order (for logs).
    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.name.as_str()).collect()
    }

    /// Number of weights over all shared tensors.
    pub fn len(&self) -> usize {
        self.entries.iter().map(|e| e.shape.num_elements()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The current values, flattened, detached, on the model's inner device.
    pub fn read(&self, model: &Model) -> Vec<Tensor<1>> {
        let mut reader = Reader {
            shared: self,
            out: vec![None; self.entries.len()],
        };
        model.visit(&mut reader);
        reader
            .out
            .into_iter()
            .map(|v| v.expect("every shared weight is a parameter of the model"))
            .collect()
    }

    /// `model` (on an autodiff device) with the shared weights replaced by `values`.
    pub fn write(&self, model: Model, values: &[Tensor<1>]) -> Model {
        model.map(&mut Writer {
            shared: self,
            values,
        })
    }

    /// Zeroes the gradients of the shared weights where `mask` is 0, so a step changes only
    /// the task's own positions.
    pub fn mask_grads(&self, model: &Model, grads: &mut GradientsParams, mask: &Mask) {
        model.visit(&mut GradMasker {
            shared: self,
            grads,
            mask,
        });
    }

    /// The shared weights' gradients in `raw`, flattened (`None` where not reached).
    pub fn grads(&self, model: &Model, raw: &Gradients) -> Vec<Option<Tensor<1>>> {
        let mut reader = GradReader {
            shared: self,
            raw,
            out: vec![None; self.entries.len()],
        };
        model.visit(&mut reader);
        reader.out
    }
}

struct Finder<'a> {
    per_task: &'a [Gradients],
    path: Vec<String>,
    entries: Vec<Entry>,
}

impl ModuleVisitor for Finder<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let name = self.path.join(".");
        if D < 2 || name.contains("embedding") {
            return;
        }
        let value = param.val();
        if tasks_sharing(&task_grads(&value, self.per_task)) >= 2 {
            self.entries.push(Entry {
                id: param.id,
                name,
                shape: value.shape(),
            });
        }
    }
}

struct Reader<'a> {
    shared: &'a SharedWeights,
    out: Vec<Option<Tensor<1>>>,
}

impl ModuleVisitor for Reader<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(&i) = self.shared.index.get(&param.id) {
            let n = self.shared.entries[i].shape.num_elements();
            self.out[i] = Some(param.val().inner().reshape([n]));
        }
    }
}

struct Writer<'a> {
    shared: &'a SharedWeights,
    values: &'a [Tensor<1>],
}

impl ModuleMapper for Writer<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(&i) = self.shared.index.get(&param.id) else {
            return param;
        };
        let shape = self.shared.entries[i].shape.clone();
        let value = Tensor::from_inner(self.values[i].clone().reshape::<D, _>(shape));
        Param::initialized(param.id, value.require_grad())
    }
}

struct GradMasker<'a> {
    shared: &'a SharedWeights,
    grads: &'a mut GradientsParams,
    mask: &'a Mask,
}

impl ModuleVisitor for GradMasker<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(&i) = self.shared.index.get(&param.id) else {
            return;
        };
        if let Some(g) = self.grads.remove::<D>(param.id) {
            let shape = self.shared.entries[i].shape.clone();
            let m = self.mask.parts[i].clone().reshape::<D, _>(shape);
            self.grads.register::<D>(param.id, g * m);
        }
    }
}

struct GradReader<'a> {
    shared: &'a SharedWeights,
    raw: &'a Gradients,
    out: Vec<Option<Tensor<1>>>,
}

impl ModuleVisitor for GradReader<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(&i) = self.shared.index.get(&param.id) {
            let n = self.shared.entries[i].shape.num_elements();
            self.out[i] = param.val().grad(self.raw).map(|g| g.reshape([n]));
        }
    }
}

/// A 0/1 mask per shared weight tensor (flattened, as floats so it multiplies directly).
#[derive(Debug, Clone)]
pub struct Mask {
    pub parts: Vec<Tensor<1>>,
}

impl Mask {
    /// Every weight kept.
    pub fn full(values: &[Tensor<1>]) -> Self {
        Self {
            parts: values.iter().map(|v| v.ones_like()).collect(),
        }
    }

    pub fn kept(&self) -> usize {
        self.parts
            .iter()
            .map(|p| p.clone().sum().into_scalar::<f32>() as f64)
            .sum::<f64>()
            .round() as usize
    }

    pub fn len(&self) -> usize {
        self.parts.iter().map(|p| p.dims()[0]).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fraction of the weights kept.
    pub fn density(&self) -> f64 {
        self.kept() as f64 / self.len().max(1) as f64
    }

    /// `values * mask`, part by part.
    pub fn apply(&self, values: &[Tensor<1>]) -> Vec<Tensor<1>> {
        values
            .iter()
            .zip(&self.parts)
            .map(|(v, m)| v.clone() * m.clone())
            .collect()
    }

    /// `base` where this mask is 0, `update` where it is 1.
    pub fn merge(&self, base: &[Tensor<1>], update: &[Tensor<1>]) -> Vec<Tensor<1>> {
        base.iter()
            .zip(update)
            .zip(&self.parts)
            .map(|((b, u), m)| b.clone() * (m.clone().neg() + 1.0) + u.clone() * m.clone())
            .collect()
    }

    /// The `n_keep` positions with the largest `scores` among those `within` keeps (all when
    /// `None`), over all tensors at once; ties go to the earlier position, so the result is
    /// deterministic. Selection runs on the host: it happens once per pruning round.
    pub fn top(scores: &[Tensor<1>], within: Option<&Mask>, n_keep: usize) -> Self {
        let host = |ts: &[Tensor<1>]| -> Vec<Vec<f32>> {
            ts.iter()
                .map(|t| {
                    t.clone()
                        .into_data()
                        .try_to_vec::<f32>()
                        .unwrap_or_default()
                })
                .collect()
        };
        let s = host(scores);
        let allowed = within.map(|m| host(&m.parts));
        let mut candidates: Vec<(f32, usize, usize)> = Vec::new();
        for (p, part) in s.iter().enumerate() {
            for (i, &v) in part.iter().enumerate() {
                if allowed.as_ref().is_none_or(|a| a[p][i] > 0.5) {
                    candidates.push((if v.is_nan() { f32::NEG_INFINITY } else { v }, p, i));
                }
            }
        }
        let n_keep = n_keep.min(candidates.len());
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2))));
        let mut keep: Vec<Vec<f32>> = s.iter().map(|p| vec![0.0; p.len()]).collect();
        for &(_, p, i) in &candidates[..n_keep] {
            keep[p][i] = 1.0;
        }
        let device = scores.first().map(|t| t.device()).unwrap_or_default();
        Self {
            parts: keep
                .into_iter()
                .map(|k| {
                    let n = k.len();
                    Tensor::<1>::from_data(TensorData::new(k, [n]), &device)
                })
                .collect(),
        }
    }

    /// Positions kept by both masks.
    pub fn and(&self, other: &Mask) -> Mask {
        Mask {
            parts: self
                .parts
                .iter()
                .zip(&other.parts)
                .map(|(a, b)| a.clone() * b.clone())
                .collect(),
        }
    }

    /// Positions kept by either mask.
    pub fn or(&self, other: &Mask) -> Mask {
        Mask {
            parts: self
                .parts
                .iter()
                .zip(&other.parts)
                .map(|(a, b)| (a.clone() + b.clone()).clamp_max(1.0))
                .collect(),
        }
    }
}

/// Per-epoch figures of a set of task masks: each task's density, the fraction of kept
/// positions that several tasks keep (the shared part), and each pair's Jaccard overlap.
pub fn mask_stats(masks: &[Mask], task_names: &[String]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (m, name) in masks.iter().zip(task_names) {
        out.insert(format!("density/{name}"), m.density());
    }
    if let Some(union) = masks.iter().cloned().reduce(|a, b| a.or(&b)) {
        let union_kept = union.kept().max(1) as f64;
        let several: usize = {
            let count: Vec<Tensor<1>> = (0..union.parts.len())
                .map(|p| {
                    masks
                        .iter()
                        .map(|m| m.parts[p].clone())
                        .reduce(|a, b| a + b)
                        .expect("at least one mask")
                })
                .collect();
            count
                .iter()
                .map(|c| {
                    c.clone()
                        .greater_equal_elem(2.0)
                        .float()
                        .sum()
                        .into_scalar::<f32>() as usize
                })
                .sum()
        };
        out.insert("shared/kept".into(), several as f64 / union_kept);
    }
    for a in 0..masks.len() {
        for b in a + 1..masks.len() {
            let inter = masks[a].and(&masks[b]).kept() as f64;
            let union = masks[a].or(&masks[b]).kept().max(1) as f64;
            out.insert(
                format!("jaccard/{}-{}", task_names[a], task_names[b]),
                inter / union,
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32]) -> Tensor<1> {
        Tensor::<1>::from_floats(v, &Device::default())
    }

    fn host(m: &Mask) -> Vec<Vec<f32>> {
        m.parts
            .iter()
            .map(|p| p.clone().into_data().try_to_vec::<f32>().unwrap())
            .collect()
    }

    #[test]
    fn top_keeps_the_largest_scores_across_tensors() {
        let scores = [t(&[0.5, 3.0, 1.0]), t(&[2.0, 0.1])];
        let m = Mask::top(&scores, None, 3);
        assert_eq!(host(&m), vec![vec![0.0, 1.0, 1.0], vec![1.0, 0.0]]);
        assert_eq!(m.kept(), 3);
        assert!((m.density() - 0.6).abs() < 1e-12);
        // Within a mask: the 3.0 is excluded, so the next two largest allowed win.
        let within = Mask {
            parts: vec![t(&[1.0, 0.0, 1.0]), t(&[1.0, 1.0])],
        };
        let m = Mask::top(&scores, Some(&within), 2);
        assert_eq!(host(&m), vec![vec![0.0, 0.0, 1.0], vec![1.0, 0.0]]);
    }

    #[test]
    fn ties_go_to_the_earlier_position() {
        let m = Mask::top(&[t(&[1.0, 1.0, 1.0])], None, 2);
        assert_eq!(host(&m), vec![vec![1.0, 1.0, 0.0]]);
    }

    #[test]
    fn merge_keeps_base_outside_the_mask() {
        let m = Mask {
            parts: vec![t(&[1.0, 0.0])],
        };
        let merged = m.merge(&[t(&[1.0, 2.0])], &[t(&[10.0, 20.0])]);
        let v = merged[0].clone().into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(v, vec![10.0, 2.0]);
    }

    #[test]
    fn stats_count_shared_positions_and_overlap() {
        let a = Mask {
            parts: vec![t(&[1.0, 1.0, 0.0, 0.0])],
        };
        let b = Mask {
            parts: vec![t(&[0.0, 1.0, 1.0, 0.0])],
        };
        let s = mask_stats(&[a, b], &["x".into(), "y".into()]);
        assert_eq!(s["density/x"], 0.5);
        // Union {0,1,2}, kept by both {1}: shared 1/3, Jaccard 1/3.
        assert!((s["shared/kept"] - 1.0 / 3.0).abs() < 1e-12);
        assert!((s["jaccard/x-y"] - 1.0 / 3.0).abs() < 1e-12);
    }
}
