//! Planted-structure data for multi-task recommendation: binary tasks whose
//! logits depend on known fields, known pairwise interactions and known task
//! groups, so that what a model (or an architecture search) finds can be
//! scored against the truth.
//!
//! # The generator
//!
//! ```text
//! Fields    F sparse fields f = 0..F-1 (default 20), cardinality
//!           n_f = round(n_min (n_max / n_min)^(f / (F-1)))            (10 .. 100,000, log-uniform)
//!           x_f ~ Zipf:  P(x_f = v) = p_f(v) = (v+1)^-s / sum_u (u+1)^-s,  v = 0..n_f-1 (s = 1.05)
//!           D dense fields (default 4), x_j ~ N(0, 1); all fields independent of each other.
//! Latents   g_f(v) ~ N(0, I_k / k) for every value v of every field (k = latent_dim, default 8),
//!           centred under the field's own distribution:  e_f(v) = g_f(v) - sum_u p_f(u) g_f(u),
//!           so E[e_f(x_f)] = 0 and main effects and interactions are uncorrelated.
//! Groups    each group g (default g0 = click, like, buy; g1 = share, follow) plants
//!             R_g   its relevant sparse fields: `fields_per_group` own fields (default 6, half of
//!                   them among the lower-cardinality half of the fields, half among the upper),
//!                   disjoint across groups; with between_groups = "conflict" group g >= 1 also
//!                   uses `conflict_fields` (default 2) of group g-1's own fields;
//!             I_g   `interactions_per_group` (default 2) pairs (f, h) of its own fields;
//!             J_g   `dense_per_group` (default 1) dense fields, disjoint across groups.
//!           Fields in no R_g, dense fields in no J_g, are irrelevant: they enter no logit.
//! Logit     for task t of group g
//!             zeta_t = sum_{f in R_g} <w_tf, e_f(x_f)>
//!                      + sum_{(f,h) in I_g} <w_tfh * e_f(x_f), e_h(x_h)>
//!                      + sum_{j in J_g} a_tj x_j
//!             z_t    = signal_scale zeta_t + b_t,        y_t ~ Bernoulli(sigmoid(z_t)).
//!           zeta_t = <w_t, phi(x)> with phi(x) the blocks e_f(x_f), e_f(x_f) * e_h(x_h)
//!           (elementwise) and x_j; their covariance S = Cov(phi) is block diagonal and known
//!           exactly:  S_f = sum_v p_f(v) e_f(v) e_f(v)^T,  S_fh = S_f o S_h,  S_j = 1,
//!           and we write <a, b>_S = a^T S b.
//! Shares    every term ("block") b of group g gets a share pi_b of the logit variance:
//!           1 for a field, interaction_scale^2 for an interaction, 1 for a dense field,
//!           normalised to sum to 1 over the group's terms.
//! Weights   per group a base direction u_g, per task an own direction v_t; block by block
//!           u_gb is a Gaussian draw scaled to |u_gb|_S^2 = pi_b, and v_tb a Gaussian draw made
//!           S-orthogonal (Gram-Schmidt) to every base and every other own direction in that
//!           block, scaled to pi_b (a dense block, of dimension 1, has no room left: v_tb = 0
//!           there), then v_t is scaled to unit S-norm. Then
//!             w_t = sqrt(rho_g) u_g + sqrt(1 - rho_g) v_t                       (rho_g >= 0)
//!           so that Var(zeta_t) = 1 and Corr(zeta_t, zeta_t') = rho_g for t, t' in g, exactly
//!           (in the population: no variance is estimated), and term b carries the share
//!           rho_g pi_b + (1 - rho_g) pi_b / (1 - pi_dense) of every task's logit variance
//!           (rho_g pi_b for a dense field; at rho_g = 0 dense fields drop out and the truth
//!           lists them as irrelevant). For rho_g < 0 (groups of two tasks only) the second
//!           task takes -sqrt(|rho_g|) u_g. Under "conflict" u_g on a shared field is minus
//!           u_{g-1} there (rescaled to pi_b): the two groups pull those fields in opposite
//!           directions and, across them,
//!             Corr(zeta_t, zeta_t') = sqrt(rho_g rho_{g-1}) <u_g, u_{g-1}>_S < 0;
//!           under "independent" the groups share no block and it is exactly 0.
//! Bias      b_t solves mean_i sigmoid(signal_scale zeta_t(x_i) + b_t) = positive_rate_t on a
//!           pilot sample of `pilot_rows` rows (default 50,000; own random stream), by bisection.
//! ```
//!
//! A same-group correlation `rho` needs the base weight `sqrt(rho)`: with `rho u + sqrt(1 -
//! rho^2) v_t` for every task, two tasks would correlate at `rho^2`. The MMoE generator
//! ([`crate::synthetic`]) writes its two tasks as `u` and `rho u + sqrt(1 - rho^2) v`, which
//! only works with one task as the anchor. Drawing the directions block by block, rather than
//! as one Gaussian vector over all blocks, fixes each term's share of every task's logit: a
//! relevant field never ends up with a negligible weight for one task by chance.
//!
//! # Randomness
//!
//! Everything comes from ChaCha8 seeded by `seed`, in three streams: stream 1 draws the
//! structure (latent vectors field by field, then the fields, conflict fields, interactions
//! and dense fields of each group, then the base directions, then the own directions), stream
//! 2 the pilot rows, stream 3 the data rows, one row after the other (per row: the sparse
//! values, the dense values, one uniform per task for the labels). The write chunk size only
//! decides when rows are flushed, so the same seed and config give the same rows, and the same
//! CSV bytes, whatever the chunk size.
//!
//! # Files
//!
//! [`write`] streams the rows to CSV or Parquet (one row group per chunk, bounded memory),
//! then writes the schema (`F.schema.toml`, ready for `[data] kind = "files"`; the files
//! loader splits a single file 80/10/10 with its own seed) and the ground truth
//! (`F.truth.json`, a [`GroundTruth`]). Sparse values are written as integers `0..n_f-1`,
//! labels as `0`/`1`.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, Float32Array, Int8Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use rand::seq::SliceRandom;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::atomic::write_atomically;
use crate::error::{DataError, Result};
use crate::schema::{DenseField, Schema, SparseField, TaskKind, TaskSpec};

/// Rows generated and written at a time by [`write`].
pub const DEFAULT_CHUNK_ROWS: usize = 65_536;

const STREAM_STRUCTURE: u64 = 1;
const STREAM_PILOT: u64 = 2;
const STREAM_ROWS: u64 = 3;

/// How the task groups relate to each other.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BetweenGroups {
    /// Group g >= 1 also uses some of group g-1's fields, with the opposite base direction.
    #[default]
    Conflict,
    /// Groups share no field: their logits are independent.
    Independent,
}

/// One binary task of a group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlantedTask {
    pub name: String,
    /// Target share of positive labels, in (0, 1).
    pub positive_rate: f64,
}

