//! The report as one self-contained HTML page: styles inline, figures as inline SVG or
//! `data:` URIs, no script and nothing fetched from a network, so the file can be mailed,
//! archived or opened offline and shows the same thing.

use std::fmt::Write;

use crate::heatmap::{Heatmap, heatmap_svg, xml_escape as esc};
use crate::page::{Comparison, GateLevel, GroupSection, ReportPage, RunSection, collapsed};
use crate::stats::{Summary, format_p};

const STYLE: &str = r#"
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; } h3 { margin-top: 1.5em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; vertical-align: top; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
td.best { font-weight: bold; } td.warn { background: #fff1d6; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.4em 0.8em; }
.muted { color: #666; font-size: 0.9em; }
figure { margin: 1em 0; overflow-x: auto; } figure svg, figure img { max-width: 100%; height: auto; }
.panels { display: flex; flex-wrap: wrap; gap: 0.5em; } .panels figure { margin: 0; flex: 0 1 520px; }
details { margin: 0.6em 0; } summary { cursor: pointer; }
dl dt { font-weight: bold; margin-top: 0.5em; } dl dd { margin-left: 1.5em; }
"#;

/// The page may show inline styles and `data:` images and nothing else: no script runs and
/// nothing is fetched, whoever edits the page later.
pub const CSP: &str = "default-src 'none'; img-src data:; style-src 'unsafe-inline'";

/// The learning curves `mtrec train` draws beside each checkpoint.
const RUN_CURVES: &str = "curves.svg";

/// RFC 4648 base64 (with padding), for `data:` URIs.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// An SVG file as an `<img>` with a `data:` URI: the browser loads it as an image, so its
/// own styles and ids cannot touch the page's.
fn svg_img(svg: &str, alt: &str) -> String {
    format!(
        r#"<img alt="{}" src="data:image/svg+xml;base64,{}">"#,
        esc(alt),
        base64(svg.as_bytes())
    )
}

/// Text and markdown forms of figures, shared with [`crate::markdown`].
pub(crate) fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        _ => "-".to_string(),
    }
}

pub(crate) fn fmt_summary(s: Option<&Summary>, digits: usize) -> String {
    s.map_or("-".to_string(), |s| s.show_without_n(digits))
}

pub(crate) fn fmt_p(p: Option<f64>) -> String {
    p.map_or("-".to_string(), format_p)
}

/// `level 2 of 2` for stacked models, nothing for one-level ones.
pub(crate) fn level_label(level: &GateLevel) -> String {
    if level.levels > 1 {
        format!("level {} of {}", level.level, level.levels)
    } else {
        String::new()
    }
}

/// `3` or, where runs differ, `2–4`.
pub(crate) fn fmt_range((lo, hi): (usize, usize)) -> String {
    if lo == hi {
        lo.to_string()
    } else {
        format!("{lo}–{hi}")
    }
}

/// `1.93 of 2 (97 %)`.
pub(crate) fn usage_note(effective: f64, reachable: usize, share: f64) -> String {
    format!("{effective:.2} of {reachable} ({:.0} %)", share * 100.0)
}

/// The explanation of every figure on the page, shared by both formats.
pub(crate) const DEFINITIONS: &[(&str, &str)] = &[
    (
        "mean ± std [95 % CI]",
        "Over the runs of one config name and settings (its seeds; runs of one name with \
         other settings are rows of their own, labelled with the keys that differ): the mean \
         test figure, the sample standard deviation (divisor n - 1) and the 95 % confidence \
         interval of the mean from the t-distribution with n - 1 degrees of freedom. One run \
         shows its figure alone.",
    ),
    (
        "Δm",
        "Average relative change against the Single-Task group on the same data, in percent: \
         mean over tasks of ±(M - S) / S · 100, the sign flipped where lower is better (MSE). \
         Positive: better than training each task alone.",
    ),
    (
        "paired tests",
        "Per task, the config with the best mean against each other config, on the seeds both \
         ran: mean difference, paired t-test and Wilcoxon signed-rank p-values (two-sided). \
         With few seeds Wilcoxon cannot reach small p-values (4 pairs: at least 0.125).",
    ),
    (
        "mean gate weight",
        "For MoE-family models (OMoE, MMoE, CGC, PLE, AdaTT, AutoMTL): the gate's softmax \
         probability of each expert, averaged over every row of the test split. Grey cells: \
         experts the gate cannot use (another task's experts in CGC/PLE, unconnected experts \
         in AutoMTL). AdaTT's native term is not a gate and is not shown; AutoMTL's weights \
         are masked by its connections and not renormalised, as in its forward pass.",
    ),
    (
        "effective experts, share",
        "Effective experts = exp(H) of the mean gate distribution p over the K experts the gate \
         can use, H = -Σ p_j ln p_j (renormalised over those K): K when all are used equally, \
         1 when one expert takes all the weight. Share = effective experts / K, from 1/K \
         (collapse) to 100 %. Averaging over rows before the entropy counts the experts a task \
         relies on across the data. Fewer than 1.5 effective experts (of 2 or more) is marked as collapse. \
         Experts are interchangeable between seeds, so heat maps are per run; the share pools \
         over seeds.",
    ),
];

/// The whole page.
pub fn render_html(page: &ReportPage) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        esc(&page.title)
    );
    let _ = write!(
        h,
        "<h1>{}</h1>\n<p class=\"muted\">{} run(s) under <code>{}</code>; written by mtrec {}.</p>\n",
        esc(&page.title),
        page.n_runs,
        esc(&page.dir),
        env!("CARGO_PKG_VERSION")
    );
    for note in &page.notes {
        let _ = writeln!(h, "<p class=\"note\">{}</p>", esc(note));
    }
    failed_runs_html(&mut h, page);
    h.push_str("<h2 id=\"contents\">Contents</h2>\n<ul>\n");
    for (i, c) in page.comparisons.iter().enumerate() {
        let _ = writeln!(
            h,
            "<li><a href=\"#cmp-{i}\">Comparison {}: {}</a></li>",
            i + 1,
            esc(&c.data)
        );
    }
    for g in &page.groups {
        let _ = writeln!(
            h,
            "<li><a href=\"#{}\">{} ({}, {} run(s))</a></li>",
            g.anchor,
            esc(&g.name),
            esc(&g.model),
            g.runs.len()
        );
    }
    h.push_str("<li><a href=\"#definitions\">How to read this page</a></li>\n</ul>\n");
    for (i, c) in page.comparisons.iter().enumerate() {
        comparison_html(&mut h, i, c);
    }
    for g in &page.groups {
        group_html(&mut h, g);
    }
    h.push_str("<h2 id=\"definitions\">How to read this page</h2>\n<dl>\n");
    for (term, text) in DEFINITIONS {
        let _ = writeln!(h, "<dt>{}</dt><dd>{}</dd>", esc(term), esc(text));
    }
    h.push_str("</dl>\n</body>\n</html>\n");
    h
}

