//! Finished runs as written by `mtrec train`, `search` and `demo`: a folder with `metrics.json`
//! (the test figures, timings, model kind and config name) and the resolved `config.toml`
//! (where the seed lives when the metrics do not carry it, and the settings that tell apart
//! different experiments under one name). Every comparison and report reads
//! runs through [`load_run`], so they agree on what a run's figures are.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::settings::{SEARCH_MODEL, experiment_settings};

/// The file of test figures in a run folder.
pub const METRICS_FILE: &str = "metrics.json";
/// The resolved experiment config saved beside it.
pub const CONFIG_FILE: &str = "config.toml";

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    // The cause is in the message, not a `source`, so that error chains print it once.
    #[error("{}: cannot read run metrics: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: not a run's metrics.json (JSON: {error})", path.display())]
    Json {
        path: PathBuf,
        error: serde_json::Error,
    },
    #[error("{}: `{key}` {problem}", path.display())]
    Field {
        path: PathBuf,
        key: String,
        problem: String,
    },
    #[error("{}: cannot read the run's config: {message}", path.display())]
    Config { path: PathBuf, message: String },
}

/// The headline metric of a task: AUC for binary tasks, MSE for regression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    Auc,
    Mse,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Auc => "auc",
            Metric::Mse => "mse",
        }
    }

    pub fn lower_is_better(self) -> bool {
        matches!(self, Metric::Mse)
    }

    /// Whether `a` is a better figure than `b` for this metric.
    pub fn better(self, a: f64, b: f64) -> bool {
        if self.lower_is_better() { a < b } else { a > b }
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One task's test figure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskFigure {
    pub metric: Metric,
    pub value: f64,
    /// Binary tasks only.
    pub logloss: Option<f64>,
    /// Labelled test rows.
    pub n: Option<u64>,
}

/// One finished run.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    /// The run folder.
    pub dir: PathBuf,
    /// Config name: runs of one experiment (its seeds) share it.
    pub name: String,
    /// Model kind as the run reports it (`mmoe`, `single-task`, `automtl`, ...).
    pub model: String,
    /// Initialisation and batch-order seed: what pairs two models' runs.
    pub seed: Option<u64>,
    /// Tasks with a headline figure; a task whose AUC was undefined (one class in the test
    /// split) is left out rather than counted as a number.
    pub tasks: BTreeMap<String, TaskFigure>,
    pub test_loss: Option<f64>,
    pub wall_seconds: Option<f64>,
    /// AutoMTL runs only: the search phase of `wall_seconds`.
    pub search_seconds: Option<f64>,
    /// The whole metrics.json, for reports that need more (history, architecture, ...).
    #[serde(skip)]
    pub metrics: serde_json::Value,
    /// The experiment's settings from the saved config.toml (see [`crate::settings`]): runs
    /// of one name repeat one experiment only where these agree. `None` without a config.
    #[serde(skip)]
    pub settings: Option<toml::Table>,
}

/// Reads a run folder, or a metrics.json file directly (its folder is then the run's).
pub fn load_run(path: &Path) -> Result<RunRecord, RunError> {
    let (dir, file) = if path.is_dir() {
        (path.to_path_buf(), path.join(METRICS_FILE))
    } else {
        let dir = path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        (dir, path.to_path_buf())
    };
    let text = std::fs::read_to_string(&file).map_err(|error| RunError::Read {
        path: file.clone(),
        error,
    })?;
    let metrics: serde_json::Value =
        serde_json::from_str(&text).map_err(|error| RunError::Json {
            path: file.clone(),
            error,
        })?;
    let field = |key: &str, problem: &str| RunError::Field {
        path: file.clone(),
        key: key.to_string(),
        problem: problem.to_string(),
    };
    let string = |key: &str| -> Result<String, RunError> {
        metrics[key]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| field(key, "missing or not a string"))
    };
    let name = string("name")?;
    let model = string("model")?;
    let Some(task_map) = metrics["tasks"].as_object() else {
        return Err(field("tasks", "missing: no test figures per task"));
    };
    let mut tasks = BTreeMap::new();
    for (task, m) in task_map {
        let (metric, value) = match (m["auc"].as_f64(), m["mse"].as_f64()) {
            (Some(auc), _) => (Metric::Auc, auc),
            (None, Some(mse)) => (Metric::Mse, mse),
            _ => continue,
        };
        tasks.insert(
            task.clone(),
            TaskFigure {
                metric,
                value,
                logloss: m["logloss"].as_f64(),
                n: m["n"].as_u64(),
            },
        );
    }
    let config = read_config(&dir)?;
    let seed = match &metrics.get("seed") {
        Some(serde_json::Value::Null) | None => config_seed(&dir, config.as_ref())?,
        Some(v) => Some(v.as_u64().ok_or_else(|| field("seed", "not an integer"))?),
    };
    let search = model == SEARCH_MODEL;
    Ok(RunRecord {
        settings: config.map(|c| experiment_settings(c, search)),
        name,
        model,
        seed,
        tasks,
        test_loss: metrics["test_loss"].as_f64(),
        wall_seconds: metrics["wall_seconds"].as_f64(),
        search_seconds: metrics["search_seconds"].as_f64(),
        dir,
        metrics,
    })
}