/// A group of tasks sharing latent factors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskGroup {
    pub name: String,
    /// Pairwise correlation of the group's standardised logits, in [-1, 1]
    /// (negative only for groups of at most two tasks).
    #[serde(default = "default_correlation")]
    pub correlation: f64,
    pub tasks: Vec<PlantedTask>,
}

fn default_correlation() -> f64 {
    0.8
}

impl TaskGroup {
    /// A group with the default correlation; `tasks` are `(name, positive rate)`.
    pub fn new(name: impl Into<String>, tasks: &[(&str, f64)]) -> Self {
        TaskGroup {
            name: name.into(),
            correlation: default_correlation(),
            tasks: tasks
                .iter()
                .map(|&(n, r)| PlantedTask {
                    name: n.to_string(),
                    positive_rate: r,
                })
                .collect(),
        }
    }
}

/// Every parameter of the generator (see the module documentation for the formulas).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlantedConfig {
    pub seed: u64,
    /// Number of sparse fields `F`.
    pub n_sparse: usize,
    /// Cardinality of the first sparse field.
    pub min_cardinality: usize,
    /// Cardinality of the last sparse field.
    pub max_cardinality: usize,
    /// Exponent `s` of the Zipf value distribution (0 is uniform).
    pub zipf_exponent: f64,
    /// Number of dense fields.
    pub n_dense: usize,
    /// Dimension `k` of the latent vector of every sparse value.
    pub latent_dim: usize,
    /// The task groups, in output order (tasks in order within each group).
    pub groups: Vec<TaskGroup>,
    /// Own relevant sparse fields per group.
    pub fields_per_group: usize,
    /// Planted pairwise interactions per group (pairs of its own fields).
    pub interactions_per_group: usize,
    /// Relevant dense fields per group.
    pub dense_per_group: usize,
    pub between_groups: BetweenGroups,
    /// With `conflict`: how many of group g-1's own fields group g also uses.
    pub conflict_fields: usize,
    /// An interaction's share of the logit variance is `interaction_scale^2` times a main
    /// effect's.
    pub interaction_scale: f64,
    /// Standard deviation of the logit before the bias.
    pub signal_scale: f64,
    /// Rows of the pilot sample the biases are fitted on.
    pub pilot_rows: usize,
}

impl Default for PlantedConfig {
    fn default() -> Self {
        PlantedConfig {
            seed: 2018,
            n_sparse: 20,
            min_cardinality: 10,
            max_cardinality: 100_000,
            zipf_exponent: 1.05,
            n_dense: 4,
            latent_dim: 8,
            groups: vec![
                TaskGroup::new("g0", &[("click", 0.3), ("like", 0.05), ("buy", 0.01)]),
                TaskGroup::new("g1", &[("share", 0.2), ("follow", 0.05)]),
            ],
            fields_per_group: 6,
            interactions_per_group: 2,
            dense_per_group: 1,
            between_groups: BetweenGroups::Conflict,
            conflict_fields: 2,
            interaction_scale: 1.0,
            signal_scale: 2.0,
            pilot_rows: 50_000,
        }
    }
}

/// Latent floats beyond which the tables would not fit comfortably in memory (4 GB).
const MAX_LATENT_FLOATS: usize = 500_000_000;

impl PlantedConfig {
    /// Rejects parameters for which the generator is undefined, naming the parameter.
    pub fn validate(&self) -> Result<()> {
        let fail = |m: String| Err(DataError::config(format!("planted: {m}")));
        if self.n_sparse == 0 {
            return fail("n_sparse must be at least 1".into());
        }
        if self.min_cardinality < 2 || self.max_cardinality < self.min_cardinality {
            return fail(format!(
                "cardinalities must satisfy 2 <= min_cardinality <= max_cardinality \
                 (got {} and {})",
                self.min_cardinality, self.max_cardinality
            ));
        }
        if self.max_cardinality > u32::MAX as usize {
            return fail(format!(
                "max_cardinality must be at most {} (got {})",
                u32::MAX,
                self.max_cardinality
            ));
        }
        if !(self.zipf_exponent.is_finite() && self.zipf_exponent >= 0.0) {
            return fail(format!(
                "zipf_exponent must be a number >= 0 (got {})",
                self.zipf_exponent
            ));
        }
        if self.latent_dim == 0 {
            return fail("latent_dim must be at least 1".into());
        }
        let floats = cardinalities(self)
            .iter()
            .sum::<usize>()
            .saturating_mul(self.latent_dim);
        if floats > MAX_LATENT_FLOATS {
            return fail(format!(
                "the latent tables would hold {floats} floats (sum of cardinalities x \
                 latent_dim), more than {MAX_LATENT_FLOATS}: lower the cardinalities or latent_dim"
            ));
        }
        if self.groups.is_empty() {
            return fail("there are no task groups (0 tasks)".into());
        }
        let inputs: Vec<String> = sparse_names(self.n_sparse)
            .into_iter()
            .chain(dense_names(self.n_dense))
            .collect();
        let mut group_names = std::collections::HashSet::new();
        let mut task_names = std::collections::HashSet::new();
        for g in &self.groups {
            if g.name.is_empty() || !group_names.insert(g.name.as_str()) {
                return fail(format!("group name {:?} is empty or used twice", g.name));
            }
            if g.tasks.is_empty() {
                return fail(format!("group `{}` has 0 tasks", g.name));
            }
            if !(-1.0..=1.0).contains(&g.correlation) {
                return fail(format!(
                    "group `{}`: correlation must be in [-1, 1] (got {})",
                    g.name, g.correlation
                ));
            }
            if g.correlation < 0.0 && g.tasks.len() > 2 {
                return fail(format!(
                    "group `{}`: a negative correlation needs a group of at most 2 tasks \
                     (got {} tasks)",
                    g.name,
                    g.tasks.len()
                ));
            }
            for t in &g.tasks {
                if t.name.is_empty() || !task_names.insert(t.name.as_str()) {
                    return fail(format!("task name {:?} is empty or used twice", t.name));
                }
                if inputs.contains(&t.name) {
                    return fail(format!(
                        "task name `{}` is also the name of an input field",
                        t.name
                    ));
                }
                if !(t.positive_rate > 0.0 && t.positive_rate < 1.0) {
                    return fail(format!(
                        "task `{}`: positive_rate must be in (0, 1) (got {})",
                        t.name, t.positive_rate
                    ));
                }
            }
        }
        let n_groups = self.groups.len();
        if n_groups * self.fields_per_group > self.n_sparse {
            return fail(format!(
                "{n_groups} groups x fields_per_group {} = {} relevant fields, more than the \
                 {} sparse fields",
                self.fields_per_group,
                n_groups * self.fields_per_group,
                self.n_sparse
            ));
        }
        let pairs = self.fields_per_group * self.fields_per_group.saturating_sub(1) / 2;
        if self.interactions_per_group > pairs {
            return fail(format!(
                "interactions_per_group {} is more than the {pairs} pairs of {} fields",
                self.interactions_per_group, self.fields_per_group
            ));
        }
        if n_groups * self.dense_per_group > self.n_dense {
            return fail(format!(
                "{n_groups} groups x dense_per_group {} = {} relevant dense fields, more than \
                 the {} dense fields",
                self.dense_per_group,
                n_groups * self.dense_per_group,
                self.n_dense
            ));
        }
        if self.fields_per_group == 0 && self.dense_per_group == 0 {
            return fail(
                "fields_per_group and dense_per_group are both 0: no task has an input".into(),
            );
        }
        if self.between_groups == BetweenGroups::Conflict
            && n_groups > 1
            && self.conflict_fields > self.fields_per_group
        {
            return fail(format!(
                "conflict_fields {} is more than fields_per_group {}",
                self.conflict_fields, self.fields_per_group
            ));
        }
        if !(self.interaction_scale.is_finite() && self.interaction_scale > 0.0) {
            return fail(format!(
                "interaction_scale must be a number > 0 (got {}; set interactions_per_group = 0 \
                 to plant no interaction)",
                self.interaction_scale
            ));
        }
        if !(self.signal_scale.is_finite() && self.signal_scale >= 0.0) {
            return fail(format!(
                "signal_scale must be a number >= 0 (got {})",
                self.signal_scale
            ));
        }
        if self.pilot_rows < 100 {
            return fail(format!(
                "pilot_rows must be at least 100 (got {})",
                self.pilot_rows
            ));
        }
        Ok(())
    }

