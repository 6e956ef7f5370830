//! `mtrec arch show`: a searched architecture (arch.json) as text, an SVG diagram and,
//! on request, Graphviz DOT.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use mtrec_arch::automtl::Genotype;
use mtrec_report::{genotype_dot, genotype_text, write_genotype_svg};

use crate::cli::ArchShowArgs;

pub fn show(args: ArchShowArgs) -> Result<()> {
    let file = &args.file;
    let json =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let genotype = Genotype::from_json(&json)
        .map_err(|e| anyhow!("{}: not an architecture file: {e}", file.display()))?;
    genotype
        .validate_structure()
        .map_err(|e| anyhow!("{}: {e}", file.display()))?;
    let text = genotype_text(&genotype);

    let svg = args.svg.clone().unwrap_or_else(|| default_svg(file));
    write_genotype_svg(&svg, &genotype).with_context(|| format!("writing {}", svg.display()))?;
    if let Some(dot) = &args.dot {
        let tmp = PathBuf::from(format!("{}.tmp", dot.display()));
        std::fs::write(&tmp, genotype_dot(&genotype))
            .and_then(|()| std::fs::rename(&tmp, dot))
            .with_context(|| format!("writing {}", dot.display()))?;
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
