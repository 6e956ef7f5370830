use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, Table};
use mtrec_metrics::TaskMetrics;

/// One row of a metrics table: a label (task, or model/task) and its figures.
pub struct MetricsRow<'a> {
    pub label: String,
    pub metrics: &'a TaskMetrics,
}

fn fmt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"))
}

/// Renders rows as a table with a column per metric that any row has.
pub fn metrics_table(title: &str, rows: &[MetricsRow<'_>]) -> String {
    let any = |f: fn(&TaskMetrics) -> Option<f64>| rows.iter().any(|r| f(r.metrics).is_some());
    let columns: Vec<(&str, fn(&TaskMetrics) -> Option<f64>)> = [
        (
            "AUC",
            (|m: &TaskMetrics| m.auc) as fn(&TaskMetrics) -> Option<f64>,
        ),
        ("logloss", |m: &TaskMetrics| m.logloss),
        ("MSE", |m: &TaskMetrics| m.mse),
        // Only where example weights differ from 1 (weighted tasks).
        ("weight sum", |m: &TaskMetrics| m.weight_sum),
    ]
    .into_iter()
    .filter(|(_, f)| any(*f))
    .collect();
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    let mut header = vec![Cell::new(title)];
    header.extend(columns.iter().map(|(n, _)| Cell::new(n)));
    // Rows that carry the task's label: masked and unqualified rows are not counted.
    header.push(Cell::new("labelled rows"));
    table.set_header(header);
    for row in rows {
        let mut cells = vec![Cell::new(&row.label)];
        for (_, f) in &columns {
            cells.push(Cell::new(fmt(f(row.metrics))).set_alignment(CellAlignment::Right));
        }
        cells.push(Cell::new(row.metrics.n).set_alignment(CellAlignment::Right));
        table.add_row(cells);
    }
    table.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_only_the_metrics_present_with_four_decimals() {
        let m = TaskMetrics {
            auc: Some(0.951234),
            logloss: Some(0.12),
            mse: None,
            n: 10,
            weight_sum: None,
        };
        let s = metrics_table(
            "task",
            &[MetricsRow {
                label: "income".into(),
                metrics: &m,
            }],
        );
        assert!(
            s.contains("income") && s.contains("0.9512") && s.contains("0.1200"),
            "{s}"
        );
        assert!(!s.contains("MSE") && !s.contains("weight sum"), "{s}");
        let weighted = TaskMetrics {
            weight_sum: Some(117.5),
            ..m
        };
        let s = metrics_table(
            "task",
            &[MetricsRow {
                label: "like".into(),
                metrics: &weighted,
            }],
        );
        assert!(s.contains("weight sum") && s.contains("117.5000"), "{s}");
    }
}
