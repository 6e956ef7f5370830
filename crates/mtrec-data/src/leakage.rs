//! Inputs that give a label away, found before training.
//!
//! A field that nearly determines a label makes every model look excellent
//! and learn nothing transferable: Census's `detailed household and family
//! stat` spells out marital status in values such as "Child <18 never marr not
//! in subfamily", and a log's `play_time_ms` decides a long view computed from
//! it. So before training, every input field is scored alone against every
//! task on the training split, and a field scoring at least
//! [`LEAK_THRESHOLD`] is reported, naming both.
//!
//! Scores (the training split's encoded table; rows whose label is masked,
//! weight 0, are left out of that task):
//! - binary task, dense field: ROC AUC of the value itself, `max(AUC, 1 - AUC)`
//!   since a field predicting the label backwards gives it away as well. Only
//!   monotone relations count; a label decided by `|x| > 1` is not caught.
//! - binary task, sparse field (bucketised fields included): ROC AUC of the
//!   positive rate of each row's value.
//! - regression task: R^2, of the per-value mean (sparse), or of the least
//!   squares line (dense: the squared correlation).
//!
//! Multi-valued sparse fields ([`crate::bag`]) are not scored: a row holds a
//! set of values there, not one value with a rate.
//!
//! Per-value rates are computed out of fold, not in-sample. In-sample, a value
//! seen once "predicts" its own row's label perfectly, so an ID-like field
//! (a user id, a timestamp) would always look leaky; dropping rare values
//! instead would hide a rare value that does determine its label. So the rows
//! are cut into [`FOLDS`] folds (row `i` in fold `i mod FOLDS`; the training
//! split is already shuffled, or a file's own order), and a row is scored by
//! its value's rate on the other folds, or by the other folds' overall rate
//! when its value is absent there. An ID seen once then scores the base rate,
//! and only a field whose values keep deciding the label on rows they were not
//! fitted on scores high. Leave-one-out would not do: it scores a value's
//! positives below its negatives, a spurious signal of its own.
//!
//! Threshold: on Census-Income (test file, `marital` = never married) the
//! household-and-family field scores 0.977 (0.972 on the 1,890-row train-file
//! sample), the next fields, age and the household summary, 0.944 and 0.945
//! (0.936, 0.933 on the sample). Household status only misses the
//! "householders" whose marital status it does not say; age is a strong but
//! honest predictor. [`LEAK_THRESHOLD`] = 0.96 sits between the two groups.
//!
//! Cost: one sort per (field, task) pair, `O(n log n)`; under a tenth of a
//! second for Census's 39 fields, 2 tasks and 50k training rows. Larger
//! training splits are thinned to [`MAX_ROWS`] evenly spaced rows: AUC on 200k
//! rows is within about 0.002 of the full figure, far finer than the threshold,
//! and a 10M-row log is checked in seconds instead of minutes.

use std::fmt;

use serde::Serialize;

use crate::encode::FeatureMeta;
use crate::schema::TaskKind;
use crate::table::EncodedTable;

/// A field scoring at least this alone (AUC, or R^2) is reported.
pub const LEAK_THRESHOLD: f64 = 0.96;

/// Folds for the out-of-fold per-value rates.
pub const FOLDS: usize = 5;

/// Below this many labelled rows a task is not scored: a handful of rows
/// makes any field look decisive.
pub const MIN_ROWS: usize = 20;

/// At most this many rows are scored per task (see the module doc).
pub const MAX_ROWS: usize = 200_000;

/// How well one field alone predicts one task.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "metric", content = "value", rename_all = "lowercase")]
pub enum LeakScore {
    /// Binary task: ROC AUC, oriented so that 0.5 is chance and 1 decides.
    Auc(f64),
    /// Regression task: share of the label's variance explained.
    R2(f64),
}

impl LeakScore {
    pub fn value(self) -> f64 {
        match self {
            LeakScore::Auc(v) | LeakScore::R2(v) => v,
        }
    }
}

impl fmt::Display for LeakScore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeakScore::Auc(v) => write!(f, "AUC {v:.3}"),
            LeakScore::R2(v) => write!(f, "R^2 {v:.3}"),
        }
    }
}

/// An input field and a task it predicts alone.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Leak {
    pub field: String,
    pub task: String,
    pub score: LeakScore,
}

