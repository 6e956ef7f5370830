//! What a model or a training scheme assumes about the tasks, checked once before training.
//!
//! ESMM is only right when its two tasks are click, then conversion, both binary, and no row
//! converts without a click; with any of that broken it still trains, into figures that mean
//! nothing. So every model and scheme declares its assumptions as [`TaskRequirement`]s and the
//! engine checks them before the first step: kinds and counts against the tasks
//! ([`check_task_kinds`]), implications between labels against the rows ([`check_task_rows`]).
//! A breach in the training data is an error naming the file, the first offending line and the
//! tasks; one in a separate evaluation file is a warning with the count, because those rows are
//! only scored, and a user may well want figures on an imperfect log.
//!
//! Cost: implications are counted on the label columns already loaded (one pass over two
//! columns of each split); clean data costs nothing more. Only when a split breaks one is its
//! file read once more, with [`SourceReader`](crate::SourceReader) and the encoder's own label
//! parsing, to find the line to name. Rows that `subsample` leaves out are neither trained on
//! nor counted.

use std::path::{Path, PathBuf};

use crate::config::{DataConfig, Dataset};
use crate::encode::{FeatureMeta, LabelRule, open_source};
use crate::error::{DataError, Result};
use crate::schema::{Schema, TaskKind};
use crate::source::SourceSpec;
use crate::table::EncodedTable;

/// One assumption about the tasks; a task is its 0-based position in the schema's `[[tasks]]`
/// (the model's output order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskRule {
    /// Exactly this many tasks.
    Count(usize),
    /// At least this many binary tasks.
    MinBinary(usize),
    /// This task is binary.
    Binary(usize),
    /// Every row positive on task `from` is positive on task `to` (a label above 0.5 is
    /// positive).
    Implies { from: usize, to: usize },
    /// Every task labelled on every row with weight 1: no `missing = "mask"`, `given` or
    /// `weight` in the schema ([`check_task_labels`]).
    FullLabels,
    /// No task is conditional on another (`given`) ([`check_task_labels`]).
    Unconditional,
}

/// A [`TaskRule`] with who assumes it and why, both for the message when it breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskRequirement {
    /// As the config names it: "model `esmm`", "[scheme] kind = \"cross-distil\"".
    pub by: &'static str,
    pub rule: TaskRule,
    pub why: &'static str,
}

impl TaskRequirement {
    /// The broken kind or count rule as a sentence; `None` when it holds, and for
    /// implications, which need the rows ([`check_task_rows`]).
    pub fn unmet_kind(&self, names: &[String], kinds: &[TaskKind]) -> Option<String> {
        let (by, why) = (self.by, self.why);
        match self.rule {
            TaskRule::Count(n) if names.len() != n => Some(format!(
                "{by} needs exactly {n} tasks, the data has {} ({}): {why}",
                names.len(),
                quoted(names.iter())
            )),
            TaskRule::MinBinary(n) => {
                let binary: Vec<&String> = names
                    .iter()
                    .zip(kinds)
                    .filter(|(_, k)| **k == TaskKind::Binary)
                    .map(|(name, _)| name)
                    .collect();
                (binary.len() < n).then(|| {
                    format!(
                        "{by} needs at least {n} binary tasks, the data has {} ({}): {why}",
                        binary.len(),
                        quoted(binary.into_iter())
                    )
                })
            }
            TaskRule::Binary(t) => match (names.get(t), kinds.get(t)) {
                (Some(name), Some(TaskKind::Regression)) => Some(format!(
                    "{by} needs task {} (`{name}`) to be binary, but it is a regression task: {why}",
                    t + 1
                )),
                _ => None,
            },
            _ => None,
        }
    }
}