/// The runs a grid recorded as failed: they have no figures, so the tables alone would hide
/// them.
fn failed_runs_html(h: &mut String, page: &ReportPage) {
    if page.failed_runs.is_empty() {
        return;
    }
    let _ = writeln!(
        h,
        "<h2 id=\"failed\">Failed runs ({})</h2>\n<p class=\"muted\">Recorded as failed by <code>mtrec run</code>: no figures of theirs appear below. Its log is <code>&lt;id&gt;.log</code> beside the run folder; running the grid again retries them.</p>\n<table>\n<tr><th class=\"l\">run</th><th class=\"l\">error</th><th class=\"l\">recorded in</th></tr>",
        page.failed_runs.len()
    );
    for f in &page.failed_runs {
        let _ = writeln!(
            h,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
            esc(&f.id),
            esc(&f.error),
            esc(&f.results)
        );
    }
    h.push_str("</table>\n");
}

fn comparison_html(h: &mut String, i: usize, c: &Comparison) {
    let _ = writeln!(
        h,
        "<h2 id=\"cmp-{i}\">Comparison {}: test figures</h2>\n<p class=\"muted\">Data: <code>{}</code>. {}</p>",
        i + 1,
        esc(&c.data),
        match &c.baseline {
            Some(b) => format!("Δm against Single-Task config <b>{}</b>.", esc(b)),
            None => "No Single-Task run on this data: no Δm.".to_string(),
        }
    );
    h.push_str("<table>\n<tr><th class=\"l\">config</th><th class=\"l\">model</th><th>n</th>");
    for (task, metric) in &c.tasks {
        let _ = write!(h, "<th>{} {}</th>", esc(task), metric);
    }
    h.push_str("<th>Δm %</th><th>wall s</th></tr>\n");
    // The best mean per task, in bold.
    let best: Vec<Option<f64>> = c
        .tasks
        .iter()
        .enumerate()
        .map(|(t, (_, metric))| {
            c.rows
                .iter()
                .filter_map(|r| r.tasks[t].as_ref().map(|s| s.mean))
                .reduce(|a, b| if metric.better(b, a) { b } else { a })
        })
        .collect();
    for row in &c.rows {
        let _ = write!(
            h,
            "<tr><td class=\"l\"><a href=\"#{}\">{}</a></td><td class=\"l\">{}</td><td>{}</td>",
            row.anchor,
            esc(&row.name),
            esc(&row.model),
            row.runs
        );
        for (t, s) in row.tasks.iter().enumerate() {
            let class = match (s, best[t]) {
                (Some(s), Some(b)) if s.mean == b && c.rows.len() > 1 => " class=\"best\"",
                _ => "",
            };
            let _ = write!(h, "<td{class}>{}</td>", esc(&fmt_summary(s.as_ref(), 4)));
        }
        let _ = writeln!(
            h,
            "<td>{}</td><td>{}</td></tr>",
            fmt_opt(row.delta_m, 3),
            esc(&row
                .wall_seconds
                .as_ref()
                .map_or("-".into(), |s| format!("{:.1}", s.mean)))
        );
    }
    h.push_str("</table>\n");
    if !c.paired.is_empty() {
        h.push_str(
            "<h3>Paired tests on shared seeds</h3>\n<table>\n<tr><th class=\"l\">task</th>\
             <th class=\"l\">best</th><th class=\"l\">vs</th><th>pairs</th><th>mean diff</th>\
             <th>paired t p</th><th>Wilcoxon p</th></tr>\n",
        );
        for p in &c.paired {
            let _ = writeln!(
                h,
                "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{:+.4}</td><td>{}</td><td>{}</td></tr>",
                esc(&p.task),
                esc(&p.best),
                esc(&p.other),
                p.pairs,
                p.mean_diff,
                esc(&fmt_p(p.t_p)),
                esc(&fmt_p(p.wilcoxon_p))
            );
        }
        h.push_str("</table>\n");
    }
}