    /// Number of tasks over all groups.
    pub fn n_tasks(&self) -> usize {
        self.groups.iter().map(|g| g.tasks.len()).sum()
    }
}

/// Cardinality of each sparse field: `round(n_min (n_max / n_min)^(f / (F-1)))`.
pub fn cardinalities(cfg: &PlantedConfig) -> Vec<usize> {
    let f = cfg.n_sparse;
    let (lo, hi) = (cfg.min_cardinality as f64, cfg.max_cardinality as f64);
    (0..f)
        .map(|i| {
            let t = if f > 1 {
                i as f64 / (f - 1) as f64
            } else {
                0.0
            };
            ((lo * (hi / lo).powf(t)).round() as usize)
                .clamp(cfg.min_cardinality, cfg.max_cardinality)
        })
        .collect()
}

/// Sparse column names `f00`, `f01`, ... (at least two digits).
pub fn sparse_names(n: usize) -> Vec<String> {
    let width = n.saturating_sub(1).to_string().len().max(2);
    (0..n).map(|i| format!("f{i:0width$}")).collect()
}

/// Dense column names `d0`, `d1`, ...
pub fn dense_names(n: usize) -> Vec<String> {
    (0..n).map(|j| format!("d{j}")).collect()
}

/// The schema file next to a data file: `x/planted.csv` -> `x/planted.schema.toml`.
pub fn schema_path(data: &Path) -> PathBuf {
    data.with_extension("schema.toml")
}

/// The ground-truth file next to a data file: `x/planted.csv` -> `x/planted.truth.json`.
pub fn truth_path(data: &Path) -> PathBuf {
    data.with_extension("truth.json")
}

// ---------------------------------------------------------------------------------------
// The ground truth
// ---------------------------------------------------------------------------------------

