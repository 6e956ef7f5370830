//! `mtrec data inspect` and `mtrec data synth`.

use anyhow::{Context, Result, bail};
use comfy_table::Table;
use mtrec_data::planted::{self, PlantedTask};
use mtrec_data::{
    BetweenGroups, PlantedConfig, SourceSpec, SyntheticConfig, TaskGroup, guess_schema,
    inspect as inspect_file, schema_toml, synthetic,
};

use crate::atomic::write_atomically;
use crate::cli::{BetweenGroupsArg, InspectArgs, SynthArgs, SynthKind};

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
    let schema_toml = schema_toml(&ins, &schema);
    if let Some(path) = &args.schema_out {
        write_atomically(path, &schema_toml)?;
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
        // What the schema cannot hold: the positive value, ID-likeness, a possible task.
        let mut guess = c.guessed.clone();
        if let Some(p) = &c.positive {
            guess.push_str(&format!(" (1 = {p})"));
        }
        if c.id_like {
            guess.push_str(", id-like");
        }
        if c.task_candidate {
            guess.push_str(", task?");
        }
        if let Some(sep) = &c.separator {
            guess.push_str(&format!(", multi-valued ({sep})"));
        }
        table.add_row(vec![
            c.name.clone(),
            guess,
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
    if let Some(c) = args.correlation
        && !(-1.0..=1.0).contains(&c)
    {
        bail!("--correlation must be in [-1, 1], got {c}");
    }
    match args.kind {
        SynthKind::Mmoe => synth_mmoe(args),
        SynthKind::Recsys => synth_recsys(args),
    }
}

/// The MMoE paper's two regression tasks.
fn synth_mmoe(args: SynthArgs) -> Result<()> {
    if !args.tasks.is_empty() || args.between_groups.is_some() || args.recsys_config.is_some() {
        bail!("--tasks, --between-groups and --recsys-config only apply to --kind recsys");
    }
    let cfg = SyntheticConfig {
        correlation: args.correlation.unwrap_or(0.9),
        seed: args.seed.unwrap_or(2018),
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

/// Planted multi-task recommendation data, its schema and its ground truth.
fn synth_recsys(args: SynthArgs) -> Result<()> {
    let mut cfg = match &args.recsys_config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str::<PlantedConfig>(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        None => PlantedConfig::default(),
    };
    if let Some(seed) = args.seed {
        cfg.seed = seed;
    }
    if !args.tasks.is_empty() {
        cfg.groups = args
            .tasks
            .iter()
            .enumerate()
            .map(|(i, spec)| parse_task_group(&format!("g{i}"), spec))
            .collect::<Result<_>>()?;
    }
    if let Some(c) = args.correlation {
        cfg.groups.iter_mut().for_each(|g| g.correlation = c);
    }
    if let Some(b) = args.between_groups {
        cfg.between_groups = match b {
            BetweenGroupsArg::Conflict => BetweenGroups::Conflict,
            BetweenGroupsArg::Independent => BetweenGroups::Independent,
        };
    }
    let started = std::time::Instant::now();
    let truth = planted::write(&cfg, args.rows, &args.out)?;
    let schema = planted::schema_path(&args.out);
    let rates: Vec<String> = truth
        .tasks
        .iter()
        .map(|t| format!("{} {:.4}", t.name, t.observed_positive_rate))
        .collect();
    eprintln!(
        "wrote {} rows to {} in {:.1} s, the schema to {} and the ground truth to {}",
        args.rows,
        args.out.display(),
        started.elapsed().as_secs_f64(),
        schema.display(),
        planted::truth_path(&args.out).display()
    );
    eprintln!("positive rates: {}", rates.join(", "));
    eprintln!(
        "train on it with (the loader splits the file 80/10/10):\n  [data]\n  kind = \"files\"\n  \
         schema = {:?}\n  train = {:?}",
        schema.display().to_string(),
        args.out.display().to_string()
    );
    Ok(())
}

/// `click:0.3,like:0.05` -> a group of two tasks with the default correlation.
fn parse_task_group(name: &str, spec: &str) -> Result<TaskGroup> {
    let usage = || {
        format!(
            "--tasks {spec:?}: expected NAME:POSITIVE_RATE pairs separated by commas, \
             e.g. click:0.3,like:0.05"
        )
    };
    let mut tasks = Vec::new();
    for item in spec.split(',') {
        let (task, rate) = item.split_once(':').with_context(usage)?;
        let rate: f64 = rate.trim().parse().with_context(usage)?;
        tasks.push(PlantedTask {
            name: task.trim().to_string(),
            positive_rate: rate,
        });
    }
    Ok(TaskGroup {
        tasks,
        ..TaskGroup::new(name, &[])
    })
}
