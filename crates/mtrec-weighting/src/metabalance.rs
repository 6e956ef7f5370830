//! MetaBalance (He et al., WWW 2022): per shared parameter, each auxiliary task's gradient is
//! pulled towards the target task's gradient magnitude, so auxiliary tasks can neither drown
//! the target (much larger gradients) nor be ignored (much smaller ones). Magnitudes are
//! exponential moving averages of the per-step norms, as in the authors' code (starting at 0,
//! no bias correction).

use std::collections::{BTreeMap, HashMap};

use burn::module::ParamId;
use burn::prelude::*;

use crate::{StepContext, Weighting, WeightingError};

/// Keeps the rescaling finite when an auxiliary task's moving norm is still 0.
const EPS: f64 = 1e-5;

#[derive(Debug, Clone)]
pub struct MetaBalance {
    task_names: Vec<String>,
    target: usize,
    relax: f64,
    beta: f64,
    state: HashMap<ParamId, ParamState>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct ParamState {
    /// Moving average `m_k` of task `k`'s gradient norm.
    norms: Vec<f64>,
    /// Whether task `k` has reached the parameter yet; `m_k` means nothing before.
    seen: Vec<bool>,
    /// Multiplier applied to each auxiliary task's gradient at the last step.
    scales: Vec<Option<f64>>,
}

impl MetaBalance {
    /// `target` names the target task (default the first); `relax` is `r` in `[0, 1]`, `beta`
    /// the moving-average factor in `[0, 1)`.
    pub fn new(
        task_names: &[String],
        target: Option<&str>,
        relax: f64,
        beta: f64,
    ) -> Result<Self, WeightingError> {
        if task_names.is_empty() {
            return Err(WeightingError::Invalid("meta-balance: no tasks".into()));
        }
        let target = match target {
            None => 0,
            Some(name) => task_names.iter().position(|t| t == name).ok_or_else(|| {
                WeightingError::UnknownTask {
                    task: name.to_string(),
                    known: task_names.join(", "),
                }
            })?,
        };
        if !(0.0..=1.0).contains(&relax) {
            return Err(WeightingError::Invalid(format!(
                "meta-balance: relax must be in [0, 1], got {relax}"
            )));
        }
        if !(0.0..1.0).contains(&beta) {
            return Err(WeightingError::Invalid(format!(
                "meta-balance: beta must be in [0, 1), got {beta}"
            )));
        }
        Ok(Self {
            task_names: task_names.to_vec(),
            target,
            relax,
            beta,
            state: HashMap::new(),
        })
    }

    /// Index of the target task.
    pub fn target(&self) -> usize {
        self.target
    }