/// What was planted, written as `F.truth.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    /// Always `"recsys"`.
    pub kind: String,
    pub rows: usize,
    pub seed: u64,
    pub sparse_fields: Vec<SparseTruth>,
    pub dense_fields: Vec<DenseTruth>,
    pub groups: Vec<GroupTruth>,
    pub between_groups: BetweenGroups,
    pub tasks: Vec<TaskTruth>,
    pub config: PlantedConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SparseTruth {
    pub name: String,
    pub cardinality: usize,
    pub relevant: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DenseTruth {
    pub name: String,
    pub relevant: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupTruth {
    pub name: String,
    pub tasks: Vec<String>,
    pub correlation: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskTruth {
    pub name: String,
    pub group: String,
    pub positive_rate: f64,
    pub observed_positive_rate: f64,
    /// Sparse fields entering the logit (alone or through an interaction), in field order.
    pub relevant_fields: Vec<String>,
    pub relevant_dense: Vec<String>,
    /// Planted pairwise products.
    pub interactions: Vec<[String; 2]>,
}

// ---------------------------------------------------------------------------------------
// The resolved generator
// ---------------------------------------------------------------------------------------

/// Walker/Vose alias table: O(1) draws from a fixed discrete distribution.
#[derive(Clone, Debug)]
struct Alias {
    prob: Vec<f64>,
    alias: Vec<u32>,
}

impl Alias {
    fn new(p: &[f64]) -> Alias {
        let n = p.len();
        let mut scaled: Vec<f64> = p.iter().map(|&x| x * n as f64).collect();
        let mut prob = vec![1.0; n];
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|&i| scaled[i] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            prob[s] = scaled[s];
            alias[s] = l as u32;
            scaled[l] += scaled[s] - 1.0;
            if scaled[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        Alias { prob, alias }
    }

    fn sample(&self, rng: &mut ChaCha8Rng) -> u32 {
        let n = self.prob.len() as u128;
        let i = ((u128::from(rng.next_u64()) * n) >> 64) as usize;
        if rng.random::<f64>() < self.prob[i] {
            i as u32
        } else {
            self.alias[i]
        }
    }
}

/// One task's weights, laid out for evaluating rows.
#[derive(Clone, Debug)]
struct TaskModel {
    /// `(field, w_tf)`.
    fields: Vec<(usize, Vec<f64>)>,
    /// `(f, h, w_tfh)`.
    inters: Vec<(usize, usize, Vec<f64>)>,
    /// `(j, a_tj)`.
    dense: Vec<(usize, f64)>,
    bias: f64,
}

/// What one group planted.
#[derive(Clone, Debug)]
struct GroupPlan {
    own: Vec<usize>,
    shared: Vec<usize>,
    /// Pairs of own fields.
    inters: Vec<(usize, usize)>,
    dense: Vec<usize>,
}

impl GroupPlan {
    fn fields(&self) -> Vec<usize> {
        let mut f: Vec<usize> = self.own.iter().chain(&self.shared).copied().collect();
        f.sort_unstable();
        f
    }
}

/// `<x, y>_S` on one block whose covariance `s` is `dim x dim` row-major.
fn block_ip(s: &[f64], x: &[f64], y: &[f64]) -> f64 {
    let dim = x.len();
    let mut acc = 0.0;
    for r in 0..dim {
        if x[r] == 0.0 {
            continue;
        }
        let row = &s[r * dim..(r + 1) * dim];
        acc += x[r] * row.iter().zip(y).map(|(s, y)| s * y).sum::<f64>();
    }
    acc
}

/// Removes from `v` its S-projection on each of `basis` (S-orthonormal), twice.
fn orthogonalise(s: &[f64], v: &mut [f64], basis: &[Vec<f64>]) {
    for _ in 0..2 {
        for b in basis {
            let p = block_ip(s, v, b);
            v.iter_mut().zip(b).for_each(|(x, y)| *x -= p * y);
        }
    }
}

/// A direction of the weight space: one vector per block (empty outside the group's blocks).
type Direction = Vec<Vec<f64>>;

/// A built generator: latent tables, planted structure, task weights and fitted biases.
pub struct Planted {
    cfg: PlantedConfig,
    cards: Vec<usize>,
    samplers: Vec<Alias>,
    /// Centred latent vectors, `n_f x k` row-major per field.
    latent: Vec<Vec<f64>>,
    plans: Vec<GroupPlan>,
    /// `S_f` per field, `k x k` row-major.
    s_field: Vec<Vec<f64>>,
    /// Task index -> group index.
    task_group: Vec<usize>,
    tasks: Vec<TaskModel>,
}

/// Rows held in memory, row-major: `sparse` is `n x F` value ids, `dense` `n x D`,
/// `logits` `n x T` (`z_t`, bias included), `labels` `n x T`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PlantedRows {
    pub n: usize,
    pub n_sparse: usize,
    pub n_dense: usize,
    pub n_tasks: usize,
    pub sparse: Vec<u32>,
    pub dense: Vec<f32>,
    pub logits: Vec<f64>,
    pub labels: Vec<u8>,
}

impl PlantedRows {
    fn clear(&mut self) {
        self.n = 0;
        self.sparse.clear();
        self.dense.clear();
        self.logits.clear();
        self.labels.clear();
    }

    /// Column `t` of the logits.
    pub fn logits_of_task(&self, t: usize) -> Vec<f64> {
        (0..self.n)
            .map(|r| self.logits[r * self.n_tasks + t])
            .collect()
    }

    /// Column `t` of the labels.
    pub fn labels_of_task(&self, t: usize) -> Vec<u8> {
        (0..self.n)
            .map(|r| self.labels[r * self.n_tasks + t])
            .collect()
    }

    /// Column `f` of the sparse values.
    pub fn sparse_of_field(&self, f: usize) -> Vec<u32> {
        (0..self.n)
            .map(|r| self.sparse[r * self.n_sparse + f])
            .collect()
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn rng_stream(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// Draws `n` items of `pool` (shuffled in place) without replacement, sorted.
fn take(pool: &mut Vec<usize>, n: usize) -> Vec<usize> {
    let n = n.min(pool.len());
    let mut out = pool.split_off(pool.len() - n);
    out.sort_unstable();
    out
}

/// One sparse field's Zipf sampler, centred latent table (`n x k`) and covariance `S_f`.
fn field_table(n: usize, cfg: &PlantedConfig, rng: &mut ChaCha8Rng) -> (Alias, Vec<f64>, Vec<f64>) {
    let k = cfg.latent_dim;
    let sd = (1.0 / k as f64).sqrt();
    let mut p: Vec<f64> = (0..n)
        .map(|v| ((v + 1) as f64).powf(-cfg.zipf_exponent))
        .collect();
    let total: f64 = p.iter().sum();
    p.iter_mut().for_each(|x| *x /= total);
    let mut e: Vec<f64> = (0..n * k)
        .map(|_| sd * rng.sample::<f64, _>(StandardNormal))
        .collect();
    let mut mean = vec![0.0; k];
    for (v, &pv) in p.iter().enumerate() {
        for (m, x) in mean.iter_mut().zip(&e[v * k..(v + 1) * k]) {
            *m += pv * x;
        }
    }
    for row in e.chunks_mut(k) {
        row.iter_mut().zip(&mean).for_each(|(x, m)| *x -= m);
    }
    let mut s = vec![0.0; k * k];
    for (v, &pv) in p.iter().enumerate() {
        let ev = &e[v * k..(v + 1) * k];
        for r in 0..k {
            for c in 0..k {
                s[r * k + c] += pv * ev[r] * ev[c];
            }
        }
    }
    (Alias::new(&p), e, s)
}

/// Each group's relevant fields, conflict fields, interactions and dense fields.
fn plan_groups(cfg: &PlantedConfig, rng: &mut ChaCha8Rng) -> Vec<GroupPlan> {
    let n_groups = cfg.groups.len();
    let half = cfg.n_sparse / 2;
    let mut low: Vec<usize> = (0..half).collect();
    let mut high: Vec<usize> = (half..cfg.n_sparse).collect();
    low.shuffle(rng);
    high.shuffle(rng);
    let mut plans: Vec<GroupPlan> = Vec::with_capacity(n_groups);
    for _ in 0..n_groups {
        let want_low = cfg.fields_per_group / 2;
        let mut own = take(&mut low, want_low);
        let more = take(&mut high, cfg.fields_per_group - own.len());
        own.extend(more);
        let missing = cfg.fields_per_group - own.len();
        own.extend(take(&mut low, missing));
        own.sort_unstable();
        plans.push(GroupPlan {
            own,
            shared: Vec::new(),
            inters: Vec::new(),
            dense: Vec::new(),
        });
    }
    if cfg.between_groups == BetweenGroups::Conflict {
        for g in 1..n_groups {
            let mut prev = plans[g - 1].own.clone();
            prev.shuffle(rng);
            plans[g].shared = take(&mut prev, cfg.conflict_fields);
        }
    }
    for plan in plans.iter_mut() {
        let own = &plan.own;
        let mut pairs: Vec<(usize, usize)> = (0..own.len())
            .flat_map(|a| ((a + 1)..own.len()).map(move |b| (a, b)))
            .map(|(a, b)| (own[a], own[b]))
            .collect();
        pairs.shuffle(rng);
        pairs.truncate(cfg.interactions_per_group);
        pairs.sort_unstable();
        plan.inters = pairs;
    }
    let mut dense_pool: Vec<usize> = (0..cfg.n_dense).collect();
    dense_pool.shuffle(rng);
    for plan in plans.iter_mut() {
        plan.dense = take(&mut dense_pool, cfg.dense_per_group);
    }

    plans
}

/// The task weights (block by block, see the module documentation) and each task's group.
fn task_models(
    cfg: &PlantedConfig,
    plans: &[GroupPlan],
    s_field: &[Vec<f64>],
    rng: &mut ChaCha8Rng,
) -> Result<(Vec<TaskModel>, Vec<usize>)> {
    let k = cfg.latent_dim;
    let n_groups = cfg.groups.len();
    // The blocks of phi and their exact covariances: fields, planted pairs, dense fields.
    let mut inters = Vec::new();
    let mut inter_ids: Vec<Vec<usize>> = Vec::with_capacity(n_groups);
    for plan in plans {
        inter_ids.push((inters.len()..inters.len() + plan.inters.len()).collect());
        inters.extend(plan.inters.iter().copied());
    }
    let inter_block = |i: usize| cfg.n_sparse + i;
    let dense_block = |j: usize| cfg.n_sparse + inters.len() + j;
    let mut s_block: Vec<Vec<f64>> = s_field.to_vec();
    for &(f, h) in &inters {
        s_block.push(
            s_field[f]
                .iter()
                .zip(&s_field[h])
                .map(|(a, b)| a * b)
                .collect(),
        );
    }
    s_block.extend((0..cfg.n_dense).map(|_| vec![1.0]));
    let block_dim = |b: usize| if b < dense_block(0) { k } else { 1 };
    let n_blocks = s_block.len();

    // Each group's blocks and their shares pi_b of the logit variance.
    let i2 = cfg.interaction_scale * cfg.interaction_scale;
    let shares: Vec<Vec<(usize, f64)>> = plans
        .iter()
        .zip(&inter_ids)
        .map(|(p, ids)| {
            let mut w: Vec<(usize, f64)> = p.fields().into_iter().map(|f| (f, 1.0)).collect();
            w.extend(ids.iter().map(|&i| (inter_block(i), i2)));
            w.extend(p.dense.iter().map(|&j| (dense_block(j), 1.0)));
            let total: f64 = w.iter().map(|x| x.1).sum();
            w.into_iter().map(|(b, x)| (b, x / total)).collect()
        })
        .collect();

    let gaussian = |dim: usize, rng: &mut ChaCha8Rng| -> Vec<f64> {
        (0..dim)
            .map(|_| rng.sample::<f64, _>(StandardNormal))
            .collect()
    };

    // Base directions: block b of u_g has S-norm^2 pi_b; on a conflict field it is minus
    // group g-1's.
    let mut bases: Vec<Direction> = Vec::with_capacity(n_groups);
    for g in 0..n_groups {
        let mut u: Direction = vec![Vec::new(); n_blocks];
        for &(b, share) in &shares[g] {
            let s = &s_block[b];
            let v = if plans[g].shared.contains(&b) {
                bases[g - 1][b].iter().map(|x| -x).collect()
            } else {
                gaussian(block_dim(b), rng)
            };
            let norm2 = block_ip(s, &v, &v);
            if norm2.is_nan() || norm2 <= 0.0 {
                return Err(DataError::config(format!(
                    "planted: field block {b} of group `{}` has no variance",
                    cfg.groups[g].name
                )));
            }
            let c = (share / norm2).sqrt();
            u[b] = v.into_iter().map(|x| x * c).collect();
        }
        bases.push(u);
    }

    // Own directions: block by block S-orthogonal to every base and every earlier own
    // direction there, with S-norm^2 pi_b where the block has room (not in a dense block),
    // then scaled to unit S-norm.
    let mut owns: Vec<Direction> = Vec::new();
    let mut task_group = Vec::new();
    for (g, group) in cfg.groups.iter().enumerate() {
        for task in &group.tasks {
            let mut v: Direction = vec![Vec::new(); n_blocks];
            for &(b, share) in &shares[g] {
                let s = &s_block[b];
                let mut basis: Vec<Vec<f64>> = Vec::new();
                for c in bases.iter().chain(&owns) {
                    if c[b].is_empty() {
                        continue;
                    }
                    let mut c = c[b].clone();
                    orthogonalise(s, &mut c, &basis);
                    let norm = block_ip(s, &c, &c).sqrt();
                    if norm > 1e-9 {
                        c.iter_mut().for_each(|x| *x /= norm);
                        basis.push(c);
                    }
                }
                let mut x = gaussian(block_dim(b), rng);
                let before = block_ip(s, &x, &x).sqrt();
                orthogonalise(s, &mut x, &basis);
                let norm = block_ip(s, &x, &x).sqrt();
                if norm > 1e-6 * before {
                    let c = share.sqrt() / norm;
                    v[b] = x.into_iter().map(|x| x * c).collect();
                } else {
                    v[b] = vec![0.0; block_dim(b)];
                }
            }
            let total: f64 = (0..n_blocks)
                .filter(|&b| !v[b].is_empty())
                .map(|b| block_ip(&s_block[b], &v[b], &v[b]))
                .sum();
            if total.is_nan() || total <= 1e-12 {
                return Err(DataError::config(format!(
                    "planted: task `{}` has no room for a direction of its own: group `{}` \
                         has too many tasks for latent_dim {k}",
                    task.name, group.name
                )));
            }
            let c = total.sqrt().recip();
            v.iter_mut().flatten().for_each(|x| *x *= c);
            owns.push(v);
            task_group.push(g);
        }
    }

    // Task weights w_t = a_t u_g + sqrt(1 - |rho|) v_t.
    let mut tasks = Vec::with_capacity(owns.len());
    let mut first_of_group = vec![true; n_groups];
    for (t, v) in owns.iter().enumerate() {
        let g = task_group[t];
        let rho: f64 = cfg.groups[g].correlation;
        let sign = if rho < 0.0 && !first_of_group[g] {
            -1.0
        } else {
            1.0
        };
        first_of_group[g] = false;
        let (a, c) = (sign * rho.abs().sqrt(), (1.0 - rho.abs()).max(0.0).sqrt());
        let w = |b: usize| -> Vec<f64> {
            bases[g][b]
                .iter()
                .zip(&v[b])
                .map(|(u, v)| a * u + c * v)
                .collect()
        };
        let plan = &plans[g];
        tasks.push(TaskModel {
            fields: plan.fields().into_iter().map(|f| (f, w(f))).collect(),
            inters: inter_ids[g]
                .iter()
                .map(|&i| {
                    let (f, h) = inters[i];
                    (f, h, w(inter_block(i)))
                })
                .collect(),
            dense: plan
                .dense
                .iter()
                .map(|&j| (j, w(dense_block(j))[0]))
                .collect(),
            bias: 0.0,
        });
    }

    Ok((tasks, task_group))
}

impl Planted {
    /// Validates the config and builds the generator (latent tables, structure, weights,
    /// biases on the pilot sample).
    pub fn new(cfg: &PlantedConfig) -> Result<Planted> {
        cfg.validate()?;
        let cards = cardinalities(cfg);
        let mut rng = rng_stream(cfg.seed, STREAM_STRUCTURE);

        // Value distributions, centred latent tables and their covariances S_f.
        let mut samplers = Vec::with_capacity(cfg.n_sparse);
        let mut latent = Vec::with_capacity(cfg.n_sparse);
        let mut s_field = Vec::with_capacity(cfg.n_sparse);
        for &n in &cards {
            let (sampler, e, s) = field_table(n, cfg, &mut rng);
            samplers.push(sampler);
            latent.push(e);
            s_field.push(s);
        }
        let plans = plan_groups(cfg, &mut rng);
        let (tasks, task_group) = task_models(cfg, &plans, &s_field, &mut rng)?;

        let mut planted = Planted {
            cfg: cfg.clone(),
            cards,
            samplers,
            latent,
            plans,
            s_field,
            task_group,
            tasks,
        };
        planted.fit_biases();
        Ok(planted)
    }

    /// Fits each `b_t` by bisection on the pilot sample.
    fn fit_biases(&mut self) {
        let n = self.cfg.pilot_rows;
        let t_count = self.tasks.len();
        let mut rng = rng_stream(self.cfg.seed, STREAM_PILOT);
        let mut x = vec![0u32; self.cfg.n_sparse];
        let mut d = vec![0f32; self.cfg.n_dense];
        let mut zeta = vec![0.0; n * t_count];
        for r in 0..n {
            self.draw_inputs(&mut rng, &mut x, &mut d);
            for t in 0..t_count {
                zeta[r * t_count + t] = self.standardised_logit(t, &x, &d);
            }
        }
        let s = self.cfg.signal_scale;
        let rates: Vec<f64> = self
            .cfg
            .groups
            .iter()
            .flat_map(|g| g.tasks.iter().map(|t| t.positive_rate))
            .collect();
        for (t, task) in self.tasks.iter_mut().enumerate() {
            let mean_at = |b: f64| -> f64 {
                (0..n)
                    .map(|r| sigmoid(s * zeta[r * t_count + t] + b))
                    .sum::<f64>()
                    / n as f64
            };
            let (mut lo, mut hi) = (-60.0f64, 60.0f64);
            for _ in 0..100 {
                let mid = 0.5 * (lo + hi);
                if mean_at(mid) < rates[t] {
                    lo = mid;
                } else {
                    hi = mid;
                }
                if hi - lo < 1e-10 {
                    break;
                }
            }
            task.bias = 0.5 * (lo + hi);
        }
        tracing::debug!(
            biases = ?self.tasks.iter().map(|t| t.bias).collect::<Vec<_>>(),
            "planted: biases fitted"
        );
    }

    fn draw_inputs(&self, rng: &mut ChaCha8Rng, x: &mut [u32], d: &mut [f32]) {
        for (xf, s) in x.iter_mut().zip(&self.samplers) {
            *xf = s.sample(rng);
        }
        for dj in d.iter_mut() {
            *dj = rng.sample::<f64, _>(StandardNormal) as f32;
        }
    }

    /// `zeta_t(x)`: unit variance, mean 0, before scale and bias.
    fn standardised_logit(&self, t: usize, x: &[u32], d: &[f32]) -> f64 {
        let k = self.cfg.latent_dim;
        let e = |f: usize| -> &[f64] {
            let v = x[f] as usize;
            &self.latent[f][v * k..(v + 1) * k]
        };
        let m = &self.tasks[t];
        let mut z = 0.0;
        for (f, w) in &m.fields {
            z += w.iter().zip(e(*f)).map(|(a, b)| a * b).sum::<f64>();
        }
        for (f, h, w) in &m.inters {
            let (ef, eh) = (e(*f), e(*h));
            z += (0..k).map(|i| w[i] * ef[i] * eh[i]).sum::<f64>();
        }
        for &(j, a) in &m.dense {
            z += a * f64::from(d[j]);
        }
        z
    }

    pub fn config(&self) -> &PlantedConfig {
        &self.cfg
    }

    pub fn cardinalities(&self) -> &[usize] {
        &self.cards
    }

    /// Task names in output order.
    pub fn task_names(&self) -> Vec<String> {
        self.cfg
            .groups
            .iter()
            .flat_map(|g| g.tasks.iter().map(|t| t.name.clone()))
            .collect()
    }

    /// The fitted biases `b_t`, in task order.
    pub fn biases(&self) -> Vec<f64> {
        self.tasks.iter().map(|t| t.bias).collect()
    }

    /// How task `t`'s standardised logit variance (1) divides among its terms, from the exact
    /// covariance: `(term, share)` with terms named `f03`, `f03*f08` and `d1`.
    pub fn variance_shares(&self, t: usize) -> Vec<(String, f64)> {
        let k = self.cfg.latent_dim;
        let names = sparse_names(self.cfg.n_sparse);
        let quad = |s: &dyn Fn(usize) -> f64, w: &[f64]| -> f64 {
            (0..k)
                .map(|r| (0..k).map(|c| w[r] * s(r * k + c) * w[c]).sum::<f64>())
                .sum()
        };
        let Some(m) = self.tasks.get(t) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (f, w) in &m.fields {
            out.push((names[*f].clone(), quad(&|i| self.s_field[*f][i], w)));
        }
        for (f, h, w) in &m.inters {
            let s = |i: usize| self.s_field[*f][i] * self.s_field[*h][i];
            out.push((format!("{}*{}", names[*f], names[*h]), quad(&s, w)));
        }
        for &(j, a) in &m.dense {
            out.push((format!("d{j}"), a * a));
        }
        out
    }

    /// The schema of the written files: sparse `f00..`, dense `d0..`, binary tasks.
    pub fn schema(&self) -> Schema {
        Schema {
            columns: None,
            sparse: sparse_names(self.cfg.n_sparse)
                .into_iter()
                .map(SparseField::new)
                .collect(),
            dense: dense_names(self.cfg.n_dense)
                .into_iter()
                .map(DenseField::new)
                .collect(),
            tasks: self
                .task_names()
                .into_iter()
                .map(|n| TaskSpec::new(n.clone(), TaskKind::Binary, n))
                .collect(),
        }
    }

    /// The data rows from the first one on.
    pub fn stream(&self) -> RowStream<'_> {
        RowStream {
            planted: self,
            rng: rng_stream(self.cfg.seed, STREAM_ROWS),
            x: vec![0; self.cfg.n_sparse],
            d: vec![0.0; self.cfg.n_dense],
        }
    }

    /// The first `rows` data rows, in memory (for tests and small sizes).
    pub fn generate(&self, rows: usize) -> PlantedRows {
        let mut out = PlantedRows::default();
        self.stream().fill(rows, &mut out);
        out
    }

    /// The ground truth of `rows` written rows with the given observed positive rates.
    pub fn truth(&self, rows: usize, observed: &[f64]) -> GroundTruth {
        let sp = sparse_names(self.cfg.n_sparse);
        let dn = dense_names(self.cfg.n_dense);
        let mut rel_sparse = vec![false; self.cfg.n_sparse];
        let mut rel_dense = vec![false; self.cfg.n_dense];
        for (g, p) in self.plans.iter().enumerate() {
            p.fields().into_iter().for_each(|f| rel_sparse[f] = true);
            if self.cfg.groups[g].correlation != 0.0 {
                p.dense.iter().for_each(|&j| rel_dense[j] = true);
            }
        }
        let mut tasks = Vec::new();
        for (t, name) in self.task_names().into_iter().enumerate() {
            let g = self.task_group[t];
            let p = &self.plans[g];
            let spec = &self.cfg.groups[g];
            let rate = spec
                .tasks
                .iter()
                .find(|x| x.name == name)
                .map_or(f64::NAN, |x| x.positive_rate);
            tasks.push(TaskTruth {
                name,
                group: spec.name.clone(),
                positive_rate: rate,
                observed_positive_rate: observed.get(t).copied().unwrap_or(f64::NAN),
                relevant_fields: p.fields().into_iter().map(|f| sp[f].clone()).collect(),
                relevant_dense: if spec.correlation != 0.0 {
                    p.dense.iter().map(|&j| dn[j].clone()).collect()
                } else {
                    Vec::new()
                },
                interactions: p
                    .inters
                    .iter()
                    .map(|&(f, h)| [sp[f].clone(), sp[h].clone()])
                    .collect(),
            });
        }
        GroundTruth {
            kind: "recsys".into(),
            rows,
            seed: self.cfg.seed,
            sparse_fields: sp
                .iter()
                .enumerate()
                .map(|(f, n)| SparseTruth {
                    name: n.clone(),
                    cardinality: self.cards[f],
                    relevant: rel_sparse[f],
                })
                .collect(),
            dense_fields: dn
                .iter()
                .enumerate()
                .map(|(j, n)| DenseTruth {
                    name: n.clone(),
                    relevant: rel_dense[j],
                })
                .collect(),
            groups: self
                .cfg
                .groups
                .iter()
                .map(|g| GroupTruth {
                    name: g.name.clone(),
                    tasks: g.tasks.iter().map(|t| t.name.clone()).collect(),
                    correlation: g.correlation,
                })
                .collect(),
            between_groups: self.cfg.between_groups,
            tasks,
            config: self.cfg.clone(),
        }
    }

    /// [`write`] with a given chunk size (rows generated and flushed at a time; it does not
    /// change the rows).
    pub fn write_chunked(
        &self,
        rows: usize,
        path: &Path,
        chunk_rows: usize,
    ) -> Result<GroundTruth> {
        if rows == 0 {
            return Err(DataError::config("planted: rows must be at least 1"));
        }
        let chunk_rows = chunk_rows.max(1);
        let format = OutputFormat::of(path)?;
        let positives = match format {
            OutputFormat::Csv => self.write_csv(rows, path, chunk_rows)?,
            OutputFormat::Parquet => self.write_parquet(rows, path, chunk_rows)?,
        };
        let observed: Vec<f64> = positives.iter().map(|&p| p as f64 / rows as f64).collect();

        let schema = self.schema();
        let truth = self.truth(rows, &observed);
        let schema_file = schema_path(path);
        let truth_file = truth_path(path);
        let text = format!(
            "# Planted multi-task data (`mtrec data synth --kind recsys`, seed {}, {rows} rows);\n\
             # what was planted is in the `.truth.json` file beside this one.\n\n{}",
            self.cfg.seed,
            schema.try_to_toml_string()?
        );
        write_atomically(&schema_file, |w| {
            w.write_all(text.as_bytes())
                .map_err(|e| DataError::io(&schema_file, e))
        })?;
        let json = serde_json::to_string_pretty(&truth).map_err(|e| DataError::Json {
            path: truth_file.clone(),
            message: e.to_string(),
        })?;
        write_atomically(&truth_file, |w| {
            w.write_all(json.as_bytes())
                .and_then(|_| w.write_all(b"\n"))
                .map_err(|e| DataError::io(&truth_file, e))
        })?;
        tracing::info!(
            rows,
            path = %path.display(),
            observed = ?observed,
            "planted: data, schema and truth written"
        );
        Ok(truth)
    }

    fn header(&self) -> Vec<String> {
        sparse_names(self.cfg.n_sparse)
            .into_iter()
            .chain(dense_names(self.cfg.n_dense))
            .chain(self.task_names())
            .collect()
    }

    /// Streams the rows to CSV; returns the positive count per task.
    fn write_csv(&self, rows: usize, path: &Path, chunk_rows: usize) -> Result<Vec<u64>> {
        let io = |e: std::io::Error| DataError::io(path, e);
        let csv_err = |e: csv::Error| DataError::io(path, e.into());
        let mut positives = vec![0u64; self.tasks.len()];
        write_atomically(path, |w| {
            let mut out = csv::WriterBuilder::new()
                .buffer_capacity(1 << 16)
                .from_writer(w);
            out.write_record(self.header()).map_err(csv_err)?;
            let mut stream = self.stream();
            let mut chunk = PlantedRows::default();
            let mut buf = String::new();
            let mut done = 0;
            while done < rows {
                let n = chunk_rows.min(rows - done);
                stream.fill(n, &mut chunk);
                let (fs, fd, ft) = (chunk.n_sparse, chunk.n_dense, chunk.n_tasks);
                for r in 0..n {
                    for &v in &chunk.sparse[r * fs..(r + 1) * fs] {
                        buf.clear();
                        let _ = write!(buf, "{v}");
                        out.write_field(&buf).map_err(csv_err)?;
                    }
                    for &v in &chunk.dense[r * fd..(r + 1) * fd] {
                        buf.clear();
                        let _ = write!(buf, "{v}");
                        out.write_field(&buf).map_err(csv_err)?;
                    }
                    for (t, &y) in chunk.labels[r * ft..(r + 1) * ft].iter().enumerate() {
                        positives[t] += u64::from(y);
                        out.write_field(if y == 1 { "1" } else { "0" })
                            .map_err(csv_err)?;
                    }
                    out.write_record(None::<&[u8]>).map_err(csv_err)?;
                }
                done += n;
                tracing::debug!(done, rows, "planted: rows written");
            }
            out.flush().map_err(io)?;
            Ok(())
        })?;
        Ok(positives)
    }

    /// Streams the rows to Parquet, one row group per chunk; returns the positive counts.
    fn write_parquet(&self, rows: usize, path: &Path, chunk_rows: usize) -> Result<Vec<u64>> {
        let perr = |e: &dyn std::fmt::Display| DataError::Parquet {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let (fs, fd) = (self.cfg.n_sparse, self.cfg.n_dense);
        let names = self.header();
        let ft = names.len() - fs - fd;
        let fields: Vec<Field> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let dt = if i < fs {
                    DataType::Int64
                } else if i < fs + fd {
                    DataType::Float32
                } else {
                    DataType::Int8
                };
                Field::new(n, dt, false)
            })
            .collect();
        let schema = Arc::new(arrow_schema::Schema::new(fields));
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(chunk_rows))
            .build();
        let mut positives = vec![0u64; ft];
        write_atomically(path, |w| {
            let mut writer =
                ArrowWriter::try_new(w, schema.clone(), Some(props)).map_err(|e| perr(&e))?;
            let mut stream = self.stream();
            let mut chunk = PlantedRows::default();
            let mut done = 0;
            while done < rows {
                let n = chunk_rows.min(rows - done);
                stream.fill(n, &mut chunk);
                let mut cols: Vec<ArrayRef> = Vec::with_capacity(names.len());
                for f in 0..fs {
                    let a: Int64Array = (0..n)
                        .map(|r| i64::from(chunk.sparse[r * fs + f]))
                        .collect();
                    cols.push(Arc::new(a));
                }
                for j in 0..fd {
                    let a: Float32Array = (0..n).map(|r| chunk.dense[r * fd + j]).collect();
                    cols.push(Arc::new(a));
                }
                for (t, pos) in positives.iter_mut().enumerate() {
                    let a: Int8Array = (0..n).map(|r| chunk.labels[r * ft + t] as i8).collect();
                    *pos += (0..n)
                        .map(|r| u64::from(chunk.labels[r * ft + t]))
                        .sum::<u64>();
                    cols.push(Arc::new(a));
                }
                let batch = RecordBatch::try_new(schema.clone(), cols).map_err(|e| perr(&e))?;
                writer.write(&batch).map_err(|e| perr(&e))?;
                writer.flush().map_err(|e| perr(&e))?;
                done += n;
                tracing::debug!(done, rows, "planted: rows written");
            }
            writer.close().map_err(|e| perr(&e))?;
            Ok(())
        })?;
        Ok(positives)
    }
}

/// The data rows of a [`Planted`] generator, drawn one after the other.
pub struct RowStream<'a> {
    planted: &'a Planted,
    rng: ChaCha8Rng,
    x: Vec<u32>,
    d: Vec<f32>,
}

impl RowStream<'_> {
    /// Replaces the contents of `out` with the next `n` rows.
    pub fn fill(&mut self, n: usize, out: &mut PlantedRows) {
        let p = self.planted;
        let t_count = p.tasks.len();
        out.clear();
        out.n_sparse = p.cfg.n_sparse;
        out.n_dense = p.cfg.n_dense;
        out.n_tasks = t_count;
        let s = p.cfg.signal_scale;
        for _ in 0..n {
            p.draw_inputs(&mut self.rng, &mut self.x, &mut self.d);
            out.sparse.extend_from_slice(&self.x);
            out.dense.extend_from_slice(&self.d);
            let first = out.logits.len();
            for t in 0..t_count {
                let z = s * p.standardised_logit(t, &self.x, &self.d) + p.tasks[t].bias;
                out.logits.push(z);
            }
            for t in 0..t_count {
                let prob = sigmoid(out.logits[first + t]);
                out.labels.push(u8::from(self.rng.random::<f64>() < prob));
            }
        }
        out.n = n;
    }
}

enum OutputFormat {
    Csv,
    Parquet,
}

impl OutputFormat {
    fn of(path: &Path) -> Result<OutputFormat> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "csv" => Ok(OutputFormat::Csv),
            "parquet" | "pq" => Ok(OutputFormat::Parquet),
            _ => Err(DataError::config(format!(
                "planted: cannot tell the output format of {}: name it .csv, .parquet or .pq",
                path.display()
            ))),
        }
    }
}

