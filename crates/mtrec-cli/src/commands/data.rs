//! `mtrec data inspect` and `mtrec data synth`.

use anyhow::{Context, Result, bail};
use comfy_table::Table;
use mtrec_data::{SourceSpec, SyntheticConfig, guess_schema, inspect as inspect_file, synthetic};

use crate::cli::{InspectArgs, SynthArgs};

pub fn inspect(args: InspectArgs) -> Result<()> {
    let mut spec = SourceSpec::new(&args.file);
    if let Some(sep) = args.separator {
        if !sep.is_ascii() {
            bail!("--separator must be one ASCII character, got {sep:?}");
        }
        spec.separator = sep as u8;
    }
    spec.header = !args.no_header;
    let ins = inspect_file(&spec, args.rows)?;
    let schema = guess_schema(&ins);
    let schema_toml = schema.to_toml_string();
    if let Some(path) = &args.schema_out {
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, &schema_toml)
            .and_then(|_| std::fs::rename(&tmp, path))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.output.json {
        let json = serde_json::json!({ "inspection": ins, "schema": schema });
        println!("{}", serde_json::to_string(&json)?);
        return Ok(());
    }
    let mut table = Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header(vec![
        "column",
        "guess",
        "missing",
        "distinct",
        "mean",
        "std",
        "min",
        "max",
        "top values",
    ]);
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    for c in &ins.columns {
        let top: Vec<String> = c
            .top
            .iter()
            .take(3)
            .map(|(v, n)| format!("{v} ({n})"))
            .collect();
        table.add_row(vec![
            c.name.clone(),
            c.guessed.clone(),
            c.n_missing.to_string(),
            c.n_distinct.to_string(),
            f(c.mean),
            f(c.std),
            f(c.min),
            f(c.max),
            top.join(", "),
        ]);
    }
    println!("{}: {} rows", ins.path.display(), ins.n_rows);
    println!("{table}");
    println!("\n# guessed schema (edit, then use as [data] schema = \"...\")\n{schema_toml}");
    Ok(())
}

pub fn synth(args: SynthArgs) -> Result<()> {
    if !(-1.0..=1.0).contains(&args.correlation) {
        bail!("--correlation must be in [-1, 1], got {}", args.correlation);
    }
    let cfg = SyntheticConfig {
        correlation: args.correlation,
        seed: args.seed,
        ..SyntheticConfig::default()
    };
    let data = synthetic::generate(&cfg, args.rows);
    let is_parquet = args
        .out
        .extension()
        .is_some_and(|e| e == "parquet" || e == "pq");
    if is_parquet {
        synthetic::write_parquet(&data, &args.out)?;
    } else {
        synthetic::write_csv(&data, &args.out)?;
    }
    eprintln!("wrote {} rows to {}", args.rows, args.out.display());
    Ok(())
}