impl fmt::Display for Leak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "input field `{}` nearly determines task `{}` ({} alone on the training split); \
             if it is only known with or after the label, leave it out of the inputs",
            self.field, self.task, self.score
        )
    }
}

/// Every (field, task) pair scoring at least `threshold`, highest first.
pub fn find_leaks(table: &EncodedTable, meta: &FeatureMeta, threshold: f64) -> Vec<Leak> {
    let mut leaks: Vec<Leak> = field_scores(table, meta)
        .into_iter()
        .filter(|l| l.score.value() >= threshold)
        .collect();
    leaks.sort_by(|a, b| b.score.value().total_cmp(&a.score.value()));
    leaks
}

/// The score of every (field, task) pair that can be scored: tasks with at
/// least [`MIN_ROWS`] labelled rows, both classes (binary) or some spread
/// (regression); fields in [`FeatureMeta`] order, sparse then dense.
pub fn field_scores(table: &EncodedTable, meta: &FeatureMeta) -> Vec<Leak> {
    let mut out = Vec::new();
    for (t, (task, &kind)) in meta.task_names.iter().zip(&meta.task_kinds).enumerate() {
        if t >= table.n_tasks {
            break;
        }
        let labels = table.labels_of_task(t);
        let rows: Vec<usize> = match table.weights_of_task(t) {
            Some(w) => (0..table.n_rows).filter(|&r| w[r] > 0.0).collect(),
            None => (0..table.n_rows).collect(),
        };
        if rows.len() < MIN_ROWS {
            continue;
        }
        let rows = thin(rows, MAX_ROWS);
        let y: Vec<f32> = rows.iter().map(|&r| labels[r]).collect();
        let mut slot = 0;
        for (f, (name, width)) in meta.sparse_names.iter().zip(meta.slot_counts()).enumerate() {
            let s = slot;
            slot += width;
            if slot > table.n_sparse {
                break;
            }
            if meta.bags.iter().any(|b| b.field == f) {
                continue;
            }
            let ids: Vec<u32> = rows
                .iter()
                .map(|&r| table.sparse[r * table.n_sparse + s])
                .collect();
            let score = match kind {
                TaskKind::Binary => auc(&out_of_fold_means(&ids, &y), &y).map(LeakScore::Auc),
                TaskKind::Regression => r2(&out_of_fold_means(&ids, &y), &y).map(LeakScore::R2),
            };
            push(&mut out, name, task, score);
        }
        let dense = meta.dense_names.iter().enumerate().take(table.n_dense);
        for (j, name) in dense {
            let x: Vec<f32> = rows
                .iter()
                .map(|&r| table.dense[r * table.n_dense + j])
                .collect();
            let score = match kind {
                TaskKind::Binary => auc(&x, &y).map(|a| LeakScore::Auc(a.max(1.0 - a))),
                TaskKind::Regression => squared_correlation(&x, &y).map(LeakScore::R2),
            };
            push(&mut out, name, task, score);
        }
    }
    out
}

/// Every `k`-th row, `k` the smallest step that leaves at most `max`.
fn thin(rows: Vec<usize>, max: usize) -> Vec<usize> {
    if rows.len() <= max {
        return rows;
    }
    let step = rows.len().div_ceil(max);
    rows.into_iter().step_by(step).collect()
}

fn push(out: &mut Vec<Leak>, field: &str, task: &str, score: Option<LeakScore>) {
    if let Some(score) = score {
        out.push(Leak {
            field: field.to_string(),
            task: task.to_string(),
            score,
        });
    }
}

/// `None` where AUC is undefined (one class only).
fn auc(scores: &[f32], labels: &[f32]) -> Option<f64> {
    mtrec_metrics::auc(scores, labels).ok()
}