/// Builds the generator of `cfg` and writes `rows` rows to `path` (`.csv`, or `.parquet` /
/// `.pq`), its schema to [`schema_path`] and its ground truth to [`truth_path`]; the rows are
/// generated and written [`DEFAULT_CHUNK_ROWS`] at a time.
pub fn write(cfg: &PlantedConfig, rows: usize, path: &Path) -> Result<GroundTruth> {
    Planted::new(cfg)?.write_chunked(rows, path, DEFAULT_CHUNK_ROWS)
}

/// The first `rows` rows of `cfg`'s data, in memory.
pub fn generate(cfg: &PlantedConfig, rows: usize) -> Result<PlantedRows> {
    Ok(Planted::new(cfg)?.generate(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_cardinalities_are_log_uniform_from_10_to_100k() {
        let c = cardinalities(&PlantedConfig::default());
        assert_eq!(c.len(), 20);
        assert_eq!((c[0], c[19]), (10, 100_000));
        assert!(c.windows(2).all(|w| w[0] < w[1]), "{c:?}");
        assert_eq!(sparse_names(20)[3], "f03");
        assert_eq!(sparse_names(150)[3], "f003");
    }

    #[test]
    fn alias_table_reproduces_the_distribution() {
        let p = [0.5, 0.3, 0.15, 0.05];
        let a = Alias::new(&p);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut counts = [0usize; 4];
        let n = 200_000;
        for _ in 0..n {
            counts[a.sample(&mut rng) as usize] += 1;
        }
        for (c, p) in counts.iter().zip(p) {
            assert!((*c as f64 / n as f64 - p).abs() < 0.005, "{counts:?}");
        }
    }

    #[test]
    fn weights_have_unit_variance_and_the_planted_correlation_in_the_population() {
        // Rebuild the S-geometry check from the task models: Var(zeta) = 1 exactly.
        let p = Planted::new(&PlantedConfig {
            pilot_rows: 1000,
            ..PlantedConfig::default()
        })
        .expect("builds");
        let k = p.cfg.latent_dim;
        let mut s_field = Vec::new();
        for (f, &n) in p.cards.iter().enumerate() {
            let mut w: Vec<f64> = (0..n)
                .map(|v| ((v + 1) as f64).powf(-p.cfg.zipf_exponent))
                .collect();
            let tot: f64 = w.iter().sum();
            w.iter_mut().for_each(|x| *x /= tot);
            let mut s = vec![0.0; k * k];
            for (v, pv) in w.iter().enumerate() {
                let e = &p.latent[f][v * k..(v + 1) * k];
                for r in 0..k {
                    for c in 0..k {
                        s[r * k + c] += pv * e[r] * e[c];
                    }
                }
            }
            s_field.push(s);
        }
        let quad = |s: &[f64], a: &[f64], b: &[f64]| -> f64 {
            (0..k)
                .map(|r| (0..k).map(|c| a[r] * s[r * k + c] * b[c]).sum::<f64>())
                .sum()
        };
        let cov = |a: &TaskModel, b: &TaskModel| -> f64 {
            let mut acc = 0.0;
            for (f, wa) in &a.fields {
                if let Some((_, wb)) = b.fields.iter().find(|(g, _)| g == f) {
                    acc += quad(&s_field[*f], wa, wb);
                }
            }
            for (f, h, wa) in &a.inters {
                if let Some((_, _, wb)) = b.inters.iter().find(|(g, i, _)| g == f && i == h) {
                    let s: Vec<f64> = s_field[*f]
                        .iter()
                        .zip(&s_field[*h])
                        .map(|(x, y)| x * y)
                        .collect();
                    acc += quad(&s, wa, wb);
                }
            }
            for (j, a) in &a.dense {
                if let Some((_, b)) = b.dense.iter().find(|(i, _)| i == j) {
                    acc += a * b;
                }
            }
            acc
        };
        let t = &p.tasks;
        for m in t {
            assert!((cov(m, m) - 1.0).abs() < 1e-9, "{}", cov(m, m));
        }
        assert!((cov(&t[0], &t[1]) - 0.8).abs() < 1e-9);
        assert!((cov(&t[1], &t[2]) - 0.8).abs() < 1e-9);
        assert!((cov(&t[3], &t[4]) - 0.8).abs() < 1e-9);
        assert!(cov(&t[0], &t[3]) < -0.05, "{}", cov(&t[0], &t[3]));

        // Every term's share is fixed: g0 has 6 fields, 2 interactions and 1 dense field
        // (pi = 1/9), so a sparse term carries 0.8/9 + 0.2/8 and the dense one 0.8/9.
        for task in 0..3 {
            for (name, share) in p.variance_shares(task) {
                let want = if name.starts_with('d') {
                    0.8 / 9.0
                } else {
                    0.8 / 9.0 + 0.2 / 8.0
                };
                assert!((share - want).abs() < 1e-9, "task {task} {name}: {share}");
            }
        }
    }
}
