//! A searched AutoMTL architecture ([`Genotype`]) for people: a text summary, a Graphviz
//! diagram, and that diagram as SVG.
//!
//! The SVG is laid out and drawn by `layout-rs` (pure Rust, no dependencies, reads DOT) from
//! the very text [`genotype_dot`] returns, so the `.dot` and the `.svg` never disagree and no
//! Graphviz install is needed. layout-rs ignores `rank=same`; its longest-path ranking puts
//! each layer in one column anyway, because every edge goes from one layer to the next.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use mtrec_arch::automtl::{ExpertGene, FeatureGene, Genotype};

/// Lines of [`genotype_text`] stay within this many columns (field names longer than a line
/// excepted).
const WIDTH: usize = 100;
/// Field lists of at most this many names are spelled out; longer ones that cover most of the
/// fields the architecture reads are written as "all but ...".
const SPELL_OUT: usize = 6;
/// The diagram's inputs node lists the fields up to this many, else gives their count.
const DOT_FIELDS: usize = 6;

/// A readable multi-line description: the fields the first layer reads, every expert of every
/// layer (block chain, input, whether anything uses it) and every task tower.
pub fn genotype_text(g: &Genotype) -> String {
    let mut out = String::new();
    let sizes: Vec<String> = g
        .layers
        .iter()
        .map(|l| l.experts.len().to_string())
        .collect();
    let _ = writeln!(
        out,
        "AutoMTL architecture: {} expert layer{} ({} expert{}), {} task{}",
        g.layers.len(),
        plural(g.layers.len()),
        if sizes.is_empty() {
            "no".to_string()
        } else {
            sizes.join(" + ")
        },
        plural(g.layers.iter().map(|l| l.experts.len()).sum()),
        g.towers.len(),
        plural(g.towers.len()),
    );
    let _ = writeln!(
        out,
        "block width {}, tower hidden widths {}, dropout {}",
        g.block_width,
        widths(&g.tower),
        g.dropout
    );
    let universe = fields_read(g);
    push_wrapped(
        &mut out,
        &format!(
            "sparse fields read by the first layer ({}): ",
            universe.len()
        ),
        &universe,
        2,
    );
    if !g.layers.is_empty() {
        out.push_str("every first-layer expert also reads all dense features\n");
    }

    let used = used_experts(g);
    for (l, layer) in g.layers.iter().enumerate() {
        let _ = writeln!(
            out,
            "\nlayer {l}: {} expert{}",
            layer.experts.len(),
            plural(layer.experts.len())
        );
        let label_width = format!("E{}", layer.experts.len().saturating_sub(1)).len();
        let indent = 2 + label_width + 2;
        for (e, expert) in layer.experts.iter().enumerate() {
            let mark = if used[l][e] { "" } else { "  [unused]" };
            let _ = writeln!(
                out,
                "  {:<label_width$}  {}{mark}",
                format!("E{e}"),
                block_chain(expert)
            );
            push_expert_input(&mut out, g, l, expert, &universe, indent);
        }
        let mut unused: Vec<String> = (0..layer.experts.len())
            .filter(|&e| !used[l][e])
            .map(|e| format!("E{e}"))
            .collect();
        if !unused.is_empty() {
            let consumer = if l + 1 < g.layers.len() {
                format!("no expert of layer {} reads", l + 1)
            } else {
                "no tower reads".to_string()
            };
            let them = if unused.len() == 1 { "it" } else { "them" };
            if let Some(last) = unused.last_mut() {
                let _ = write!(last, " ({consumer} {them})");
            }
            push_wrapped(&mut out, "  unused: ", &unused, 10);
        }
    }

    let _ = writeln!(out, "\ntowers (hidden widths {})", widths(&g.tower));
    let name_width = g
        .towers
        .iter()
        .map(|t| t.task.chars().count())
        .max()
        .unwrap_or(0);
    let last = g.layers.len().checked_sub(1);
    for tower in &g.towers {
        let source = match last {
            Some(l) => experts_phrase(&tower.inputs, l, g.layers[l].experts.len()),
            None => "nothing (the architecture has no expert layer)".to_string(),
        };
        let _ = writeln!(out, "  {:<name_width$}  <- {source}", tower.task);
    }
    out
}

