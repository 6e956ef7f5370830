//! `mtrec arch show`: a searched architecture (arch.json) as text, an SVG diagram and,
//! on request, Graphviz DOT. `mtrec arch score`: what found architectures say about the data
//! and how much searches agree.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use comfy_table::Table;
use mtrec_arch::automtl::Genotype;
use mtrec_arch::automtl::analysis::{PlantedTruth, agreement, group_sharing, recovery};
use mtrec_report::{genotype_dot, genotype_text, write_genotype_svg};

use crate::atomic::write_atomically;
use crate::cli::{ArchScoreArgs, ArchShowArgs};

fn read_genotype(file: &Path) -> Result<Genotype> {
    let json =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let genotype = Genotype::from_json(&json)
        .map_err(|e| anyhow!("{}: not an architecture file: {e}", file.display()))?;
    genotype
        .validate_structure()
        .map_err(|e| anyhow!("{}: {e}", file.display()))?;
    Ok(genotype)
}

pub fn show(args: ArchShowArgs) -> Result<()> {
    let file = &args.file;
    let genotype = read_genotype(file)?;
    let text = genotype_text(&genotype);

    let svg = args.svg.clone().unwrap_or_else(|| default_svg(file));
    write_genotype_svg(&svg, &genotype).with_context(|| format!("writing {}", svg.display()))?;
    if let Some(dot) = &args.dot {
        write_atomically(dot, genotype_dot(&genotype))?;
    }

    if args.output.json {
        let out = serde_json::json!({
            "text": text,
            "svg": svg.display().to_string(),
            "dot": args.dot.as_ref().map(|d| d.display().to_string()),
        });
        println!("{}", serde_json::to_string(&out)?);
    } else {
        print!("{text}");
        eprintln!("wrote the diagram to {}", svg.display());
        if let Some(dot) = &args.dot {
            eprintln!("wrote its DOT text to {}", dot.display());
        }
    }
    Ok(())
}

/// `runs/x/arch.json` -> `runs/x/arch.svg`; never the input file itself.
fn default_svg(file: &Path) -> PathBuf {
    let svg = file.with_extension("svg");
    if svg == file {
        PathBuf::from(format!("{}.svg", file.display()))
    } else {
        svg
    }
}

pub fn score(args: ArchScoreArgs) -> Result<()> {
    let archs = args
        .files
        .iter()
        .map(|f| read_genotype(f))
        .collect::<Result<Vec<_>>>()?;
    let truth: Option<PlantedTruth> = match &args.truth {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Some(
                serde_json::from_str(&text)
                    .map_err(|e| anyhow!("{}: not a ground-truth file: {e}", path.display()))?,
            )
        }
        None => None,
    };
    let mut per_file = Vec::new();
    for (file, g) in args.files.iter().zip(&archs) {
        let mut entry = serde_json::json!({ "file": file.display().to_string() });
        if let Some(t) = &truth {
            let rec = recovery(g, t).map_err(|e| anyhow!("{}: {e}", file.display()))?;
            entry["recovery"] = serde_json::to_value(&rec)?;
            entry["sharing"] = serde_json::to_value(group_sharing(g, t))?;
        }
        per_file.push(entry);
    }
    let agree = if archs.len() >= 2 {
        Some(agreement(&archs, args.draws, 2018).map_err(|e| anyhow!("{e}"))?)
    } else {
        None
    };
    if args.output.json {
        let out = serde_json::json!({ "architectures": per_file, "agreement": agree });
        println!("{}", serde_json::to_string(&out)?);
        return Ok(());
    }
    if truth.is_some() {
        let mut table = Table::new();
        table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
        table.set_header(vec![
            "architecture",
            "task",
            "group",
            "relevant",
            "read",
            "recall",
            "precision",
        ]);
        for entry in &per_file {
            for r in entry["recovery"].as_array().into_iter().flatten() {
                table.add_row(vec![
                    entry["file"].as_str().unwrap_or_default().to_string(),
                    r["task"].as_str().unwrap_or_default().to_string(),
                    r["group"].as_str().unwrap_or_default().to_string(),
                    r["relevant"].to_string(),
                    r["read"].to_string(),
                    format!("{:.3}", r["recall"].as_f64().unwrap_or(f64::NAN)),
                    format!("{:.3}", r["precision"].as_f64().unwrap_or(f64::NAN)),
                ]);
            }
        }
        println!("{table}");
        let f = |v: &serde_json::Value| v.as_f64().map_or("-".into(), |v| format!("{v:.3}"));
        for entry in &per_file {
            println!(
                "{}: expert overlap between tasks of one group {}, of different groups {}",
                entry["file"].as_str().unwrap_or_default(),
                f(&entry["sharing"]["same_group"]),
                f(&entry["sharing"]["different_groups"]),
            );
        }
    }
    if let Some(a) = &agree {
        println!(
            "agreement over {} pairs (mean Jaccard, experts aligned): kept features {:.3} (random {:.3}), kept connections {:.3} (random {:.3})",
            a.pairs, a.features, a.features_random, a.connections, a.connections_random
        );
    } else if truth.is_none() {
        println!("one architecture: give several (one per seed) for their agreement, or --truth");
    }
    Ok(())
}