fn group_html(h: &mut String, g: &GroupSection) {
    let _ = writeln!(
        h,
        "<h2 id=\"{}\">{} <span class=\"muted\">({}, {} run(s))</span></h2>",
        g.anchor,
        esc(&g.name),
        esc(&g.model),
        g.runs.len()
    );
    if !g.curves.is_empty() {
        h.push_str("<h3>Training curves</h3>\n<div class=\"panels\">\n");
        for svg in &g.curves {
            let _ = writeln!(
                h,
                "<figure>{}</figure>",
                svg_img(svg, &format!("training curves of {}", g.name))
            );
        }
        h.push_str("</div>\n");
    }
    runs_table_html(h, &g.runs);
    if !g.gate_usage.is_empty() {
        h.push_str(
            "<h3>Gate diagnostics: expert use over the runs</h3>\n<table>\n<tr><th class=\"l\">gate</th>\
             <th class=\"l\">level</th><th>experts it can use</th><th>effective experts</th>\
             <th>share</th><th>n</th></tr>\n",
        );
        for u in &g.gate_usage {
            let class = if collapsed(u.effective.mean, u.reachable.1) {
                " class=\"warn\""
            } else {
                ""
            };
            let level = if u.levels > 1 {
                format!("{} of {}", u.level, u.levels)
            } else {
                "-".into()
            };
            let _ = writeln!(
                h,
                "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td{class}>{}{}</td><td>{}</td><td>{}</td></tr>",
                esc(&u.gate),
                level,
                fmt_range(u.reachable),
                esc(&fmt_summary(Some(&u.effective), 2)),
                if class.is_empty() { "" } else { " (collapse)" },
                esc(&fmt_summary(Some(&u.share), 3)),
                u.share.n
            );
        }
        h.push_str("</table>\n");
    }
    for run in &g.runs {
        if let Some(note) = &run.gate_note {
            let _ = writeln!(
                h,
                "<p class=\"note\">{}: no gate diagnostics: {}</p>",
                esc(&run.label),
                esc(note)
            );
        }
        if !run.gates.is_empty() {
            let _ = writeln!(
                h,
                "<h3>Mean gate weights: {} <span class=\"muted\">(test split, {} rows)</span></h3>",
                esc(&run.label),
                run.gates[0].rows
            );
            for level in &run.gates {
                let _ = writeln!(
                    h,
                    "<figure class=\"gates\">{}</figure>",
                    heatmap_svg(&gate_heatmap(&run.label, level))
                );
            }
        }
        // The group's curves already show each run's curves.svg: not embedded twice.
        let figures: Vec<&(String, String)> = run
            .figures
            .iter()
            .filter(|(file, _)| g.curves.is_empty() || file != RUN_CURVES)
            .collect();
        if !figures.is_empty() {
            let _ = writeln!(
                h,
                "<details><summary>Figures written by {} ({})</summary>",
                esc(&run.label),
                figures
                    .iter()
                    .map(|(f, _)| esc(f))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            for (file, svg) in figures {
                let _ = writeln!(
                    h,
                    "<figure>{}<figcaption class=\"muted\">{}</figcaption></figure>",
                    svg_img(svg, &format!("{} of {}", file, run.label)),
                    esc(file)
                );
            }
            h.push_str("</details>\n");
        }
    }
}

/// One level's mean gate weights as a heat map with each gate's expert use beside it.
pub fn gate_heatmap(run: &str, level: &GateLevel) -> Heatmap {
    let label = level_label(level);
    Heatmap {
        title: if label.is_empty() {
            format!("{run}: mean gate weight per expert")
        } else {
            format!("{run}, {label}: mean gate weight per expert")
        },
        rows: level.gates.clone(),
        cols: level.experts.clone(),
        values: level.mean.clone(),
        notes: (0..level.gates.len())
            .map(|g| {
                let note = usage_note(level.effective[g], level.reachable[g], level.share[g]);
                if collapsed(level.effective[g], level.reachable[g]) {
                    format!("{note} collapse")
                } else {
                    note
                }
            })
            .collect(),
        notes_title: "effective experts (share)".into(),
    }
}

fn runs_table_html(h: &mut String, runs: &[RunSection]) {
    let mut tasks: Vec<&String> = runs.iter().flat_map(|r| r.tasks.keys()).collect();
    tasks.sort();
    tasks.dedup();
    h.push_str("<h3>Runs</h3>\n<table>\n<tr><th class=\"l\">run</th><th>seed</th>");
    for t in &tasks {
        let metric = runs
            .iter()
            .find_map(|r| r.tasks.get(*t))
            .map_or("", |f| f.metric.name());
        let _ = write!(h, "<th>{} {metric}</th><th>{} logloss</th>", esc(t), esc(t));
    }
    h.push_str("<th>test loss</th><th>best epoch</th><th>wall s</th></tr>\n");
    for r in runs {
        let _ = write!(
            h,
            "<tr><td class=\"l\">{}</td><td>{}</td>",
            esc(&r.label),
            r.seed.map_or("-".into(), |s| s.to_string())
        );
        for t in &tasks {
            let f = r.tasks.get(*t);
            let _ = write!(
                h,
                "<td>{}</td><td>{}</td>",
                fmt_opt(f.map(|f| f.value), 4),
                fmt_opt(f.and_then(|f| f.logloss), 4)
            );
        }
        let _ = writeln!(
            h,
            "<td>{}</td><td>{}</td><td>{}</td></tr>",
            fmt_opt(r.test_loss, 4),
            match (r.best_epoch, r.epochs_run) {
                (Some(b), Some(e)) => format!("{b} of {e}"),
                (Some(b), None) => b.to_string(),
                _ => "-".into(),
            },
            fmt_opt(r.wall_seconds, 1)
        );
    }
    h.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_test_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain}");
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn a_page_is_self_contained_and_escapes_names() {
        let page = ReportPage {
            title: "runs <of> today".into(),
            dir: "/tmp/x".into(),
            n_runs: 0,
            comparisons: Vec::new(),
            groups: Vec::new(),
            notes: vec!["a & b".into()],
            failed_runs: vec![crate::page::FailedRun {
                id: "mmoe-s<2>".into(),
                error: "out of memory".into(),
                results: "results.jsonl".into(),
            }],
            link_root: None,
        };
        let html = render_html(&page);
        assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
        assert!(html.contains("runs &lt;of&gt; today") && html.contains("a &amp; b"));
        assert!(html.contains("Failed runs (1)") && html.contains("mmoe-s&lt;2&gt;"));
        assert!(html.contains("<td class=\"l\">out of memory</td>"));
        assert!(html.contains(&format!("content=\"{CSP}\"")));
        for remote in ["http://", "https://", "<script", "<link"] {
            // The SVG namespace is a name, not a fetch; nothing else may point outside.
            let hits = html.matches(remote).count();
            let namespace = html.matches("http://www.w3.org/2000/svg").count();
            assert_eq!(
                hits - if remote == "http://" { namespace } else { 0 },
                0,
                "{remote}"
            );
        }
    }

    #[test]
    fn gate_heatmaps_flag_collapse() {
        let level = GateLevel {
            level: 2,
            levels: 2,
            gates: vec!["income".into(), "marital".into()],
            experts: vec!["e1".into(), "e2".into()],
            mean: vec![vec![Some(0.98), Some(0.02)], vec![Some(0.5), Some(0.5)]],
            effective: vec![1.1, 2.0],
            reachable: vec![2, 2],
            share: vec![0.55, 1.0],
            rows: 10,
        };
        let map = gate_heatmap("mmoe-s1", &level);
        assert_eq!(
            map.title,
            "mmoe-s1, level 2 of 2: mean gate weight per expert"
        );
        assert_eq!(
            map.notes,
            vec!["1.10 of 2 (55 %) collapse", "2.00 of 2 (100 %)"]
        );
    }
}