/// Graphviz DOT of the architecture, left to right: the input fields, one column of experts
/// per layer (`rank=same`), one node per task tower. Unused experts are grey.
pub fn genotype_dot(g: &Genotype) -> String {
    let used = used_experts(g);
    let universe = fields_read(g);
    let mut out = String::new();
    out.push_str("digraph automtl {\n");
    out.push_str("  rankdir=LR;\n");
    out.push_str("  node [shape=box, fontsize=12];\n");
    out.push_str("  edge [fontsize=10];\n");
    let inputs_label = if universe.is_empty() {
        "inputs\ndense features".to_string()
    } else if universe.len() <= DOT_FIELDS {
        format!("inputs\ndense features\n{}", universe.join("\n"))
    } else {
        format!("inputs\ndense features\n{} sparse fields", universe.len())
    };
    let _ = writeln!(
        out,
        "  in [label={}, style=filled, fillcolor=lightyellow];",
        quote(&inputs_label)
    );

    for (l, layer) in g.layers.iter().enumerate() {
        let _ = writeln!(out, "  subgraph layer{l} {{");
        out.push_str("    rank=same;\n");
        for (e, expert) in layer.experts.iter().enumerate() {
            let mut label = format!("L{l} E{e}");
            if expert.blocks.is_empty() {
                label.push_str("\n(no block)");
            }
            for op in &expert.blocks {
                let _ = write!(label, "\n{op}");
            }
            let fill = if used[l][e] {
                "lightblue"
            } else {
                label.push_str("\n(unused)");
                "lightgray"
            };
            let _ = writeln!(
                out,
                "    l{l}e{e} [label={}, style=filled, fillcolor={fill}];",
                quote(&label)
            );
        }
        out.push_str("  }\n");
    }

    out.push_str("  subgraph towers {\n");
    out.push_str("    rank=same;\n");
    for (t, tower) in g.towers.iter().enumerate() {
        // Not `widths()`: its arrows would read as DOT edges to anyone counting them.
        let label = format!("{}\ntower [{}]", tower.task, join(&g.tower));
        let _ = writeln!(
            out,
            "    t{t} [label={}, style=filled, fillcolor=honeydew];",
            quote(&label)
        );
    }
    out.push_str("  }\n");

    for (l, layer) in g.layers.iter().enumerate() {
        for (e, expert) in layer.experts.iter().enumerate() {
            if let Some(f) = &expert.features {
                let mut parts = Vec::new();
                if !f.single.is_empty() {
                    parts.push(format!("{} single", f.single.len()));
                }
                if !f.interaction.is_empty() {
                    parts.push(format!("{} interaction", f.interaction.len()));
                }
                // Every first-layer expert reads the dense features: always an edge.
                if parts.is_empty() {
                    parts.push("dense only".to_string());
                }
                let _ = writeln!(
                    out,
                    "  in -> l{l}e{e} [label={}];",
                    quote(&parts.join("\n"))
                );
            }
            if l > 0
                && let Some(inputs) = &expert.inputs
            {
                for &i in inputs
                    .iter()
                    .filter(|&&i| i < g.layers[l - 1].experts.len())
                {
                    let _ = writeln!(out, "  l{}e{i} -> l{l}e{e};", l - 1);
                }
            }
        }
    }
    if let Some(l) = g.layers.len().checked_sub(1) {
        let n = g.layers[l].experts.len();
        for (t, tower) in g.towers.iter().enumerate() {
            for &i in tower.inputs.iter().filter(|&&i| i < n) {
                let _ = writeln!(out, "  l{l}e{i} -> t{t};");
            }
        }
    }
    out.push_str("}\n");
    out
}