/// Checks every kind and count rule against the data's tasks; the first broken one is the
/// error. With files described by a schema (`cfg`, paths relative to `base_dir`) it names the
/// schema file, and for a task of the wrong kind the line of its `[[tasks]]` entry.
pub fn check_task_kinds(
    reqs: &[TaskRequirement],
    cfg: &DataConfig,
    base_dir: &Path,
    meta: &FeatureMeta,
) -> Result<()> {
    let Some((req, message)) = reqs.iter().find_map(|r| {
        r.unmet_kind(&meta.task_names, &meta.task_kinds)
            .map(|m| (r, m))
    }) else {
        return Ok(());
    };
    let path = match cfg {
        DataConfig::Files(f) => Some(base_dir.join(&f.schema)),
        _ => None,
    };
    let line = match (&path, req.rule) {
        (Some(p), TaskRule::Binary(t)) => std::fs::read_to_string(p)
            .ok()
            .and_then(|text| task_entry_line(&text, t)),
        _ => None,
    };
    Err(DataError::TaskAssumption {
        path,
        line,
        message,
    })
}

/// Checks the rules about partial labels ([`TaskRule::FullLabels`], [`TaskRule::Unconditional`])
/// against the data's schema; the first broken one is the error, naming the schema file (for
/// files) and the line of the offending task's `[[tasks]]` entry.
pub fn check_task_labels(
    reqs: &[TaskRequirement],
    cfg: &DataConfig,
    base_dir: &Path,
    schema: &Schema,
) -> Result<()> {
    let broken = reqs.iter().find_map(|r| {
        let offending = schema.tasks.iter().position(|t| match r.rule {
            TaskRule::FullLabels => t.is_partial(),
            TaskRule::Unconditional => t.given.is_some(),
            _ => false,
        })?;
        Some((r, offending))
    });
    let Some((req, t)) = broken else {
        return Ok(());
    };
    let task = &schema.tasks[t];
    let what = match (&task.given, &task.weight) {
        (Some(g), _) => format!("`given = \"{g}\"`"),
        (None, Some(w)) => format!("`weight = \"{w}\"`"),
        (None, None) => "`missing = \"mask\"`".to_string(),
    };
    let needs = match req.rule {
        TaskRule::FullLabels => "every task labelled on every row with weight 1",
        _ => "no task conditional on another",
    };
    let path = match cfg {
        DataConfig::Files(f) => Some(base_dir.join(&f.schema)),
        _ => None,
    };
    let line = path
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|text| task_entry_line(&text, t));
    Err(DataError::TaskAssumption {
        path,
        line,
        message: format!(
            "{} needs {needs}, but task `{}` has {what}: {}",
            req.by, task.name, req.why
        ),
    })
}

/// The 1-based line of the `t`-th (0-based) `[[tasks]]` header of a schema's text; `None` for
/// tasks written another way (an inline array), where only the file can be named.
fn task_entry_line(text: &str, t: usize) -> Option<u64> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with("[[tasks]]"))
        .nth(t)
        .map(|(i, _)| i as u64 + 1)
}

/// Checks every implication against the loaded data: a breach among the rows of the training
/// source (the training split and the splits carved out of it) is an error naming the training
/// file's first offending line; one in a separately given validation or test file is returned
/// as a warning with the count. Call [`check_task_kinds`] first: implications between tasks
/// that do not exist are skipped here.
pub fn check_task_rows(
    reqs: &[TaskRequirement],
    cfg: &DataConfig,
    base_dir: &Path,
    data: &Dataset,
) -> Result<Vec<String>> {
    let names = data.meta().task_names;
    let files = match cfg {
        DataConfig::Files(f) => Some(f),
        _ => None,
    };
    let given_valid = files.and_then(|f| f.valid.as_ref());
    let given_test = files.and_then(|f| f.test.as_ref());
    let mut training = vec![&data.train];
    if given_valid.is_none() {
        training.push(&data.valid);
    }
    if given_test.is_none() {
        training.push(&data.test);
    }
    let schema = &data.preprocessor.schema;
    let mut warnings = Vec::new();
    for (req, from, to) in implications(reqs, names.len()) {
        let mut tally = Tally::default();
        for t in &training {
            tally.add_table(t, from, to);
        }
        if tally.breaches > 0 {
            let Some(f) = files else {
                return Err(DataError::TaskAssumption {
                    path: None,
                    line: None,
                    message: breach_sentence(req, &names, from, to, &tally, "in the training data"),
                });
            };
            let src = f.source(base_dir.join(&f.train), schema)?;
            let (path, scanned) = scan_file(schema, &src, from, to)?;
            // The loaded rows broke it, so the file does, unless it changed meanwhile.
            let (line, tally, place) = match scanned.first {
                Some(line) => (Some(line), scanned, "in this file"),
                None => (None, tally, "among the training rows"),
            };
            return Err(DataError::TaskAssumption {
                path: Some(path),
                line,
                message: breach_sentence(req, &names, from, to, &tally, place),
            });
        }
        if let Some(f) = files {
            for (file, table) in [(given_valid, &data.valid), (given_test, &data.test)] {
                if let Some(file) = file {
                    let src = f.source(base_dir.join(file), schema)?;
                    warnings.extend(eval_warning(req, schema, &names, &src, table, from, to)?);
                }
            }
        }
    }
    Ok(warnings)
}