/// Each row's value mean of `y` over the other folds (see the module doc).
fn out_of_fold_means(ids: &[u32], y: &[f32]) -> Vec<f32> {
    let n_ids = ids.iter().max().map_or(0, |&m| m as usize + 1);
    let mut sum = vec![0.0f64; n_ids];
    let mut count = vec![0u32; n_ids];
    let mut fold_sum = vec![vec![0.0f64; n_ids]; FOLDS];
    let mut fold_count = vec![vec![0u32; n_ids]; FOLDS];
    let (mut fold_total, mut fold_rows) = ([0.0f64; FOLDS], [0usize; FOLDS]);
    for (i, (&v, &label)) in ids.iter().zip(y).enumerate() {
        let (k, v, label) = (i % FOLDS, v as usize, f64::from(label));
        sum[v] += label;
        count[v] += 1;
        fold_sum[k][v] += label;
        fold_count[k][v] += 1;
        fold_total[k] += label;
        fold_rows[k] += 1;
    }
    let total: f64 = fold_total.iter().sum();
    ids.iter()
        .enumerate()
        .map(|(i, &v)| {
            let (k, v) = (i % FOLDS, v as usize);
            let n = count[v] - fold_count[k][v];
            if n > 0 {
                ((sum[v] - fold_sum[k][v]) / f64::from(n)) as f32
            } else {
                let rest = ids.len() - fold_rows[k];
                ((total - fold_total[k]) / rest.max(1) as f64) as f32
            }
        })
        .collect()
}

/// `1 - SSE / SST` of predictions `p` for `y`; `None` for a constant label.
fn r2(p: &[f32], y: &[f32]) -> Option<f64> {
    let n = y.len() as f64;
    let mean = y.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let sst: f64 = y.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum();
    let sse: f64 = p
        .iter()
        .zip(y)
        .map(|(&p, &v)| (f64::from(p) - f64::from(v)).powi(2))
        .sum();
    (sst > 0.0).then(|| 1.0 - sse / sst)
}

