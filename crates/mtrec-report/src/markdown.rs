//! The report as markdown: the same tables as the HTML page, gate heat maps as tables of
//! numbers, and links to the figures the runs wrote (relative to the report's folder).

use std::fmt::Write;

use crate::html::{DEFINITIONS, fmt_opt, fmt_p, fmt_range, fmt_summary, level_label, usage_note};
use crate::page::{Comparison, GroupSection, ReportPage, collapsed};

/// A table cell: pipes and line breaks would end the cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn row(cells: &[String]) -> String {
    format!(
        "| {} |\n",
        cells
            .iter()
            .map(|c| cell(c))
            .collect::<Vec<_>>()
            .join(" | ")
    )
}

fn header(cells: &[String], right: &[bool]) -> String {
    let rule: Vec<String> = right
        .iter()
        .map(|r| if *r { "---:" } else { "---" }.to_string())
        .collect();
    format!("{}| {} |\n", row(cells), rule.join(" | "))
}

pub fn render_markdown(page: &ReportPage) -> String {
    let mut m = String::new();
    let _ = writeln!(m, "# {}\n", page.title);
    let _ = writeln!(
        m,
        "{} run(s) under `{}`; written by mtrec {}.\n",
        page.n_runs,
        page.dir,
        env!("CARGO_PKG_VERSION")
    );
    for note in &page.notes {
        let _ = writeln!(m, "> **Note:** {note}\n");
    }
    if !page.failed_runs.is_empty() {
        let _ = writeln!(
            m,
            "## Failed runs ({})\n\nRecorded as failed by `mtrec run`: no figures of theirs appear below. Its log is `<id>.log` beside the run folder; running the grid again retries them.\n",
            page.failed_runs.len()
        );
        m.push_str(&header(
            &["run", "error", "recorded in"].map(String::from),
            &[false, false, false],
        ));
        for f in &page.failed_runs {
            m.push_str(&row(&[f.id.clone(), f.error.clone(), f.results.clone()]));
        }
        m.push('\n');
    }
    for (i, c) in page.comparisons.iter().enumerate() {
        comparison_md(&mut m, i, c);
    }
    for g in &page.groups {
        group_md(&mut m, g, page.link_root.as_deref());
    }
    m.push_str("## How to read this report\n\n");
    for (term, text) in DEFINITIONS {
        let _ = writeln!(m, "- **{term}**: {text}");
    }
    m
}

fn comparison_md(m: &mut String, i: usize, c: &Comparison) {
    let _ = writeln!(m, "## Comparison {}: test figures\n", i + 1);
    let _ = writeln!(
        m,
        "Data: `{}`. {}\n",
        c.data,
        match &c.baseline {
            Some(b) => format!("Δm against Single-Task config `{b}`."),
            None => "No Single-Task run on this data: no Δm.".to_string(),
        }
    );
    let mut cells = vec!["config".to_string(), "model".into(), "n".into()];
    let mut right = vec![false, false, true];
    for (task, metric) in &c.tasks {
        cells.push(format!("{task} {metric}"));
        right.push(true);
    }
    cells.extend(["Δm %".to_string(), "wall s".into()]);
    right.extend([true, true]);
    m.push_str(&header(&cells, &right));
    for r in &c.rows {
        let mut cells = vec![r.name.clone(), r.model.clone(), r.runs.to_string()];
        cells.extend(r.tasks.iter().map(|s| fmt_summary(s.as_ref(), 4)));
        cells.push(fmt_opt(r.delta_m, 3));
        cells.push(
            r.wall_seconds
                .as_ref()
                .map_or("-".into(), |s| format!("{:.1}", s.mean)),
        );
        m.push_str(&row(&cells));
    }
    m.push('\n');
    if !c.paired.is_empty() {
        m.push_str(
            "Paired tests on shared seeds (best mean per task against each other config):\n\n",
        );
        m.push_str(&header(
            &[
                "task",
                "best",
                "vs",
                "pairs",
                "mean diff",
                "paired t p",
                "Wilcoxon p",
            ]
            .map(String::from),
            &[false, false, false, true, true, true, true],
        ));
        for p in &c.paired {
            m.push_str(&row(&[
                p.task.clone(),
                p.best.clone(),
                p.other.clone(),
                p.pairs.to_string(),
                format!("{:+.4}", p.mean_diff),
                fmt_p(p.t_p),
                fmt_p(p.wilcoxon_p),
            ]));
        }
        m.push('\n');
    }
}