/// Checks every implication against an evaluation file already encoded into `table` (labels
/// included): each broken one is returned as a warning with the count and the first line.
pub fn check_eval_rows(
    reqs: &[TaskRequirement],
    schema: &Schema,
    src: &SourceSpec,
    table: &EncodedTable,
) -> Result<Vec<String>> {
    let names = schema.task_names();
    let mut warnings = Vec::new();
    for (req, from, to) in implications(reqs, names.len()) {
        warnings.extend(eval_warning(req, schema, &names, src, table, from, to)?);
    }
    Ok(warnings)
}

/// The implications of `reqs` between tasks that exist.
fn implications(
    reqs: &[TaskRequirement],
    n_tasks: usize,
) -> impl Iterator<Item = (&TaskRequirement, usize, usize)> {
    reqs.iter().filter_map(move |r| match r.rule {
        TaskRule::Implies { from, to } if from < n_tasks && to < n_tasks => Some((r, from, to)),
        _ => None,
    })
}

/// The warning for an evaluation file whose rows (`table`) break `req`, if they do.
fn eval_warning(
    req: &TaskRequirement,
    schema: &Schema,
    names: &[String],
    src: &SourceSpec,
    table: &EncodedTable,
    from: usize,
    to: usize,
) -> Result<Option<String>> {
    let mut tally = Tally::default();
    tally.add_table(table, from, to);
    if tally.breaches == 0 {
        return Ok(None);
    }
    let (path, scanned) = scan_file(schema, src, from, to)?;
    let (place, n) = match scanned.first {
        Some(line) => (format!("{}:{line}", path.display()), scanned.breaches),
        None => (path.display().to_string(), tally.breaches),
    };
    let (f, t) = (&names[from], &names[to]);
    Ok(Some(format!(
        "{place}: {n} {} task `{f}` = 1 but `{t}` = 0 (the first on this line); {} assumes \
         every positive of `{f}` is a positive of `{t}`, so its figures on this file score \
         those rows as they are",
        if n == 1 { "row has" } else { "rows have" },
        req.by
    )))
}

/// Rows breaking one implication, and whether the reverse one holds.
#[derive(Debug, Default, PartialEq)]
struct Tally {
    breaches: u64,
    /// Line of the first breach, when counted on a file.
    first: Option<u64>,
    /// Rows positive on `to` but not on `from`: none while `to` has positives means the two
    /// tasks are most likely listed in the wrong order.
    reverse: u64,
    to_positives: u64,
}

impl Tally {
    fn add(&mut self, line: Option<u64>, from: bool, to: bool) {
        if from && !to {
            self.breaches += 1;
            if self.first.is_none() {
                self.first = line;
            }
        }
        if to {
            self.to_positives += 1;
            self.reverse += u64::from(!from);
        }
    }

    fn add_table(&mut self, table: &EncodedTable, from: usize, to: usize) {
        let n = table.n_tasks;
        if from >= n || to >= n {
            return;
        }
        // A row unlabelled for either task (weight 0) says nothing about the implication.
        for (r, row) in table.labels.chunks_exact(n).enumerate() {
            if let Some(w) = table.label_weight_row(r)
                && (w[from] <= 0.0 || w[to] <= 0.0)
            {
                continue;
            }
            self.add(None, row[from] > 0.5, row[to] > 0.5);
        }
    }
}