    /// Mean over parameters of `f(state, k)`, skipping parameters where it is `None`.
    fn mean_over_params(&self, f: impl Fn(&ParamState) -> Option<f64>) -> Option<f64> {
        let values: Vec<f64> = self.state.values().filter_map(f).collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    }
}

impl Weighting for MetaBalance {
    /// The moving averages per parameter id (the resumed model takes its ids back).
    fn save_state(&self) -> Result<Vec<u8>, WeightingError> {
        let mut list: Vec<(u64, &ParamState)> =
            self.state.iter().map(|(id, s)| (id.val(), s)).collect();
        list.sort_by_key(|(id, _)| *id);
        crate::encode_state(&list)
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<(), WeightingError> {
        let list: Vec<(u64, ParamState)> = crate::decode_state(bytes)?;
        let t = self.task_names.len();
        if list
            .iter()
            .any(|(_, s)| s.norms.len() != t || s.seen.len() != t || s.scales.len() != t)
        {
            return Err(WeightingError::Invalid(format!(
                "the saved MetaBalance state is not for {t} tasks"
            )));
        }
        self.state = list
            .into_iter()
            .map(|(id, s)| (ParamId::from(id), s))
            .collect();
        Ok(())
    }

    /// The plain sum: the balancing happens on gradients, the sum is what gets logged.
    fn combine(&mut self, losses: Tensor<1>, _ctx: &StepContext) -> Tensor<1> {
        losses.sum()
    }

    fn weights(&self) -> Vec<f64> {
        vec![1.0; self.task_names.len()]
    }

    fn stats(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for (k, name) in self.task_names.iter().enumerate() {
            if let Some(m) = self.mean_over_params(|p| p.seen[k].then_some(p.norms[k])) {
                out.insert(format!("grad_norm/{name}"), m);
            }
            if k != self.target
                && let Some(s) = self.mean_over_params(|p| p.scales[k])
            {
                out.insert(format!("scale/{name}"), s);
            }
        }
        out
    }

    fn task_names(&self) -> &[String] {
        &self.task_names
    }

    fn per_task_gradients(&self) -> bool {
        true
    }

    fn combine_shared(
        &mut self,
        param: ParamId,
        grads: Vec<Option<Tensor<1>>>,
        _ctx: &StepContext,
    ) -> Tensor<1> {
        let n = self.task_names.len();
        assert_eq!(grads.len(), n, "one gradient slot per task");
        let (beta, relax, target) = (self.beta, self.relax, self.target);
        let state = self.state.entry(param).or_insert_with(|| ParamState {
            norms: vec![0.0; n],
            seen: vec![false; n],
            scales: vec![None; n],
        });
        for (k, g) in grads.iter().enumerate() {
            if let Some(g) = g {
                let norm = g.clone().square().sum().sqrt().into_scalar::<f32>() as f64;
                state.norms[k] = beta * state.norms[k] + (1.0 - beta) * norm;
                state.seen[k] = true;
            }
        }
        state.scales.fill(None);
        let balance = grads[target].is_some();
        let m_target = state.norms[target];
        grads
            .into_iter()
            .enumerate()
            .filter_map(|(k, g)| {
                let g = g?;
                if !balance || k == target {
                    return Some(g);
                }
                let scale = relax * m_target / (state.norms[k] + EPS) + (1.0 - relax);
                state.scales[k] = Some(scale);
                Some(g.mul_scalar(scale))
            })
            .reduce(|a, b| a + b)
            .expect("a shared parameter has at least one task's gradient")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: StepContext = StepContext {
        step: 0,
        epoch: 1,
        learning_rate: 1e-3,
    };

    fn names(n: usize) -> Vec<String> {
        ["a", "b", "c"][..n].iter().map(|s| s.to_string()).collect()
    }

    fn t(v: &[f32]) -> Option<Tensor<1>> {
        Some(Tensor::<1>::from_floats(v, &Device::default()))
    }

    fn values(t: Tensor<1>) -> Vec<f64> {
        t.into_data().iter::<f64>().collect()
    }

    fn assert_close(got: &[f64], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g - w).abs() < 1e-5 * w.abs().max(1.0),
                "{got:?} vs {want:?}"
            );
        }
    }

    /// Step 1 of the hand-worked example: g0 = [3, 4] (norm 5), g1 = [0.6, 0.8] (norm 1),
    /// beta = 0.9, so m0 = 0.1 * 5 = 0.5 and m1 = 0.1 * 1 = 0.1.
    fn step1(relax: f64) -> (MetaBalance, ParamId, Vec<f64>) {
        let mut mb = MetaBalance::new(&names(2), None, relax, 0.9).unwrap();
        let id = ParamId::new();
        let out = mb.combine_shared(id, vec![t(&[3.0, 4.0]), t(&[0.6, 0.8])], &CTX);
        let st = &mb.state[&id];
        assert_close(&st.norms, &[0.5, 0.1]);
        (mb, id, values(out))
    }

    #[test]
    fn relax_one_rescales_the_auxiliary_gradient_to_the_target_norm() {
        // multiplier m0 / (m1 + 1e-5) = 0.5 / 0.10001 = 4.9995000..., so g1 becomes
        // [0.3 / 0.10001, 0.4 / 0.10001] = [2.9997000, 3.9996000] (norm 5 * 0.1 / 0.10001).
        let (mb, _, out) = step1(1.0);
        assert_close(&out, &[3.0 + 0.3 / 0.10001, 4.0 + 0.4 / 0.10001]);
        assert_close(&[mb.stats()["scale/b"]], &[0.5 / 0.10001]);
    }

    #[test]
    fn relax_zero_leaves_gradients_unchanged() {
        let (_, _, out) = step1(0.0);
        // Multiplier 0 * 5 + 1 = 1 exactly: the f32 sum g0 + g1, bit for bit.
        assert_eq!(out, [(3.0f32 + 0.6f32) as f64, (4.0f32 + 0.8f32) as f64]);
    }