/// Draws [`genotype_dot`] into an SVG file (written to a temporary sibling, then renamed).
pub fn write_genotype_svg(path: &Path, g: &Genotype) -> io::Result<()> {
    let svg = dot_to_svg(&genotype_dot(g))?;
    write_atomically(path, svg.as_bytes())
}

fn dot_to_svg(dot: &str) -> io::Result<String> {
    use layout::backends::svg::SVGWriter;
    use layout::gv::{DotParser, GraphBuilder};

    let ast = DotParser::new(dot)
        .process()
        .map_err(|e| io::Error::other(format!("cannot read the diagram's DOT text: {e}")))?;
    // layout-rs checks its invariants with asserts; a diagram that trips one must not take
    // the whole command down with it.
    std::panic::catch_unwind(|| {
        let mut builder = GraphBuilder::new();
        builder.visit_graph(&ast);
        let mut graph = builder.get();
        let mut svg = SVGWriter::new();
        graph.do_it(false, false, false, &mut svg);
        svg.finalize()
    })
    .map_err(|_| io::Error::other("the diagram layout failed (layout-rs)"))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path.file_name().map_or_else(
        || "diagram.svg".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let tmp: PathBuf = path.with_file_name(format!(".{name}.tmp"));
    let result = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// `used[l][e]`: some expert of layer `l + 1` (some tower, for the last layer) mixes expert
/// `e` of layer `l`.
fn used_experts(g: &Genotype) -> Vec<Vec<bool>> {
    let mut used: Vec<Vec<bool>> = g
        .layers
        .iter()
        .map(|l| vec![false; l.experts.len()])
        .collect();
    for l in 1..g.layers.len() {
        for expert in &g.layers[l].experts {
            for &i in expert.inputs.iter().flatten() {
                if let Some(u) = used[l - 1].get_mut(i) {
                    *u = true;
                }
            }
        }
    }
    if let Some(last) = used.last_mut() {
        for &i in g.towers.iter().flat_map(|t| &t.inputs) {
            if let Some(u) = last.get_mut(i) {
                *u = true;
            }
        }
    }
    used
}

/// Every field some first-layer expert reads, in order of first appearance.
fn fields_read(g: &Genotype) -> Vec<String> {
    let mut seen = HashSet::new();
    g.layers
        .first()
        .into_iter()
        .flat_map(|l| &l.experts)
        .filter_map(|e| e.features.as_ref())
        .flat_map(|f| f.single.iter().chain(&f.interaction))
        .filter(|name| seen.insert(name.as_str()))
        .cloned()
        .collect()
}

fn push_expert_input(
    out: &mut String,
    g: &Genotype,
    l: usize,
    expert: &ExpertGene,
    universe: &[String],
    indent: usize,
) {
    let pad = " ".repeat(indent);
    let mut any = false;
    if let Some(FeatureGene {
        single,
        interaction,
    }) = &expert.features
    {
        for (kind, names) in [("single", single), ("interaction", interaction)] {
            if !names.is_empty() {
                push_fields(out, &format!("{pad}{kind}"), names, universe, indent + 2);
            }
        }
        if single.is_empty() && interaction.is_empty() {
            let _ = writeln!(out, "{pad}input: dense features only (no sparse field)");
        }
        any = true;
    }
    if let Some(inputs) = expert.inputs.as_ref().filter(|i| !i.is_empty()) {
        let text = match l.checked_sub(1) {
            Some(below) => experts_phrase(inputs, below, g.layers[below].experts.len()),
            None => format!(
                "experts {} (but the first layer has no layer below)",
                join(inputs)
            ),
        };
        let _ = writeln!(out, "{pad}input: {text}");
        any = true;
    }
    if !any {
        let _ = writeln!(out, "{pad}input: none");
    }
}

/// `single (3): a, b, c`, `single: all 29 fields` or `single (27 of 29): all but d, e`.
fn push_fields(out: &mut String, head: &str, names: &[String], universe: &[String], indent: usize) {
    let m = universe.len();
    let n = names.len();
    let distinct: HashSet<&str> = names.iter().map(String::as_str).collect();
    if m > SPELL_OUT && n > m / 2 && distinct.len() == n {
        if n == m {
            let _ = writeln!(out, "{head}: all {m} fields");
        } else {
            let missing: Vec<String> = universe
                .iter()
                .filter(|u| !distinct.contains(u.as_str()))
                .cloned()
                .collect();
            push_wrapped(
                out,
                &format!("{head} ({n} of {m}): all but "),
                &missing,
                indent,
            );
        }
    } else {
        push_wrapped(out, &format!("{head} ({n}): "), names, indent);
    }
}

/// `expert 1 of layer 0`, `experts 0, 2 of layer 0`, `no expert`; indices the layer does not
/// have are named.
fn experts_phrase(indices: &[usize], layer: usize, n_experts: usize) -> String {
    let mut text = match indices.len() {
        0 => "no expert".to_string(),
        1 => format!("expert {} of layer {layer}", indices[0]),
        _ => format!("experts {} of layer {layer}", join(indices)),
    };
    let missing: Vec<usize> = indices
        .iter()
        .copied()
        .filter(|&i| i >= n_experts)
        .collect();
    if !missing.is_empty() {
        let _ = write!(
            text,
            " (layer {layer} has no expert {}: it has {n_experts})",
            join(&missing)
        );
    }
    text
}

fn block_chain(expert: &ExpertGene) -> String {
    if expert.blocks.is_empty() {
        return "(no block)".to_string();
    }
    expert
        .blocks
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" -> ")
}

/// `64 -> 32`, or `none` for a linear head.
fn widths(w: &[usize]) -> String {
    if w.is_empty() {
        "none".to_string()
    } else {
        join(w).replace(", ", " -> ")
    }
}

fn join(v: &[usize]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Writes `head` then the items separated by ", ", breaking lines before [`WIDTH`] columns;
/// continuation lines start with `indent` spaces.
fn push_wrapped(out: &mut String, head: &str, items: &[String], indent: usize) {
    let mut line = head.to_string();
    let mut empty = true;
    for (k, item) in items.iter().enumerate() {
        let sep = if k + 1 < items.len() { "," } else { "" };
        let piece = format!("{item}{sep}");
        let extra = if empty { piece.len() } else { piece.len() + 1 };
        if !empty && line.chars().count() + extra > WIDTH {
            out.push_str(line.trim_end());
            out.push('\n');
            line = " ".repeat(indent);
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(&piece);
        empty = false;
    }
    if items.is_empty() {
        line.push_str("none");
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

/// A DOT string literal.
fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

#[cfg(test)]
mod tests {
    use mtrec_arch::automtl::{LayerGene, OpKind, TowerGene};

    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn first(single: &[&str], interaction: &[&str], blocks: Vec<OpKind>) -> ExpertGene {
        ExpertGene {
            features: Some(FeatureGene {
                single: names(single),
                interaction: names(interaction),
            }),
            inputs: None,
            blocks,
        }
    }

    fn above(inputs: Vec<usize>, blocks: Vec<OpKind>) -> ExpertGene {
        ExpertGene {
            features: None,
            inputs: Some(inputs),
            blocks,
        }
    }

    /// Layer 0: E0 reads 2 + 1 sparse fields, E1 one, E2 dense features only and feeds
    /// nothing (unused). Layer 1: E0 <- {0, 1}, E1 <- {1}. Towers: click <- {0, 1},
    /// like <- {1}. Edges: 3 (inputs) + 3 (layer 0 -> 1) + 3 (towers) = 9.
    fn small() -> Genotype {
        Genotype {
            block_width: 16,
            tower: vec![32, 8],
            dropout: 0.1,
            layers: vec![
                LayerGene {
                    experts: vec![
                        first(
                            &["age", "city"],
                            &["device"],
                            vec![OpKind::Mlp(256), OpKind::Identity, OpKind::Mlp(64)],
                        ),
                        first(&["city"], &[], vec![OpKind::Mlp(32)]),
                        first(&[], &[], vec![OpKind::Mlp(1024)]),
                    ],
                },
                LayerGene {
                    experts: vec![
                        above(vec![0, 1], vec![OpKind::Mlp(128)]),
                        above(vec![1], vec![OpKind::Identity, OpKind::Mlp(16)]),
                    ],
                },
            ],
            towers: vec![
                TowerGene {
                    task: "click".into(),
                    inputs: vec![0, 1],
                },
                TowerGene {
                    task: "like".into(),
                    inputs: vec![1],
                },
            ],
        }
    }

    #[test]
    fn text_names_every_op_chain_and_task() {
        let text = genotype_text(&small());
        for needle in [
            "mlp-256 -> identity -> mlp-64",
            "mlp-32",
            "mlp-1024",
            "mlp-128",
            "identity -> mlp-16",
            "click",
            "like",
            "single (2): age, city",
            "interaction (1): device",
            "experts 0, 1 of layer 0",
            "expert 1 of layer 0",
            "experts 0, 1 of layer 1",
            "32 -> 8",
            "dense features only",
        ] {
            assert!(text.contains(needle), "text lacks {needle:?}:\n{text}");
        }
        assert!(text.lines().all(|l| l.chars().count() <= WIDTH), "{text}");
    }

    #[test]
    fn text_reports_the_unused_expert() {
        let text = genotype_text(&small());
        let e2 = text.lines().find(|l| l.contains("mlp-1024")).unwrap();
        assert!(e2.contains("[unused]"), "{e2}");
        assert!(
            text.contains("unused: E2 (no expert of layer 1 reads it)"),
            "{text}"
        );
        // Everything else is used: exactly one summary line.
        assert_eq!(text.matches("unused: ").count(), 1, "{text}");
    }

    #[test]
    fn long_field_lists_are_wrapped_or_summarised() {
        let many: Vec<String> = (0..30).map(|i| format!("field_number_{i:02}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let mut g = small();
        g.layers[0].experts[0] = first(&refs, &refs[..3], vec![OpKind::Identity]);
        g.layers[0].experts[1] = first(&refs[..28], &[], vec![OpKind::Identity]);
        let text = genotype_text(&g);
        assert!(text.lines().all(|l| l.chars().count() <= WIDTH), "{text}");
        assert!(text.contains("single: all 30 fields"), "{text}");
        assert!(
            text.contains("single (28 of 30): all but field_number_28, field_number_29"),
            "{text}"
        );
        assert!(text.contains("interaction (3): field_number_00"), "{text}");
        // The header spells every field out, over several lines.
        assert!(text.contains("field_number_29"), "{text}");
    }

    #[test]
    fn dot_has_one_edge_per_connection() {
        let dot = genotype_dot(&small());
        assert_eq!(dot.matches("->").count(), 9, "{dot}");
        assert!(dot.contains("in -> l0e2 [label=\"dense only\"]"), "{dot}");
        assert!(
            dot.contains("in -> l0e0 [label=\"2 single\\n1 interaction\"]"),
            "{dot}"
        );
        assert!(dot.contains("l0e1 -> l1e1;"), "{dot}");
        assert!(dot.contains("l1e1 -> t1;"), "{dot}");
        assert_eq!(dot.matches("rank=same").count(), 3, "{dot}");
        assert!(dot.contains("L0 E2\\nmlp-1024\\n(unused)"), "{dot}");
    }

    #[test]
    fn svg_is_written_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("arch.svg");
        write_genotype_svg(&path, &small()).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg") || svg.starts_with("<?xml"), "{svg}");
        assert!(svg.contains("mlp-256") && svg.contains("click"), "{svg}");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temporary file left behind");
    }

    #[test]
    fn odd_names_are_quoted_in_dot_and_svg() {
        let mut g = small();
        g.towers[0].task = "say \"hi\" \\ <b>".into();
        let dot = genotype_dot(&g);
        assert!(dot.contains(r#"say \"hi\" \\ <b>"#), "{dot}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("odd.svg");
        write_genotype_svg(&path, &g).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.contains("&lt;b&gt;"), "{svg}");
    }
}
