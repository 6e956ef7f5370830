//! `mtrec demo`: MMoE on the bundled Census-Income data, end to end.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use mtrec_data::DataConfig;
use mtrec_engine::ExperimentConfig;

use crate::cli::DemoArgs;

/// The demo is exactly this shipped config, so `mtrec train --config` reproduces it.
const DEMO_CONFIG: &str = include_str!("../../../../configs/census-g1-mmoe.toml");

/// The project folder holding `data/`: the current one, else the one this binary was built
/// from (so the demo also works when started from elsewhere in a clone).
fn project_dir() -> Result<PathBuf> {
    let probe = Path::new("data/census-income/census-income.test.gz");
    if probe.is_file() {
        return Ok(PathBuf::from("."));
    }
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if built_from.join(probe).is_file() {
        return Ok(built_from);
    }
    bail!(
        "cannot find {} in the current folder; run the demo from the mtrec project folder",
        probe.display()
    )
}

pub fn run(args: DemoArgs) -> Result<()> {
    let mut cfg =
        ExperimentConfig::from_toml_str(DEMO_CONFIG, Path::new("configs/census-g1-mmoe.toml"))?;
    cfg.name = "demo".into();
    if let Some(e) = args.epochs {
        cfg.train.epochs = e;
    }
    if let (Some(n), DataConfig::Census(c)) = (args.subsample, &mut cfg.data) {
        c.subsample = Some(n);
    }
    let base = project_dir()?;
    super::train::run_experiment(&cfg, &base, &args.out, args.output.json, false, None)
}