    #[test]
    fn relax_mixes_and_the_norms_are_moving_averages() {
        // multiplier 0.7 * 0.5 / 0.10001 + 0.3 = 3.4996500 + 0.3 = 3.7996500
        let (mut mb, id, out) = step1(0.7);
        let s1 = 0.7 * 0.5 / 0.10001 + 0.3;
        assert_close(&out, &[3.0 + 0.6 * s1, 4.0 + 0.8 * s1]);

        // Step 2: g0 = [6, 8] (norm 10), g1 = [0, 2] (norm 2):
        // m0 = 0.9 * 0.5 + 0.1 * 10 = 1.45, m1 = 0.9 * 0.1 + 0.1 * 2 = 0.29,
        // multiplier 0.7 * 1.45 / 0.29001 + 0.3 = 3.4998793 + 0.3 = 3.7998793.
        let out = mb.combine_shared(id, vec![t(&[6.0, 8.0]), t(&[0.0, 2.0])], &CTX);
        assert_close(&mb.state[&id].norms, &[1.45, 0.29]);
        let s2 = 0.7 * 1.45 / 0.29001 + 0.3;
        assert_close(&values(out), &[6.0, 8.0 + 2.0 * s2]);

        let stats = mb.stats();
        // Loss weights are always 1 here: not worth a line in the log.
        assert!(!stats.contains_key("weight/a"));
        assert_close(
            &[stats["grad_norm/a"], stats["grad_norm/b"], stats["scale/b"]],
            &[1.45, 0.29, s2],
        );
        assert!(!stats.contains_key("scale/a"), "the target has no scale");
    }

    #[test]
    fn the_target_gradient_is_unchanged_whichever_task_it_is() {
        // Target b: m_b = 0.1, m_a = 0.5, so with r = 1 task a is scaled by 0.1 / 0.50001
        // and b's [0.6, 0.8] passes through.
        let mut mb = MetaBalance::new(&names(2), Some("b"), 1.0, 0.9).unwrap();
        let out = mb.combine_shared(ParamId::new(), vec![t(&[3.0, 4.0]), t(&[0.6, 0.8])], &CTX);
        let s = 0.1 / 0.50001;
        assert_close(&values(out), &[0.6 + 3.0 * s, 0.8 + 4.0 * s]);
        assert_eq!(mb.target(), 1);
    }

    #[test]
    fn a_task_without_gradient_contributes_nothing_and_keeps_its_norm() {
        let mut mb = MetaBalance::new(&names(3), None, 1.0, 0.9).unwrap();
        let id = ParamId::new();
        // m = [0.5, 0.1, -]: as in step 1, c absent.
        let out = mb.combine_shared(id, vec![t(&[3.0, 4.0]), t(&[0.6, 0.8]), None], &CTX);
        assert_close(&values(out), &[3.0 + 0.3 / 0.10001, 4.0 + 0.4 / 0.10001]);
        assert_eq!(mb.state[&id].norms[2], 0.0);
        let stats = mb.stats();
        assert!(!stats.contains_key("grad_norm/c") && !stats.contains_key("scale/c"));
    }

    #[test]
    fn a_parameter_the_target_does_not_reach_gets_the_plain_sum() {
        let mut mb = MetaBalance::new(&names(3), None, 1.0, 0.9).unwrap();
        let out = mb.combine_shared(
            ParamId::new(),
            vec![None, t(&[0.6, 0.8]), t(&[1.0, 2.0])],
            &CTX,
        );
        assert_close(&values(out), &[1.6, 2.8]);
        assert!(!mb.stats().contains_key("scale/b"));
    }

    #[test]
    fn combine_is_the_plain_sum_and_weights_are_one() {
        let mut mb = MetaBalance::new(&names(2), None, 0.7, 0.9).unwrap();
        assert!(mb.per_task_gradients());
        let total: f32 = mb
            .combine(
                Tensor::<1>::from_floats([1.0, 3.0], &Device::default()),
                &CTX,
            )
            .into_scalar();
        assert_eq!(total, 4.0);
        assert_eq!(mb.weights(), vec![1.0, 1.0]);
    }

    #[test]
    fn bad_config_is_an_error() {
        let err = MetaBalance::new(&names(2), Some("z"), 0.7, 0.9).unwrap_err();
        assert!(matches!(err, WeightingError::UnknownTask { .. }), "{err}");
        for (relax, beta) in [
            (1.5, 0.9),
            (-0.1, 0.9),
            (f64::NAN, 0.9),
            (0.7, 1.0),
            (0.7, -0.1),
        ] {
            let err = MetaBalance::new(&names(2), None, relax, beta).unwrap_err();
            assert!(matches!(err, WeightingError::Invalid(_)), "{err}");
        }
        let msg = MetaBalance::new(&names(2), None, 0.7, 1.0)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("beta"), "{msg}");
    }
}
