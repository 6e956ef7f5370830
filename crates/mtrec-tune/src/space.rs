//! The search space: which config keys to tune, over what ranges, for which objective.
//!
//! A space is its own TOML file rather than a `[tune]` section of the experiment config: the
//! configs stay exactly what `mtrec train` reads (their sections are checked strictly, and a
//! tuning section would be an unknown key there), one space serves every config of a family
//! (all MoE models share `model.n_experts`), and the best trial's config is written without
//! any tuning leftovers.
//!
//! ```toml
//! trials = 30          # the budget: trained configs, failed ones included
//! initial = 6          # a Latin hypercube of this many points before the GP proposes
//! seed = 1             # seeds the design and the proposals (training keeps the config's seed)
//!
//! [objective]
//! metric = "valid.income.auc"   # valid.<task>.{auc,logloss,mse} | valid.mean-auc | valid.loss
//! direction = "max"             # default: max for AUCs, min for the rest
//!
//! [[param]]
//! key = "train.learning_rate"
//! min = 1e-4
//! max = 1e-2
//! log = true
//!
//! [[param]]
//! key = "model.n_experts"
//! type = "int"
//! min = 2
//! max = 16
//!
//! [[param]]
//! key = "model.expert"          # a list of layer widths: layers = 1 writes [w]
//! type = "int"
//! min = 8
//! max = 128
//! log = true
//! layers = 1
//!
//! [[param]]
//! key = "weighting.kind"        # type = "choice" is implied by `values`
//! values = ["fixed", "uncertainty"]
//! ```
//!
//! The optimiser works in an encoded space, the unit cube: a float or an integer is one
//! coordinate in [0, 1] (of its logarithm where `log = true`), a choice among K values is K
//! one-hot coordinates. An integer `v` owns the slice `[v - 1/2, v + 1/2]` of its range, so
//! every integer is equally likely under uniform sampling and decoding rounds; floats are
//! rounded to four significant digits, which keeps logs and `best.toml` readable and costs
//! nothing a validation figure could resolve.

/// The most layers a `layers` parameter may ask for; far beyond any network's depth.
pub const MAX_LAYERS: usize = 64;

/// The largest initial design: each point is a trained model, so a bigger one is a typo, and
/// the design is drawn whole before the first trial (found by `fuzz/`'s `tune_space`: an
/// `initial` of 25 million ran out of memory).
pub const MAX_INITIAL: usize = 10_000;

use std::collections::BTreeMap;
use std::path::Path;

use rand::Rng;
use rand::seq::SliceRandom;
use serde::Deserialize;
use toml::Spanned;

use crate::TuneError;
use crate::objective::{Direction, Metric, Objective};

/// Tuned values by config key.
pub type Assignment = BTreeMap<String, toml::Value>;

/// Latin hypercubes drawn at most to find one without a repeated point (see
/// [`Space::latin_hypercube`]); a few suffice wherever a design without repeats is likely.
const DESIGN_DRAWS: usize = 200;