/// Reads `src` once more, labels parsed exactly as the encoder parses them, to find the lines
/// that break `from => to`.
fn scan_file(
    schema: &Schema,
    src: &SourceSpec,
    from: usize,
    to: usize,
) -> Result<(PathBuf, Tally)> {
    let mut reader = open_source(schema, src)?;
    let path = reader.path().to_path_buf();
    let mut tally = Tally::default();
    let (Some(task_from), Some(task_to)) = (schema.tasks.get(from), schema.tasks.get(to)) else {
        return Ok((path, tally));
    };
    let rules = [
        LabelRule::new(task_from, &reader)?,
        LabelRule::new(task_to, &reader)?,
    ];
    let mut buf = String::new();
    while let Some(row) = reader.next_row()? {
        let line = row.line();
        let mut positive =
            |r: &LabelRule| -> Result<bool> { Ok(r.label_of(&row, &path, line, &mut buf)? > 0.5) };
        let (f, t) = (positive(&rules[0])?, positive(&rules[1])?);
        tally.add(Some(line), f, t);
    }
    Ok((path, tally))
}

/// The error text of a breached implication, with its likely cause.
fn breach_sentence(
    req: &TaskRequirement,
    names: &[String],
    from: usize,
    to: usize,
    tally: &Tally,
    place: &str,
) -> String {
    let (f, t) = (&names[from], &names[to]);
    let n = tally.breaches;
    let mut m = format!(
        "task `{f}` is 1 but task `{t}` is 0 ({n} such {} {place}); {} needs every positive of \
         `{f}` to be a positive of `{t}`: {}",
        if n == 1 { "row" } else { "rows" },
        req.by,
        req.why
    );
    if tally.reverse == 0 && tally.to_positives > 0 {
        m.push_str(&format!(
            ". Every positive of `{t}` is one of `{f}`, so the two tasks look listed in the \
             wrong order: swap `{t}` and `{f}` in the schema's [[tasks]]"
        ));
    } else {
        m.push_str(&format!(
            ". Such rows record `{f}` without `{t}`: fix or drop them"
        ));
    }
    m
}