/// R^2 of the least-squares line of `y` on `x`; `None` if either is constant.
fn squared_correlation(x: &[f32], y: &[f32]) -> Option<f64> {
    let n = x.len() as f64;
    let mx = x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let my = y.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (&a, &b) in x.iter().zip(y) {
        let (dx, dy) = (f64::from(a) - mx, f64::from(b) - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy * sxy / (sxx * syy))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(sparse: &[&str], dense: &[&str], kinds: &[TaskKind]) -> FeatureMeta {
        FeatureMeta {
            sparse_names: sparse.iter().map(|s| s.to_string()).collect(),
            vocab_sizes: vec![0; sparse.len()],
            bags: Vec::new(),
            dense_names: dense.iter().map(|s| s.to_string()).collect(),
            task_names: (0..kinds.len()).map(|t| format!("t{t}")).collect(),
            task_kinds: kinds.to_vec(),
        }
    }

    #[test]
    fn out_of_fold_means_follow_the_fold_rule() {
        // 10 rows, folds i mod 5: rows 0 and 5 in fold 0, ... Value 1 on rows 0..5 with
        // labels 1 1 0 1 1; value 2 on rows 5..10 with labels 0 0 0 1 0; value 3 once (row 9
        // shares fold 4 with row 4 only, so its value is seen nowhere else).
        let ids = [1, 1, 1, 1, 1, 2, 2, 2, 2, 3];
        let y = [1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
        let p = out_of_fold_means(&ids, &y);
        // Row 0 (fold 0, value 1): other value-1 rows 1..5 have labels 1 0 1 1 -> 3/4.
        assert!((p[0] - 0.75).abs() < 1e-6, "{p:?}");
        // Row 2 (fold 2): other value-1 rows 0 1 3 4 -> 4/4.
        assert!((p[2] - 1.0).abs() < 1e-6, "{p:?}");
        // Row 8 (fold 3, value 2): rows 5 6 7 -> 0.
        assert!(p[8].abs() < 1e-6, "{p:?}");
        // Row 9 (fold 4, value 3 unseen elsewhere): overall rate of the rows outside fold 4,
        // rows 0-3 and 5-8 with labels 1 1 0 1 0 0 0 1 -> 4/8.
        assert!((p[9] - 0.5).abs() < 1e-6, "{p:?}");
    }

    #[test]
    fn a_planted_copy_of_the_label_is_named_and_a_clean_column_is_not() {
        // 200 rows. `copy` is the label's category (ids 1/2), `noise` an unrelated code of
        // 4 values, `uid` a unique id per row, `score` a dense copy of the label plus a
        // small ramp, `flat` a dense value unrelated to the label.
        let n = 200;
        let label = |r: usize| ((r * 7 + r / 3) % 5 < 2) as u32 as f32;
        let mut table = EncodedTable::with_widths(3, 2, 1);
        for r in 0..n {
            let y = label(r);
            table
                .sparse
                .extend([1 + y as u32, 1 + (r % 4) as u32, 1 + r as u32]);
            table
                .dense
                .extend([y * 10.0 + (r % 3) as f32, ((r * 13) % 17) as f32]);
            table.labels.push(y);
            table.n_rows += 1;
        }
        let m = meta(
            &["copy", "noise", "uid"],
            &["score", "flat"],
            &[TaskKind::Binary],
        );
        let leaks = find_leaks(&table, &m, LEAK_THRESHOLD);
        let named: Vec<(&str, f64)> = leaks
            .iter()
            .map(|l| (l.field.as_str(), l.score.value()))
            .collect();
        assert_eq!(named, vec![("copy", 1.0), ("score", 1.0)], "{leaks:?}");
        let scores = field_scores(&table, &m);
        let uid = scores.iter().find(|l| l.field == "uid").expect("scored");
        // Every uid is seen once, so each row scores its fold's base rate: near chance.
        assert!(uid.score.value() < 0.7, "{uid:?}");
        let text = leaks[0].to_string();
        assert!(
            text.contains("`copy`") && text.contains("`t0`") && text.contains("AUC 1.000"),
            "{text}"
        );
    }

    #[test]
    fn a_field_after_a_multi_valued_one_is_read_from_its_own_slot() {
        // Slots: `tags` (a bag of 2 slots, both holding an unrelated code), then `copy`,
        // the label's category. Reading `copy` from slot 1, the bag's second slot, would
        // score the unrelated code and miss the leak.
        let n = 100;
        let mut table = EncodedTable::with_widths(3, 0, 1);
        for r in 0..n {
            let y = (r % 3 == 0) as u32;
            let code = 1 + (r % 4) as u32;
            table.sparse.extend([code, code, 1 + y]);
            table.labels.push(y as f32);
            table.n_rows += 1;
        }
        let mut m = meta(&["tags", "copy"], &[], &[TaskKind::Binary]);
        m.bags = vec![crate::BagLayout {
            field: 0,
            slots: 2,
            pooling: crate::Pooling::Mean,
        }];
        let scores = field_scores(&table, &m);
        let named: Vec<(&str, f64)> = scores
            .iter()
            .map(|l| (l.field.as_str(), l.score.value()))
            .collect();
        assert_eq!(named, vec![("copy", 1.0)]);
    }

    #[test]
    fn regression_scores_are_r2_and_reversed_dense_fields_count() {
        let n = 50;
        let mut table = EncodedTable::with_widths(1, 1, 2);
        for r in 0..n {
            let y = r as f32;
            table.sparse.push(1 + (r % 5) as u32);
            // Falls as the binary label rises: AUC 0 read backwards is 1.
            table.dense.push(-y);
            table.labels.extend([y, (r >= 25) as u32 as f32]);
            table.n_rows += 1;
        }
        let m = meta(
            &["code"],
            &["minus"],
            &[TaskKind::Regression, TaskKind::Binary],
        );
        let s = field_scores(&table, &m);
        let get = |f: &str, t: &str| {
            s.iter()
                .find(|l| l.field == f && l.task == t)
                .map(|l| l.score)
        };
        assert_eq!(get("minus", "t0"), Some(LeakScore::R2(1.0)));
        assert_eq!(get("minus", "t1"), Some(LeakScore::Auc(1.0)));
        // r mod 5 says nothing about r: the out-of-fold means are near the overall mean,
        // so R^2 is at most about 0.
        let code = get("code", "t0").expect("scored").value();
        assert!(code < 0.1, "{code}");
    }

    #[test]
    fn long_splits_are_thinned_evenly() {
        // 10 rows, at most 4: step ceil(10 / 4) = 3 keeps rows 0, 3, 6, 9.
        assert_eq!(thin((0..10).collect(), 4), vec![0, 3, 6, 9]);
        assert_eq!(thin((0..4).collect(), 4), vec![0, 1, 2, 3]);
    }

    #[test]
    fn tiny_or_single_class_tasks_are_not_scored() {
        let mut table = EncodedTable::with_widths(1, 0, 1);
        for r in 0..30 {
            table.sparse.push(1 + r % 2);
            table.labels.push(1.0);
            table.n_rows += 1;
        }
        let m = meta(&["a"], &[], &[TaskKind::Binary]);
        assert!(field_scores(&table, &m).is_empty());
        assert!(field_scores(&table.head(10), &m).is_empty());
    }
}