fn group_md(m: &mut String, g: &GroupSection, link_root: Option<&str>) {
    let _ = writeln!(m, "## {} ({}, {} run(s))\n", g.name, g.model, g.runs.len());
    let mut tasks: Vec<&String> = g.runs.iter().flat_map(|r| r.tasks.keys()).collect();
    tasks.sort();
    tasks.dedup();
    let mut cells = vec!["run".to_string(), "seed".into()];
    for t in &tasks {
        let metric = g
            .runs
            .iter()
            .find_map(|r| r.tasks.get(*t))
            .map_or("", |f| f.metric.name());
        cells.push(format!("{t} {metric}"));
        cells.push(format!("{t} logloss"));
    }
    cells.extend([
        "test loss".to_string(),
        "best epoch".into(),
        "wall s".into(),
    ]);
    let mut right = vec![true; cells.len()];
    right[0] = false;
    m.push_str(&header(&cells, &right));
    for r in &g.runs {
        let mut cells = vec![
            r.label.clone(),
            r.seed.map_or("-".into(), |s| s.to_string()),
        ];
        for t in &tasks {
            let f = r.tasks.get(*t);
            cells.push(fmt_opt(f.map(|f| f.value), 4));
            cells.push(fmt_opt(f.and_then(|f| f.logloss), 4));
        }
        cells.push(fmt_opt(r.test_loss, 4));
        cells.push(match (r.best_epoch, r.epochs_run) {
            (Some(b), Some(e)) => format!("{b} of {e}"),
            (Some(b), None) => b.to_string(),
            _ => "-".into(),
        });
        cells.push(fmt_opt(r.wall_seconds, 1));
        m.push_str(&row(&cells));
    }
    m.push('\n');
    let figures: Vec<String> = g
        .runs
        .iter()
        .flat_map(|r| {
            r.figures.iter().map(move |(f, _)| match link_root {
                None => format!("[{}/{f}]({}/{f})", r.label, r.label),
                Some(root) => format!("[{}/{f}]({root}/{}/{f})", r.label, r.label),
            })
        })
        .collect();
    if !figures.is_empty() {
        let _ = writeln!(m, "Figures: {}\n", figures.join(", "));
    }
    if !g.gate_usage.is_empty() {
        m.push_str("Gate diagnostics, expert use over the runs:\n\n");
        m.push_str(&header(
            &[
                "gate",
                "level",
                "experts it can use",
                "effective experts",
                "share",
                "n",
            ]
            .map(String::from),
            &[false, false, true, true, true, true],
        ));
        for u in &g.gate_usage {
            let collapse = if collapsed(u.effective.mean, u.reachable.1) {
                " (collapse)"
            } else {
                ""
            };
            m.push_str(&row(&[
                u.gate.clone(),
                if u.levels > 1 {
                    format!("{} of {}", u.level, u.levels)
                } else {
                    "-".into()
                },
                fmt_range(u.reachable),
                format!("{}{collapse}", fmt_summary(Some(&u.effective), 2)),
                fmt_summary(Some(&u.share), 3),
                u.share.n.to_string(),
            ]));
        }
        m.push('\n');
    }
    for r in &g.runs {
        if let Some(note) = &r.gate_note {
            let _ = writeln!(m, "> {}: no gate diagnostics: {note}\n", r.label);
        }
        for level in &r.gates {
            let label = level_label(level);
            let _ = writeln!(
                m,
                "Mean gate weights, {}{} (test split, {} rows; `-`: not reachable):\n",
                r.label,
                if label.is_empty() {
                    String::new()
                } else {
                    format!(", {label}")
                },
                level.rows
            );
            let mut cells = vec!["gate".to_string()];
            cells.extend(level.experts.iter().cloned());
            cells.push("effective experts (share)".into());
            let mut right = vec![true; cells.len()];
            right[0] = false;
            m.push_str(&header(&cells, &right));
            for (i, gate) in level.gates.iter().enumerate() {
                let mut cells = vec![gate.clone()];
                cells.extend(level.mean[i].iter().map(|v| fmt_opt(*v, 3)));
                let mut note = usage_note(level.effective[i], level.reachable[i], level.share[i]);
                if collapsed(level.effective[i], level.reachable[i]) {
                    note.push_str(" collapse");
                }
                cells.push(note);
                m.push_str(&row(&cells));
            }
            m.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_runs_are_listed() {
        let page = ReportPage {
            title: "t".into(),
            dir: "runs/g".into(),
            n_runs: 0,
            comparisons: Vec::new(),
            groups: Vec::new(),
            notes: Vec::new(),
            failed_runs: vec![crate::page::FailedRun {
                id: "mmoe-s2".into(),
                error: "no such file | x".into(),
                results: "results.jsonl".into(),
            }],
            link_root: None,
        };
        let md = render_markdown(&page);
        assert!(md.contains("## Failed runs (1)"), "{md}");
        assert!(
            md.contains("| mmoe-s2 | no such file \\| x | results.jsonl |"),
            "{md}"
        );
    }

    #[test]
    fn cells_escape_pipes_and_headers_align_numbers_right() {
        assert_eq!(row(&["a|b".into(), "c\nd".into()]), "| a\\|b | c d |\n");
        assert_eq!(
            header(&["x".into(), "y".into()], &[false, true]),
            "| x | y |\n| --- | ---: |\n"
        );
    }
}
