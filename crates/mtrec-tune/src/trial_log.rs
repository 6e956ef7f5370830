//! The trial log: one JSON line per finished trial, appended as each ends, and the only state
//! a tuning keeps. Resuming reads it back, refits the surrogate and carries on to the budget.
//!
//! A line is written with one `write` of the whole line and synced before the next trial
//! starts, so a tuning killed mid-trial loses at most that trial; a line torn by a crash
//! mid-write can only be the last one, and is dropped (and the file cut back) on resume.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::TuneError;
use crate::optimizer::{Observation, Source};
use crate::space::{Assignment, Space};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrialStatus {
    Ok,
    Failed,
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrialRecord {
    /// 1-based; line `k` of the log holds trial `k`.
    pub trial: usize,
    /// The tuned values, by config key.
    pub params: Assignment,
    /// The objective's name (`valid.income.auc`): a log is resumed only for the same one.
    pub metric: String,
    /// `None` for a failed trial.
    pub objective: Option<f64>,
    pub status: TrialStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub wall_seconds: f64,
    pub source: Source,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_improvement: Option<f64>,
    /// Where the trial's run went, and the command line that reproduces it.
    #[serde(default)]
    pub out: String,
    #[serde(default)]
    pub command: String,
}

#[derive(Debug)]
pub struct TrialLog {
    path: PathBuf,
    records: Vec<TrialRecord>,
    /// Whether opening dropped a line torn by a crash.
    pub dropped_torn_line: bool,
}

impl TrialLog {
    /// Reads the log at `path` (none yet is an empty log).
    pub fn open(path: &Path) -> Result<Self, TuneError> {
        let mut log = Self {
            path: path.to_path_buf(),
            records: Vec::new(),
            dropped_torn_line: false,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(log),
            Err(e) => return Err(TuneError::io(path, e)),
        };
        let bad = |line: usize, message: String| TuneError::Log {
            path: path.to_path_buf(),
            line,
            message,
        };
        let mut complete = 0; // bytes of whole lines
        for (i, line) in text.split_inclusive('\n').enumerate() {
            let whole = line.ends_with('\n');
            let body = line.trim_end();
            if body.is_empty() {
                complete += line.len();
                continue;
            }
            match serde_json::from_str::<TrialRecord>(body) {
                Ok(record) => {
                    let expected = log.records.len() + 1;
                    if record.trial != expected {
                        return Err(bad(
                            i + 1,
                            format!("trial {} where trial {expected} was expected", record.trial),
                        ));
                    }
                    log.records.push(record);
                    if whole {
                        complete += line.len();
                    }
                }
                Err(_) if !whole => {
                    log.dropped_torn_line = true;
                    break;
                }
                Err(e) => return Err(bad(i + 1, format!("not a trial record: {e}"))),
            }
        }
        if complete < text.len() {
            // Cut a torn line; end a whole last line that lacks its newline.
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| TuneError::io(path, e))?;
            file.set_len(complete as u64)
                .map_err(|e| TuneError::io(path, e))?;
            drop(file);
            if !log.dropped_torn_line {
                log.records.pop();
                let last = text[complete..].trim_end().to_string();
                let record: TrialRecord =
                    serde_json::from_str(&last).expect("parsed above as the last line");
                log.append(record)?;
            }
        }
        Ok(log)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn records(&self) -> &[TrialRecord] {
        &self.records
    }

    /// Appends one line and syncs it to disk.
    pub fn append(&mut self, record: TrialRecord) -> Result<(), TuneError> {
        let mut line = serde_json::to_string(&record).map_err(|e| {
            TuneError::io(
                &self.path,
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })?;
        line.push('\n');
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| TuneError::io(dir, e))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| TuneError::io(&self.path, e))?;
        file.write_all(line.as_bytes())
            .and_then(|_| file.sync_data())
            .map_err(|e| TuneError::io(&self.path, e))?;
        self.records.push(record);
        Ok(())
    }

    /// The error every one of the first `initial` trials (at least two) failed with, when
    /// they all failed alike and none has succeeded: different values failing identically
    /// point at the config or the data rather than at any trial's values, and the rest of
    /// the budget would fail the same way. Returns how many failed and the error.
    pub fn shared_failure(&self, initial: usize) -> Option<(usize, &str)> {
        let n = initial.max(2);
        let first = self.records.get(..n)?;
        if self.records.iter().any(|r| r.status == TrialStatus::Ok) {
            return None;
        }
        let error = first[0].error.as_deref()?;
        first
            .iter()
            .all(|r| r.status == TrialStatus::Failed && r.error.as_deref() == Some(error))
            .then_some((n, error))
    }

    /// The logged trials as the optimiser sees them; an error names the first line that does
    /// not belong to `space` (another objective, another parameter, a value out of range).
    pub fn observations(&self, space: &Space) -> Result<Vec<Observation>, TuneError> {
        let metric = space.objective.metric.to_string();
        self.records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let bad = |message: String| TuneError::Log {
                    path: self.path.clone(),
                    line: i + 1,
                    message: format!(
                        "{message}: this log was written for another search space; tune into another folder or fix the space"
                    ),
                };
                if r.metric != metric {
                    return Err(bad(format!(
                        "objective `{}`, but the space's is `{metric}`",
                        r.metric
                    )));
                }
                let x = space.encode(&r.params).map_err(bad)?;
                let score = match (r.status, r.objective) {
                    (TrialStatus::Ok, Some(v)) if v.is_finite() => {
                        Some(space.objective.score(v))
                    }
                    _ => None,
                };
                Ok(Observation { x, score })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(trial: usize, objective: Option<f64>) -> TrialRecord {
        TrialRecord {
            trial,
            params: [(
                "train.learning_rate".to_string(),
                toml::Value::Float(0.001 * trial as f64),
            )]
            .into(),
            metric: "valid.loss".into(),
            objective,
            status: if objective.is_some() {
                TrialStatus::Ok
            } else {
                TrialStatus::Failed
            },
            error: objective.is_none().then(|| "diverged".to_string()),
            wall_seconds: 1.5,
            source: Source::Design,
            expected_improvement: None,
            out: format!("runs/t/trials/{trial}"),
            command: "mtrec train".into(),
        }
    }

    #[test]
    fn appends_and_reads_back_the_same_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/trials.jsonl");
        let mut log = TrialLog::open(&path).unwrap();
        assert!(log.records().is_empty());
        log.append(record(1, Some(0.5))).unwrap();
        log.append(record(2, None)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.contains("\"status\":\"failed\""), "{text}");
        assert!(text.contains("\"train.learning_rate\":0.002"), "{text}");
        let again = TrialLog::open(&path).unwrap();
        assert_eq!(again.records(), log.records());
        assert!(!again.dropped_torn_line);
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trials.jsonl");
        let mut log = TrialLog::open(&path).unwrap();
        log.append(record(1, Some(0.5))).unwrap();
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"trial\":2,\"params\":{\"train.le");
        std::fs::write(&path, &text).unwrap();
        let mut log = TrialLog::open(&path).unwrap();
        assert!(log.dropped_torn_line);
        assert_eq!(log.records().len(), 1);
        log.append(record(2, Some(0.4))).unwrap();
        let reread = TrialLog::open(&path).unwrap();
        assert_eq!(reread.records().len(), 2);
    }

    #[test]
    fn a_whole_last_line_without_newline_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trials.jsonl");
        let line = serde_json::to_string(&record(1, Some(0.5))).unwrap();
        std::fs::write(&path, &line).unwrap();
        let mut log = TrialLog::open(&path).unwrap();
        assert_eq!(log.records().len(), 1);
        log.append(record(2, Some(0.4))).unwrap();
        assert_eq!(TrialLog::open(&path).unwrap().records().len(), 2);
    }

    #[test]
    fn a_damaged_middle_line_or_a_gap_is_an_error_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trials.jsonl");
        let good = serde_json::to_string(&record(1, Some(0.5))).unwrap();
        std::fs::write(&path, format!("{good}\nnot json\n")).unwrap();
        let e = TrialLog::open(&path).unwrap_err().to_string();
        assert!(e.contains("trials.jsonl line 2: not a trial record"), "{e}");
        let third = serde_json::to_string(&record(3, Some(0.5))).unwrap();
        std::fs::write(&path, format!("{good}\n{third}\n")).unwrap();
        let e = TrialLog::open(&path).unwrap_err().to_string();
        assert!(
            e.contains("line 2: trial 3 where trial 2 was expected"),
            "{e}"
        );
    }

    #[test]
    fn a_failure_shared_by_the_whole_initial_design_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trials.jsonl");
        let mut log = TrialLog::open(&path).unwrap();
        log.append(record(1, None)).unwrap();
        log.append(record(2, None)).unwrap();
        // Not before the design is done, and never from one trial alone.
        assert_eq!(log.shared_failure(3), None);
        assert_eq!(log.shared_failure(1), Some((2, "diverged")));
        log.append(record(3, None)).unwrap();
        assert_eq!(log.shared_failure(3), Some((3, "diverged")));
        // Another error among them: the values may be at fault.
        let mut other = record(4, None);
        other.error = Some("out of memory".into());
        let mut log2 = TrialLog::open(&dir.path().join("b.jsonl")).unwrap();
        log2.append(record(1, None)).unwrap();
        other.trial = 2;
        log2.append(other).unwrap();
        assert_eq!(log2.shared_failure(2), None);
        // Any success, even after the design: the config can train.
        log.append(record(4, Some(0.3))).unwrap();
        assert_eq!(log.shared_failure(3), None);
    }

    #[test]
    fn observations_check_the_space_and_orient_scores() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trials.jsonl");
        let mut log = TrialLog::open(&path).unwrap();
        log.append(record(1, Some(0.5))).unwrap();
        log.append(record(2, None)).unwrap();
        let space = |metric: &str, max: f64| {
            Space::from_toml_str(
                &format!(
                    "[objective]\nmetric = \"{metric}\"\n[[param]]\nkey = \"train.learning_rate\"\nmin = 0.0\nmax = {max}\n"
                ),
                Path::new("s.toml"),
            )
            .unwrap()
        };
        let obs = log.observations(&space("valid.loss", 0.01)).unwrap();
        assert_eq!(obs.len(), 2);
        // valid.loss is minimised: the score is its negative.
        assert_eq!(obs[0].score, Some(-0.5));
        assert_eq!(obs[1].score, None);
        assert!((obs[1].x[0] - 0.2).abs() < 1e-12);
        let e = log
            .observations(&space("valid.mean-auc", 0.01))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 1: objective `valid.loss`, but the space's is `valid.mean-auc`"),
            "{e}"
        );
        let e = log
            .observations(&space("valid.loss", 0.0015))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 2: `train.learning_rate`: 0.002 is outside"),
            "{e}"
        );
    }
}