#[derive(Debug, Clone, PartialEq)]
pub struct Space {
    pub params: Vec<Param>,
    pub objective: Objective,
    /// The budget in trials (failed trials count: a config that always fails must not loop).
    pub trials: usize,
    /// Trials drawn from the initial design before the surrogate proposes.
    pub initial: usize,
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// A dotted config key, as `--set` takes it: `train.learning_rate`.
    pub key: String,
    pub kind: ParamKind,
    /// The line of its key in the space file, for messages about it.
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ParamKind {
    Float {
        min: f64,
        max: f64,
        log: bool,
    },
    Int {
        min: i64,
        max: i64,
        log: bool,
        /// Write the value as a list of this many copies (`model.expert = [w]`).
        layers: Option<usize>,
    },
    Choice {
        values: Vec<toml::Value>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpace {
    #[serde(default = "default_trials")]
    trials: usize,
    initial: Option<usize>,
    #[serde(default)]
    seed: u64,
    objective: RawObjective,
    #[serde(default, rename = "param")]
    params: Vec<RawParam>,
}

fn default_trials() -> usize {
    20
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObjective {
    metric: Spanned<String>,
    direction: Option<Direction>,
}

#[derive(Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum RawKind {
    Float,
    Int,
    Choice,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParam {
    key: Spanned<String>,
    #[serde(rename = "type")]
    kind: Option<RawKind>,
    min: Option<toml::Value>,
    max: Option<toml::Value>,
    log: Option<bool>,
    layers: Option<usize>,
    values: Option<Vec<toml::Value>>,
}

impl Space {
    pub fn from_toml_file(path: &Path) -> Result<Self, TuneError> {
        let text = std::fs::read_to_string(path).map_err(|e| TuneError::io(path, e))?;
        Self::from_toml_str(&text, path)
    }

    /// Parses and checks a space; `origin` names the file in errors.
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<Self, TuneError> {
        let err = |line: Option<usize>, message: String| TuneError::Space {
            path: origin.to_path_buf(),
            line,
            message,
        };
        let raw: RawSpace = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            err(line, e.message().trim_end().to_string())
        })?;
        let metric_line = line_of(text, raw.objective.metric.span().start);
        let metric = Metric::parse(raw.objective.metric.get_ref())
            .map_err(|m| err(Some(metric_line), format!("objective.metric {m}")))?;
        let direction = raw
            .objective
            .direction
            .unwrap_or_else(|| metric.natural_direction());
        if raw.trials == 0 {
            return Err(err(None, "trials must be at least 1".into()));
        }
        if raw.params.is_empty() {
            return Err(err(
                None,
                "no [[param]] table: nothing to tune (see `mtrec tune --help` for the format)"
                    .into(),
            ));
        }
        let mut params: Vec<Param> = Vec::with_capacity(raw.params.len());
        for p in raw.params {
            let line = line_of(text, p.key.span().start);
            let param = check_param(p, line).map_err(|m| err(Some(line), m))?;
            if let Some(first) = params.iter().find(|q| q.key == param.key) {
                return Err(err(
                    Some(line),
                    format!(
                        "param `{}` is already tuned at line {}",
                        param.key, first.line
                    ),
                ));
            }
            params.push(param);
        }
        let initial = raw.initial.unwrap_or((params.len() + 1).max(3));
        if initial == 0 {
            return Err(err(None, "initial must be at least 1".into()));
        }
        if initial > MAX_INITIAL {
            return Err(err(
                None,
                format!("initial must be at most {MAX_INITIAL}, got {initial}"),
            ));
        }
        Ok(Self {
            params,
            objective: Objective { metric, direction },
            trials: raw.trials,
            initial,
            seed: raw.seed,
        })
    }

    /// Coordinates of the encoded space.
    pub fn dims(&self) -> usize {
        self.params.iter().map(Param::dims).sum()
    }

    /// The values a point of the encoded space stands for.
    pub fn decode(&self, x: &[f64]) -> Assignment {
        let mut at = 0;
        let mut out = Assignment::new();
        for p in &self.params {
            let d = p.dims();
            out.insert(p.key.clone(), p.decode(&x[at..at + d]));
            at += d;
        }
        out
    }

    /// The point that stands for `values`; an error names a key that is missing or a value
    /// the space cannot produce (a log written for another space).
    pub fn encode(&self, values: &Assignment) -> Result<Vec<f64>, String> {
        if let Some(extra) = values
            .keys()
            .find(|k| !self.params.iter().any(|p| &p.key == *k))
        {
            return Err(format!("`{extra}` is not a parameter of the space"));
        }
        let mut x = Vec::with_capacity(self.dims());
        for p in &self.params {
            let v = values
                .get(&p.key)
                .ok_or_else(|| format!("no value for `{}`", p.key))?;
            x.extend(p.encode(v).map_err(|m| format!("`{}`: {m}", p.key))?);
        }
        Ok(x)
    }

    /// The nearest point whose values can be written to a config: integers at their slot's
    /// centre, one-hot choices, floats at four significant digits.
    pub fn snap(&self, x: &[f64]) -> Vec<f64> {
        self.encode(&self.decode(x))
            .expect("decoded values always encode")
    }

    /// A uniformly random point of the space, snapped.
    pub fn sample<R: Rng>(&self, rng: &mut R) -> Vec<f64> {
        let mut x = Vec::with_capacity(self.dims());
        for p in &self.params {
            match &p.kind {
                ParamKind::Choice { values } => {
                    let k = rng.random_range(0..values.len());
                    x.extend((0..values.len()).map(|i| if i == k { 1.0 } else { 0.0 }));
                }
                _ => x.push(rng.random::<f64>()),
            }
        }
        self.snap(&x)
    }

    /// `n` points of a Latin hypercube: each numeric parameter's range cut into `n` equal
    /// slices with one point in each, each choice's values used equally often (up to one).
    ///
    /// Training is seeded, so a point drawn twice is a trial that teaches nothing. With choices
    /// and narrow integers the shuffles can pair the same values twice (two choices of two
    /// values give four configs, and three points repeat one about a third of the time), so a
    /// design with a repeat is drawn again, keeping the one with fewest repeats where the space
    /// has fewer distinct points than `n`.
    pub fn latin_hypercube<R: Rng>(&self, n: usize, rng: &mut R) -> Vec<Vec<f64>> {
        let mut best: Option<(usize, Vec<Vec<f64>>)> = None;
        for _ in 0..DESIGN_DRAWS {
            let design = self.latin_hypercube_once(n, rng);
            let repeats = (0..design.len())
                .filter(|&i| design[..i].contains(&design[i]))
                .count();
            if best.as_ref().is_none_or(|(r, _)| repeats < *r) {
                best = Some((repeats, design));
            }
            if repeats == 0 {
                break;
            }
        }
        best.map(|(_, d)| d).unwrap_or_default()
    }

    fn latin_hypercube_once<R: Rng>(&self, n: usize, rng: &mut R) -> Vec<Vec<f64>> {
        let mut points = vec![Vec::with_capacity(self.dims()); n];
        for p in &self.params {
            let mut slots: Vec<usize> = (0..n).collect();
            slots.shuffle(rng);
            match &p.kind {
                ParamKind::Choice { values } => {
                    let k = values.len();
                    // Slot i takes value i mod k: the shuffle decides which point gets which.
                    for (point, slot) in points.iter_mut().zip(&slots) {
                        point.extend((0..k).map(|j| if j == slot % k { 1.0 } else { 0.0 }));
                    }
                }
                _ => {
                    for (point, slot) in points.iter_mut().zip(&slots) {
                        point.push((*slot as f64 + rng.random::<f64>()) / n as f64);
                    }
                }
            }
        }
        points.iter().map(|x| self.snap(x)).collect()
    }

    /// The tuned parameter that a config key (dotted, split into parts) falls under: the
    /// key itself or a key inside it, which a fixed value could only fight with.
    pub fn param_covering(&self, path: &[String]) -> Option<&Param> {
        self.params.iter().find(|p| {
            let key: Vec<&str> = p.key.split('.').map(str::trim).collect();
            key.len() <= path.len() && key.iter().zip(path).all(|(k, q)| *k == q.trim())
        })
    }

    /// `key=value` strings, in the space's order, as `mtrec train --set` takes them.
    pub fn overrides(&self, values: &Assignment) -> Vec<String> {
        self.params
            .iter()
            .filter_map(|p| values.get(&p.key).map(|v| format!("{}={v}", p.key)))
            .collect()
    }
}

impl Param {
    pub fn dims(&self) -> usize {
        match &self.kind {
            ParamKind::Choice { values } => values.len(),
            _ => 1,
        }
    }

    /// The parameter's lowest and highest values, or every choice: what a config must accept
    /// for the space to be usable, checked before the first trial.
    pub fn extremes(&self) -> Vec<toml::Value> {
        match &self.kind {
            ParamKind::Choice { values } => values.clone(),
            _ => vec![self.decode(&[0.0]), self.decode(&[1.0])],
        }
    }

    fn decode(&self, x: &[f64]) -> toml::Value {
        match &self.kind {
            ParamKind::Float { min, max, log } => {
                let u = x[0].clamp(0.0, 1.0);
                let v = if *log {
                    (min.ln() + u * (max.ln() - min.ln())).exp()
                } else {
                    min + u * (max - min)
                };
                let rounded = round_significant(v, 4);
                let v = if (*min..=*max).contains(&rounded) {
                    rounded
                } else {
                    v.clamp(*min, *max)
                };
                toml::Value::Float(v)
            }
            ParamKind::Int {
                min,
                max,
                log,
                layers,
            } => {
                let (lo, hi) = int_bounds(*min, *max, *log);
                let t = lo + x[0].clamp(0.0, 1.0) * (hi - lo);
                let v = if *log { t.exp() } else { t };
                let v = (v.round() as i64).clamp(*min, *max);
                match layers {
                    Some(n) => toml::Value::Array(vec![toml::Value::Integer(v); *n]),
                    None => toml::Value::Integer(v),
                }
            }
            ParamKind::Choice { values } => {
                let mut best = 0;
                for (i, v) in x.iter().enumerate() {
                    if *v > x[best] {
                        best = i;
                    }
                }
                values[best].clone()
            }
        }
    }

    fn encode(&self, value: &toml::Value) -> Result<Vec<f64>, String> {
        match &self.kind {
            ParamKind::Float { min, max, log } => {
                let v = match value {
                    toml::Value::Float(v) => *v,
                    toml::Value::Integer(v) => *v as f64,
                    other => return Err(format!("expected a number, got {other}")),
                };
                // Tolerance for a bound written with fewer digits than it has.
                let slack = 1e-9 * (max - min).abs().max(min.abs());
                if !(v >= min - slack && v <= max + slack) {
                    return Err(format!("{v} is outside [{min}, {max}]"));
                }
                let u = if *log {
                    (v.ln() - min.ln()) / (max.ln() - min.ln())
                } else {
                    (v - min) / (max - min)
                };
                Ok(vec![u.clamp(0.0, 1.0)])
            }
            ParamKind::Int {
                min,
                max,
                log,
                layers,
            } => {
                let v = match (value, layers) {
                    (toml::Value::Integer(v), None) => *v,
                    (toml::Value::Array(items), Some(n)) if items.len() == *n => {
                        match items.first() {
                            Some(toml::Value::Integer(v))
                                if items.iter().all(|i| i.as_integer() == Some(*v)) =>
                            {
                                *v
                            }
                            _ => return Err(format!("expected [w; {n}], got {value}")),
                        }
                    }
                    _ => {
                        return Err(match layers {
                            Some(n) => {
                                format!("expected a list of {n} equal integers, got {value}")
                            }
                            None => format!("expected an integer, got {value}"),
                        });
                    }
                };
                if v < *min || v > *max {
                    return Err(format!("{v} is outside [{min}, {max}]"));
                }
                let (lo, hi) = int_bounds(*min, *max, *log);
                let t = if *log { (v as f64).ln() } else { v as f64 };
                Ok(vec![(t - lo) / (hi - lo)])
            }
            ParamKind::Choice { values } => {
                let k = values
                    .iter()
                    .position(|v| v == value)
                    .ok_or_else(|| format!("{value} is not one of the values"))?;
                Ok((0..values.len())
                    .map(|i| if i == k { 1.0 } else { 0.0 })
                    .collect())
            }
        }
    }
}

/// The encoded range of an integer parameter: each integer owns a slice one unit wide
/// (in the logarithm, `[ln(v - 1/2), ln(v + 1/2)]` at the ends).
fn int_bounds(min: i64, max: i64, log: bool) -> (f64, f64) {
    let (lo, hi) = (min as f64 - 0.5, max as f64 + 0.5);
    if log { (lo.ln(), hi.ln()) } else { (lo, hi) }
}

fn round_significant(v: f64, digits: i32) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let scale = 10f64.powi(digits - 1 - v.abs().log10().floor() as i32);
    (v * scale).round() / scale
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn check_param(p: RawParam, line: usize) -> Result<Param, String> {
    let key = p.key.get_ref().trim().to_string();
    if key.is_empty() || key.split('.').any(|part| part.trim().is_empty()) {
        return Err(format!(
            "param key `{key}`: expected a dotted config key such as train.learning_rate"
        ));
    }
    let named = |m: String| format!("param `{key}`: {m}");
    let kind = p.kind.unwrap_or(if p.values.is_some() {
        RawKind::Choice
    } else {
        RawKind::Float
    });
    if kind == RawKind::Choice {
        if p.min.is_some() || p.max.is_some() || p.log.is_some() || p.layers.is_some() {
            return Err(named(
                "a choice takes `values` only (no min, max, log or layers)".into(),
            ));
        }
        let values = p
            .values
            .ok_or_else(|| named("type = \"choice\" needs `values = [...]`".into()))?;
        if values.len() < 2 {
            return Err(named(format!(
                "a choice needs at least two values, got {}: set a fixed value with --set instead",
                values.len()
            )));
        }
        for (i, v) in values.iter().enumerate() {
            if values[..i].contains(v) {
                return Err(named(format!("value {v} is listed twice")));
            }
        }
        return Ok(Param {
            key,
            kind: ParamKind::Choice { values },
            line,
        });
    }
    if p.values.is_some() {
        return Err(named(
            "`values` makes a choice: drop min/max or type, or set type = \"choice\"".into(),
        ));
    }
    let (Some(min), Some(max)) = (p.min, p.max) else {
        return Err(named("needs both `min` and `max`".into()));
    };
    let log = p.log.unwrap_or(false);
    if kind == RawKind::Int {
        let (Some(lo), Some(hi)) = (min.as_integer(), max.as_integer()) else {
            return Err(named(format!(
                "type = \"int\" needs integer bounds, got min = {min}, max = {max}"
            )));
        };
        if lo >= hi {
            return Err(named(format!("min ({lo}) must be below max ({hi})")));
        }
        if log && lo < 1 {
            return Err(named(format!("log scale needs min >= 1, got {lo}")));
        }
        if p.layers == Some(0) {
            return Err(named("layers must be at least 1".into()));
        }
        // A list of that many widths is built per trial: a forged count would ask for more
        // memory than exists (found by fuzz/'s tune_space target).
        if let Some(n) = p.layers.filter(|&n| n > MAX_LAYERS) {
            return Err(named(format!(
                "layers must be at most {MAX_LAYERS}, got {n}"
            )));
        }
        return Ok(Param {
            key,
            kind: ParamKind::Int {
                min: lo,
                max: hi,
                log,
                layers: p.layers,
            },
            line,
        });
    }
    if p.layers.is_some() {
        return Err(named(
            "layers applies to type = \"int\" (a list of layer widths)".into(),
        ));
    }
    let number = |v: &toml::Value, what: &str| -> Result<f64, String> {
        v.as_float()
            .or_else(|| v.as_integer().map(|i| i as f64))
            .filter(|f| f.is_finite())
            .ok_or_else(|| named(format!("{what} must be a finite number, got {v}")))
    };
    let (lo, hi) = (number(&min, "min")?, number(&max, "max")?);
    if lo >= hi {
        return Err(named(format!("min ({lo}) must be below max ({hi})")));
    }
    if log && lo <= 0.0 {
        return Err(named(format!("log scale needs min > 0, got {lo}")));
    }
    Ok(Param {
        key,
        kind: ParamKind::Float {
            min: lo,
            max: hi,
            log,
        },
        line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// fuzz/'s tune_space found `initial = 25555555` drawing a design of 25 million points
    /// before the first trial (out of memory, 2026-11-29); it must be refused when read.
    #[test]
    fn a_huge_initial_design_is_refused_when_read() {
        let text = "trials = 4\ninitial = 25555555\n[objective]\nmetric = \"valid.loss\"\n\
                    [[param]]\nkey = \"model.tower\"\ntype = \"int\"\nmin = 2\nmax = 64\n";
        let err = Space::from_toml_str(text, Path::new("space.toml"))
            .expect_err("refused")
            .to_string();
        assert!(err.contains("initial must be at most 10000"), "{err}");
        assert!(!err.contains('\n'), "{err}");
        let ok = text.replace("25555555", "10000");
        assert!(Space::from_toml_str(&ok, Path::new("space.toml")).is_ok());
    }

    /// fuzz/'s tune_space found `layers = 10776627963145224190` overflowing a vector's
    /// capacity when the first trial was drawn (2026-11-29); it must be refused when read.
    #[test]
    fn a_forged_layer_count_is_refused_when_read() {
        let text = "trials = 4\ninitial = 2\n[objective]\nmetric = \"valid.loss\"\n\
                    [[param]]\nkey = \"model.tower\"\ntype = \"int\"\nmin = 2\nmax = 64\n\
                    log = true\nlayers = 10776627963145224190\n";
        let err = Space::from_toml_str(text, Path::new("space.toml"))
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("layers must be at most 64"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    const SPACE: &str = r#"
trials = 12
seed = 3

[objective]
metric = "valid.income.auc"

[[param]]
key = "train.learning_rate"
min = 1e-4
max = 1e-2
log = true

[[param]]
key = "model.n_experts"
type = "int"
min = 2
max = 16

[[param]]
key = "model.expert"
type = "int"
min = 8
max = 128
log = true
layers = 1

[[param]]
key = "weighting.kind"
values = ["fixed", "uncertainty", "meta-balance"]
"#;

    fn space() -> Space {
        Space::from_toml_str(SPACE, Path::new("space.toml")).unwrap()
    }

    fn parse_err(text: &str) -> String {
        Space::from_toml_str(text, Path::new("s.toml"))
            .unwrap_err()
            .to_string()
    }

    fn one_param(body: &str) -> String {
        format!("[objective]\nmetric = \"valid.loss\"\n\n[[param]]\n{body}\n")
    }

    #[test]
    fn reads_the_documented_example() {
        let s = space();
        assert_eq!(s.trials, 12);
        assert_eq!(s.seed, 3);
        assert_eq!(s.initial, 5, "default: params + 1");
        assert_eq!(s.objective.direction, Direction::Max);
        assert_eq!(s.dims(), 1 + 1 + 1 + 3);
        assert_eq!(
            s.params[3].kind,
            ParamKind::Choice {
                values: vec!["fixed".into(), "uncertainty".into(), "meta-balance".into()]
            }
        );
    }

    #[test]
    fn log_int_and_choice_decode_at_hand_worked_points() {
        let s = space();
        // lr: exp(ln 1e-4 + 0.5 (ln 1e-2 - ln 1e-4)) = 1e-3. n_experts: 1.5 + 0.25 * 15 =
        // 5.25 -> 5. expert: exp(ln 7.5 + 1.0 * (ln 128.5 - ln 7.5)) = 128.5 -> 128 (clamped).
        let a = s.decode(&[0.5, 0.25, 1.0, 0.1, 0.7, 0.2]);
        assert_eq!(a["train.learning_rate"], toml::Value::Float(1e-3));
        assert_eq!(a["model.n_experts"], toml::Value::Integer(5));
        assert_eq!(
            a["model.expert"],
            toml::Value::Array(vec![toml::Value::Integer(128)])
        );
        assert_eq!(a["weighting.kind"], toml::Value::from("uncertainty"));
        // 0.003162277... is written 0.003162.
        let b = s.decode(&[0.75, 0.0, 0.0, 1.0, 0.0, 0.0]);
        assert_eq!(b["train.learning_rate"], toml::Value::Float(0.003162));
        assert_eq!(b["model.n_experts"], toml::Value::Integer(2));
        assert_eq!(
            b["model.expert"],
            toml::Value::Array(vec![toml::Value::Integer(8)])
        );
        assert_eq!(b["weighting.kind"], toml::Value::from("fixed"));
        assert_eq!(
            s.overrides(&b),
            [
                "train.learning_rate=0.003162",
                "model.n_experts=2",
                "model.expert=[8]",
                "weighting.kind=\"fixed\""
            ]
        );
    }

    #[test]
    fn every_value_round_trips_through_the_encoding() {
        let s = space();
        // Every integer of both integer ranges, every choice.
        for n in 2..=16 {
            for w in [8, 9, 11, 64, 127, 128] {
                for kind in ["fixed", "uncertainty", "meta-balance"] {
                    let a: Assignment = [
                        (
                            "train.learning_rate".to_string(),
                            toml::Value::Float(0.0005),
                        ),
                        ("model.n_experts".to_string(), toml::Value::Integer(n)),
                        (
                            "model.expert".to_string(),
                            toml::Value::Array(vec![toml::Value::Integer(w)]),
                        ),
                        ("weighting.kind".to_string(), kind.into()),
                    ]
                    .into();
                    let x = s.encode(&a).unwrap();
                    assert!(x.iter().all(|v| (0.0..=1.0).contains(v)), "{x:?}");
                    assert_eq!(s.decode(&x), a);
                }
            }
        }
        // Any decoded point is a fixed point of decode . encode.
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for _ in 0..500 {
            let x: Vec<f64> = (0..s.dims()).map(|_| rng.random()).collect();
            let a = s.decode(&x);
            assert_eq!(s.decode(&s.encode(&a).unwrap()), a);
            let snapped = s.snap(&x);
            assert_eq!(s.snap(&snapped), snapped);
        }
    }

    #[test]
    fn integers_are_equally_likely() {
        let text = one_param("key = \"model.n_experts\"\ntype = \"int\"\nmin = 2\nmax = 4");
        let s = Space::from_toml_str(&text, Path::new("s.toml")).unwrap();
        let mut counts = [0usize; 3];
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..3000 {
            let a = s.decode(&s.sample(&mut rng));
            counts[(a["model.n_experts"].as_integer().unwrap() - 2) as usize] += 1;
        }
        // Each about 1000; with rounding of min + u (max - min) the ends would get ~750.
        assert!(
            counts.iter().all(|&c| (900..1100).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn latin_hypercube_fills_every_slice_once() {
        let s = space();
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let points = s.latin_hypercube(6, &mut rng);
        assert_eq!(points.len(), 6);
        // The learning rate (coordinate 0) has one point in each sixth of the encoded range.
        let mut slices: Vec<usize> = points.iter().map(|p| (p[0] * 6.0) as usize).collect();
        slices.sort();
        assert_eq!(slices, [0, 1, 2, 3, 4, 5]);
        // Three choices over six points: each value twice.
        let mut counts = [0; 3];
        for p in &points {
            counts[p[3..6].iter().position(|&v| v == 1.0).unwrap()] += 1;
        }
        assert_eq!(counts, [2, 2, 2]);
    }

    fn two_binary_choices() -> Space {
        Space::from_toml_str(
            "[objective]\nmetric = \"valid.loss\"\n\
             [[param]]\nkey = \"weighting.kind\"\nvalues = [\"fixed\", \"uncertainty\"]\n\
             [[param]]\nkey = \"model.kind\"\nvalues = [\"mmoe\", \"omoe\"]\n",
            Path::new("s.toml"),
        )
        .unwrap()
    }

    #[test]
    fn a_design_repeats_no_point_where_the_space_has_enough() {
        // Two choices of two values: 4 configs. A single shuffle repeats one of 3 points with
        // probability 1/3 (the two points sharing the first choice's majority value also share
        // the second's iff its minority value sits on the remaining point), so 40 seeds would
        // all escape by chance with probability (2/3)^40, about 1e-7.
        let s = two_binary_choices();
        for seed in 0..40 {
            let points = s.latin_hypercube(3, &mut ChaCha8Rng::seed_from_u64(seed));
            assert_eq!(points.len(), 3);
            for i in 0..3 {
                assert!(
                    !points[..i].contains(&points[i]),
                    "seed {seed}: point {i} repeats: {points:?}"
                );
            }
            // Still balanced: each choice's values used 2 and 1 times.
            for at in [0, 2] {
                let ones = points.iter().filter(|p| p[at] == 1.0).count();
                assert!(ones == 1 || ones == 2, "seed {seed}: {points:?}");
            }
        }
        // All four configs in four points.
        let points = s.latin_hypercube(4, &mut ChaCha8Rng::seed_from_u64(1));
        let mut distinct = points.clone();
        distinct.sort_by(|a, b| a.partial_cmp(b).unwrap());
        distinct.dedup();
        assert_eq!(distinct.len(), 4, "{points:?}");
    }

    #[test]
    fn a_design_larger_than_the_space_repeats_as_little_as_it_can() {
        // Six points over four configs: exactly two repeats, each config at least once.
        let s = two_binary_choices();
        let points = s.latin_hypercube(6, &mut ChaCha8Rng::seed_from_u64(2));
        assert_eq!(points.len(), 6);
        let mut distinct = points.clone();
        distinct.sort_by(|a, b| a.partial_cmp(b).unwrap());
        distinct.dedup();
        assert_eq!(distinct.len(), 4, "{points:?}");
    }

    #[test]
    fn a_fixed_key_under_a_tuned_one_is_found() {
        let s = space();
        let path = |k: &str| k.split('.').map(str::to_string).collect::<Vec<_>>();
        assert_eq!(
            s.param_covering(&path("model.n_experts"))
                .map(|p| p.key.as_str()),
            Some("model.n_experts")
        );
        assert_eq!(
            s.param_covering(&path("model.expert.0"))
                .map(|p| p.key.as_str()),
            Some("model.expert")
        );
        assert!(s.param_covering(&path("model.experts")).is_none());
        assert!(s.param_covering(&path("model")).is_none());
        assert!(s.param_covering(&path("train.epochs")).is_none());
    }

    #[test]
    fn encode_names_what_does_not_belong() {
        let s = space();
        let mut a = s.decode(&[0.5; 6]);
        a.insert("model.n_experts".into(), toml::Value::Integer(40));
        assert!(s.encode(&a).unwrap_err().contains("40 is outside [2, 16]"));
        a.insert("model.n_experts".into(), toml::Value::Integer(4));
        a.insert("weighting.kind".into(), "gradnorm".into());
        assert!(s.encode(&a).unwrap_err().contains("not one of the values"));
        a.insert("weighting.kind".into(), "fixed".into());
        a.insert("train.epochs".into(), toml::Value::Integer(3));
        assert!(
            s.encode(&a)
                .unwrap_err()
                .contains("`train.epochs` is not a parameter")
        );
    }

    #[test]
    fn bad_spaces_get_errors_naming_file_line_and_key() {
        let e = parse_err(&one_param(
            "key = \"train.learning_rate\"\nmin = 1e-2\nmax = 1e-4",
        ));
        assert!(e.contains("s.toml line 5"), "{e}");
        assert!(
            e.contains("param `train.learning_rate`: min (0.01) must be below max (0.0001)"),
            "{e}"
        );
        let e = parse_err(&one_param(
            "key = \"train.weight_decay\"\nmin = 0\nmax = 1\nlog = true",
        ));
        assert!(
            e.contains("param `train.weight_decay`: log scale needs min > 0, got 0"),
            "{e}"
        );
        let e = parse_err(&one_param(
            "key = \"train.weight_decay\"\nmin = -1.0\nmax = 1\nlog = true",
        ));
        assert!(e.contains("log scale needs min > 0"), "{e}");
        let e = parse_err(&one_param(
            "key = \"model.n_experts\"\ntype = \"int\"\nmin = 0\nmax = 8\nlog = true",
        ));
        assert!(e.contains("log scale needs min >= 1"), "{e}");
        let e = parse_err(&one_param(
            "key = \"model.n_experts\"\ntype = \"int\"\nmin = 2.5\nmax = 8",
        ));
        assert!(e.contains("needs integer bounds"), "{e}");
        let e = parse_err(&one_param("key = \"model.kind\"\nvalues = [\"mmoe\"]"));
        assert!(e.contains("at least two values"), "{e}");
        let e = parse_err(&one_param("key = \"model..kind\"\nvalues = [\"a\", \"b\"]"));
        assert!(e.contains("expected a dotted config key"), "{e}");
        let e = parse_err(&one_param("key = \"train.learning_rate\"\nmin = 1e-4"));
        assert!(e.contains("needs both `min` and `max`"), "{e}");
        let e = parse_err(&one_param(
            "key = \"x.y\"\ntype = \"integer\"\nmin = 1\nmax = 2",
        ));
        assert!(
            e.contains("s.toml line 6") && e.contains("unknown variant `integer`"),
            "{e}"
        );
        let e = parse_err(&one_param("key = \"x.y\"\nminimum = 1"));
        assert!(e.contains("unknown field `minimum`"), "{e}");
        let e = parse_err(
            "[objective]\nmetric = \"test.income.auc\"\n[[param]]\nkey = \"a.b\"\nvalues = [1, 2]\n",
        );
        assert!(
            e.contains("s.toml line 2") && e.contains("validation figures only"),
            "{e}"
        );
        let e = parse_err("[objective]\nmetric = \"valid.loss\"\n");
        assert!(e.contains("nothing to tune"), "{e}");
        let twice = format!(
            "{}\n[[param]]\nkey = \"a.b\"\nvalues = [3, 4]\n",
            one_param("key = \"a.b\"\nvalues = [1, 2]")
        );
        let e = parse_err(&twice);
        assert!(
            e.contains("line 9") && e.contains("already tuned at line 5"),
            "{e}"
        );
    }
}