/// The run's saved config; `None` where the run has no config.toml.
fn read_config(dir: &Path) -> Result<Option<toml::Table>, RunError> {
    let path = dir.join(CONFIG_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(RunError::Config {
                path,
                message: e.to_string(),
            });
        }
    };
    text.parse()
        .map(Some)
        .map_err(|e: toml::de::Error| RunError::Config {
            path,
            message: e.to_string(),
        })
}

/// `[train] seed` of the run's saved config; `None` where the run has no config.toml.
fn config_seed(dir: &Path, config: Option<&toml::Table>) -> Result<Option<u64>, RunError> {
    match config
        .and_then(|c| c.get("train"))
        .and_then(|t| t.get("seed"))
    {
        None => Ok(None),
        Some(toml::Value::Integer(s)) if *s >= 0 => Ok(Some(*s as u64)),
        Some(other) => Err(RunError::Config {
            path: dir.join(CONFIG_FILE),
            message: format!("`train.seed` is {other}, not a non-negative integer"),
        }),
    }
}

/// Every folder at or below `root`, sorted; hidden folders (a checkpoint being written,
/// `.git`) and symbolic links are not entered.
pub fn folders_below(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        out.push(dir.clone());
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if !hidden && entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(entry.path());
            }
        }
    }
    out.sort();
    out
}

/// The run folders at or below `root`: those holding a metrics file, sorted.
pub fn find_runs(root: &Path) -> Vec<PathBuf> {
    folders_below(root)
        .into_iter()
        .filter(|d| d.join(METRICS_FILE).is_file())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_found_below_the_folder_but_not_in_hidden_ones() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["a", "b/c", ".a.tmp-1", "b"] {
            let d = dir.path().join(sub);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(METRICS_FILE), "{}").unwrap();
        }
        std::fs::create_dir_all(dir.path().join("empty")).unwrap();
        let found = find_runs(dir.path());
        let rel: Vec<_> = found
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(rel, vec!["a", "b", "b/c"]);
    }

    /// Two seeds of one experiment share settings; another expert count does not.
    #[test]
    fn settings_leave_out_the_seed() {
        let dir = tempfile::tempdir().unwrap();
        let write = |sub: &str, seed: u64, experts: u64| {
            let d = dir.path().join(sub);
            std::fs::create_dir_all(&d).unwrap();
            let m = serde_json::json!({"name": "x", "model": "mmoe", "tasks": {}});
            std::fs::write(d.join(METRICS_FILE), m.to_string()).unwrap();
            let c =
                format!("name = \"x\"\n[train]\nseed = {seed}\n[model]\nn_experts = {experts}\n");
            std::fs::write(d.join(CONFIG_FILE), c).unwrap();
            load_run(&d).unwrap()
        };
        let (a, b, c) = (write("a", 1, 2), write("b", 2, 2), write("c", 1, 4));
        assert_eq!((a.seed, b.seed), (Some(1), Some(2)));
        assert!(a.settings.is_some());
        assert_eq!(a.settings, b.settings);
        assert_ne!(a.settings, c.settings);
    }
}