/// "`a`, `b`", or "none".
fn quoted<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let s = names
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if s.is_empty() { "none".into() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FilesConfig;

    const ESMM_IMPLIES: TaskRequirement = TaskRequirement {
        by: "model `esmm`",
        rule: TaskRule::Implies { from: 1, to: 0 },
        why: "no conversion without a click",
    };

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn kind_and_count_rules_name_the_tasks() {
        let req = |rule| TaskRequirement {
            by: "model `m`",
            rule,
            why: "because",
        };
        let three = names(&["a", "b", "c"]);
        let kinds = [TaskKind::Binary, TaskKind::Regression, TaskKind::Binary];
        assert_eq!(
            req(TaskRule::Count(2)).unmet_kind(&three, &kinds).unwrap(),
            "model `m` needs exactly 2 tasks, the data has 3 (`a`, `b`, `c`): because"
        );
        assert_eq!(req(TaskRule::Count(3)).unmet_kind(&three, &kinds), None);
        assert_eq!(
            req(TaskRule::Binary(1)).unmet_kind(&three, &kinds).unwrap(),
            "model `m` needs task 2 (`b`) to be binary, but it is a regression task: because"
        );
        assert_eq!(req(TaskRule::Binary(2)).unmet_kind(&three, &kinds), None);
        // Out of range: the count rule speaks for it.
        assert_eq!(req(TaskRule::Binary(7)).unmet_kind(&three, &kinds), None);
        assert_eq!(req(TaskRule::MinBinary(2)).unmet_kind(&three, &kinds), None);
        assert_eq!(
            req(TaskRule::MinBinary(3))
                .unmet_kind(&three, &kinds)
                .unwrap(),
            "model `m` needs at least 3 binary tasks, the data has 2 (`a`, `c`): because"
        );
        assert_eq!(
            req(TaskRule::MinBinary(1))
                .unmet_kind(&names(&["y"]), &[TaskKind::Regression])
                .unwrap(),
            "model `m` needs at least 1 binary tasks, the data has 0 (none): because"
        );
        assert_eq!(
            req(TaskRule::Implies { from: 1, to: 0 }).unmet_kind(&three, &kinds),
            None
        );
    }

    #[test]
    fn a_task_of_the_wrong_kind_names_the_schema_line_of_its_entry() {
        let dir = tempfile::tempdir().unwrap();
        // The second [[tasks]] header is line 6.
        let schema = "[[dense]]\nname = \"x\"\n\
                      [[tasks]]\nname = \"click\"\nkind = \"binary\"\n\
                      [[tasks]]\nname = \"conversion\"\nkind = \"regression\"\n";
        std::fs::write(dir.path().join("s.toml"), schema).unwrap();
        let cfg = DataConfig::Files(FilesConfig::new(dir.path().join("s.toml"), "t.csv"));
        let meta = FeatureMeta {
            sparse_names: Vec::new(),
            vocab_sizes: Vec::new(),
            bags: Vec::new(),
            dense_names: names(&["x"]),
            task_names: names(&["click", "conversion"]),
            task_kinds: vec![TaskKind::Binary, TaskKind::Regression],
        };
        let req = |rule| TaskRequirement {
            by: "model `esmm`",
            rule,
            why: "w",
        };
        let reqs = [req(TaskRule::Count(2)), req(TaskRule::Binary(1))];
        let e = check_task_kinds(&reqs, &cfg, Path::new("."), &meta)
            .unwrap_err()
            .to_string();
        let file = dir.path().join("s.toml").display().to_string();
        assert_eq!(
            e,
            format!(
                "{file}:6: model `esmm` needs task 2 (`conversion`) to be binary, but it is a \
                 regression task: w"
            )
        );
        let e = check_task_kinds(&[req(TaskRule::Count(3))], &cfg, Path::new("."), &meta)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("{file}: model `esmm` needs exactly 3 tasks")),
            "{e}"
        );
        // Generated data has no schema file to name.
        let census = DataConfig::Census(Default::default());
        let e = check_task_kinds(&reqs, &census, Path::new("."), &meta)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("model `esmm` needs task 2"), "{e}");
        assert!(check_task_kinds(&reqs[..1], &cfg, Path::new("."), &meta).is_ok());
    }

    /// A schema over `cat,x,click,conversion` listing the tasks in `order`, and its files.
    fn write(dir: &Path, order: [&str; 2], files: &[(&str, &str)]) -> FilesConfig {
        let tasks: String = order
            .iter()
            .map(|t| format!("[[tasks]]\nname = \"{t}\"\nkind = \"binary\"\n"))
            .collect();
        std::fs::write(
            dir.join("schema.toml"),
            format!("[[sparse]]\nname = \"cat\"\n[[dense]]\nname = \"x\"\n{tasks}"),
        )
        .unwrap();
        for (name, rows) in files {
            std::fs::write(dir.join(name), format!("cat,x,click,conversion\n{rows}")).unwrap();
        }
        FilesConfig::new(dir.join("schema.toml"), dir.join("train.csv"))
    }

    /// Ten clean rows: 4 clicks, 2 of them converted.
    const CLEAN: &str = "a,1,0,0\nb,2,1,0\na,3,1,1\nb,4,0,0\na,5,0,0\n\
                         b,6,1,0\na,7,0,0\nb,8,1,1\na,9,0,0\nb,1,0,0\n";

    fn check(cfg: FilesConfig) -> Result<Vec<String>> {
        let cfg = DataConfig::Files(cfg);
        let data = crate::load(&cfg, Path::new(".")).unwrap();
        check_task_rows(&[ESMM_IMPLIES], &cfg, Path::new("."), &data)
    }

    #[test]
    fn a_conversion_without_a_click_in_the_training_file_names_its_first_line() {
        let dir = tempfile::tempdir().unwrap();
        // Header line 1, clean rows on lines 2-11, the breaches on lines 13 and 15.
        let rows = format!("{CLEAN}a,1,1,1\na,2,0,1\nb,3,0,0\nb,4,0,1\n");
        let cfg = write(dir.path(), ["click", "conversion"], &[("train.csv", &rows)]);
        let e = check(cfg).unwrap_err().to_string();
        let file = dir.path().join("train.csv").display().to_string();
        assert!(e.starts_with(&format!("{file}:13: task `conversion` is 1 but task `click` is 0 (2 such rows in this file); model `esmm` needs")), "{e}");
        assert!(
            e.contains("Such rows record `conversion` without `click`"),
            "{e}"
        );
    }

    #[test]
    fn tasks_listed_conversion_first_are_named_as_the_likely_cause() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = write(dir.path(), ["conversion", "click"], &[("train.csv", CLEAN)]);
        let e = check(cfg).unwrap_err().to_string();
        // Task 1 is now `click`: its first positive without a conversion is line 3.
        let file = dir.path().join("train.csv").display().to_string();
        assert!(
            e.starts_with(&format!(
                "{file}:3: task `click` is 1 but task `conversion` is 0 (2 such rows in this file)"
            )),
            "{e}"
        );
        assert!(
            e.contains("wrong order: swap `conversion` and `click`"),
            "{e}"
        );
    }

    #[test]
    fn breaches_in_a_given_evaluation_file_are_a_warning_with_their_count() {
        let dir = tempfile::tempdir().unwrap();
        let valid = "a,1,0,0\na,2,0,1\nb,3,1,1\nb,4,0,1\nb,5,0,1\n";
        let mut cfg = write(
            dir.path(),
            ["click", "conversion"],
            &[
                ("train.csv", CLEAN),
                ("valid.csv", valid),
                ("test.csv", CLEAN),
            ],
        );
        cfg.valid = Some(dir.path().join("valid.csv"));
        cfg.test = Some(dir.path().join("test.csv"));
        let warnings = check(cfg).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let file = dir.path().join("valid.csv").display().to_string();
        assert!(
            warnings[0].starts_with(&format!(
                "{file}:3: 3 rows have task `conversion` = 1 but `click` = 0"
            )),
            "{}",
            warnings[0]
        );
    }

    #[test]
    fn clean_data_is_checked_without_reading_the_files_again() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = write(dir.path(), ["click", "conversion"], &[("train.csv", CLEAN)]);
        let cfg = DataConfig::Files(cfg);
        let data = crate::load(&cfg, Path::new(".")).unwrap();
        std::fs::remove_file(dir.path().join("train.csv")).unwrap();
        assert_eq!(
            check_task_rows(&[ESMM_IMPLIES], &cfg, Path::new("."), &data).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn generated_data_breaking_an_implication_is_an_error_without_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let rows = format!("{CLEAN}a,1,0,1\n");
        let files = write(dir.path(), ["click", "conversion"], &[("train.csv", &rows)]);
        let data = crate::load(&DataConfig::Files(files), Path::new(".")).unwrap();
        // Any non-file source: the rows have no line to name.
        let cfg = DataConfig::Census(Default::default());
        let e = check_task_rows(&[ESMM_IMPLIES], &cfg, Path::new("."), &data)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "task `conversion` is 1 but task `click` is 0 (1 such row in the training data)"
            ),
            "{e}"
        );
    }

    #[test]
    fn an_evaluated_file_reports_each_breach_once() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = write(
            dir.path(),
            ["click", "conversion"],
            &[("train.csv", CLEAN), ("eval.csv", "a,1,0,1\nb,2,1,1\n")],
        );
        let data = crate::load(&DataConfig::Files(cfg), Path::new(".")).unwrap();
        let pre = &data.preprocessor;
        let src = SourceSpec::new(dir.path().join("eval.csv"));
        let table = pre.encode_file(&src).unwrap();
        let w = check_eval_rows(&[ESMM_IMPLIES], &pre.schema, &src, &table).unwrap();
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("eval.csv:2: 1 row has task `conversion` = 1"),
            "{}",
            w[0]
        );
        let src = SourceSpec::new(dir.path().join("train.csv"));
        let table = pre.encode_file(&src).unwrap();
        assert!(
            check_eval_rows(&[ESMM_IMPLIES], &pre.schema, &src, &table)
                .unwrap()
                .is_empty()
        );
    }
}
