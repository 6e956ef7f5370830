//! `mtrec compare`: test figures of several runs side by side, mean and standard deviation over
//! the runs that share a config name (seeds of one experiment), with wall times.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, Table};
use serde::Serialize;

use crate::cli::CompareArgs;

/// Mean and sample standard deviation (0 for a single run).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub mean: f64,
    pub std: f64,
    pub values: Vec<f64>,
}

impl Summary {
    pub fn of(values: Vec<f64>) -> Self {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let std = if values.len() > 1 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        Self { mean, std, values }
    }

    fn show(&self, digits: usize) -> String {
        format!("{:.digits$} ± {:.digits$}", self.mean, self.std)
    }
}

#[derive(Debug, Serialize)]
struct Group {
    name: String,
    model: String,
    runs: usize,
    /// Per task: `auc` for binary tasks, `mse` for regression.
    metric: BTreeMap<String, String>,
    tasks: BTreeMap<String, Summary>,
    wall_seconds: Summary,
    /// Search phase (AutoMTL runs only).
    search_seconds: Option<Summary>,
}

fn read_run(dir: &Path) -> Result<serde_json::Value> {
    let path = if dir.is_dir() {
        dir.join("metrics.json")
    } else {
        dir.to_path_buf()
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: cannot read run metrics", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a metrics file", path.display()))
}

fn groups(runs: &[PathBuf]) -> Result<Vec<Group>> {
    let mut by_name: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for dir in runs {
        let run = read_run(dir)?;
        let name = run["name"]
            .as_str()
            .with_context(|| format!("{}: metrics without a `name`", dir.display()))?
            .to_string();
        by_name.entry(name).or_default().push(run);
    }
    let mut out = Vec::new();
    for (name, runs) in by_name {
        let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut metric = BTreeMap::new();
        for run in &runs {
            let Some(tasks) = run["tasks"].as_object() else {
                bail!("run `{name}`: metrics without test `tasks`");
            };
            for (task, m) in tasks {
                let (kind, v) = match (m["auc"].as_f64(), m["mse"].as_f64()) {
                    (Some(auc), _) => ("auc", auc),
                    (None, Some(mse)) => ("mse", mse),
                    _ => continue,
                };
                metric.insert(task.clone(), kind.to_string());
                values.entry(task.clone()).or_default().push(v);
            }
        }
        let seconds = |key: &str| -> Option<Summary> {
            let v: Vec<f64> = runs.iter().filter_map(|r| r[key].as_f64()).collect();
            (!v.is_empty()).then(|| Summary::of(v))
        };
        out.push(Group {
            model: runs[0]["model"].as_str().unwrap_or("?").to_string(),
            runs: runs.len(),
            metric,
            tasks: values
                .into_iter()
                .map(|(t, v)| (t, Summary::of(v)))
                .collect(),
            wall_seconds: seconds("wall_seconds").unwrap_or(Summary::of(vec![f64::NAN])),
            search_seconds: seconds("search_seconds"),
            name,
        });
    }
    Ok(out)
}

pub fn run(args: CompareArgs) -> Result<()> {
    if args.runs.is_empty() {
        bail!("no run given: pass checkpoint folders (or their metrics.json)");
    }
    let groups = groups(&args.runs)?;
    if let Some(path) = &args.csv {
        write_csv(path, &groups)?;
    }
    if args.output.json {
        println!("{}", serde_json::to_string_pretty(&groups)?);
        return Ok(());
    }
    let mut tasks: Vec<&String> = groups.iter().flat_map(|g| g.tasks.keys()).collect();
    tasks.sort();
    tasks.dedup();
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    let mut header = vec![Cell::new("run"), Cell::new("model"), Cell::new("n")];
    for t in &tasks {
        let metric = groups
            .iter()
            .find_map(|g| g.metric.get(*t))
            .map_or("", String::as_str);
        header.push(Cell::new(format!("{t} {metric}")));
    }
    header.push(Cell::new("wall s"));
    table.set_header(header);
    for g in &groups {
        let mut row = vec![
            Cell::new(&g.name),
            Cell::new(&g.model),
            Cell::new(g.runs).set_alignment(CellAlignment::Right),
        ];
        for t in &tasks {
            let text = g.tasks.get(*t).map_or("-".into(), |s| s.show(4));
            row.push(Cell::new(text).set_alignment(CellAlignment::Right));
        }
        row.push(Cell::new(g.wall_seconds.show(1)).set_alignment(CellAlignment::Right));
        table.add_row(row);
    }
    println!("{table}");
    Ok(())
}

fn write_csv(path: &Path, groups: &[Group]) -> Result<()> {
    let mut text = String::from("run,model,runs,task,metric,mean,std,wall_seconds_mean\n");
    for g in groups {
        for (task, s) in &g.tasks {
            text.push_str(&format!(
                "{},{},{},{},{},{},{},{}\n",
                g.name, g.model, g.runs, task, g.metric[task], s.mean, s.std, g.wall_seconds.mean
            ));
        }
    }
    let tmp = path.with_extension("csv.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_uses_the_sample_standard_deviation() {
        // Worked by hand: mean 2, squared deviations 1 + 0 + 1, / (3 - 1) -> std 1.
        let s = Summary::of(vec![1.0, 2.0, 3.0]);
        assert_eq!((s.mean, s.std), (2.0, 1.0));
        assert_eq!(Summary::of(vec![0.7]).std, 0.0);
    }

    #[test]
    fn runs_group_by_config_name() {
        let dir = tempfile::tempdir().unwrap();
        let write = |sub: &str, name: &str, auc: f64| {
            let d = dir.path().join(sub);
            std::fs::create_dir_all(&d).unwrap();
            let m = serde_json::json!({"name": name, "model": "mmoe", "wall_seconds": 2.0,
                "tasks": {"income": {"auc": auc, "n": 10}}});
            std::fs::write(d.join("metrics.json"), m.to_string()).unwrap();
            d
        };
        let runs = vec![
            write("a", "g1", 0.9),
            write("b", "g1", 0.8),
            write("c", "g2", 0.5),
        ];
        let groups = groups(&runs).unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].runs, 2);
        assert!((groups[0].tasks["income"].mean - 0.85).abs() < 1e-12);
        assert_eq!(groups[0].metric["income"], "auc");
    }
}
