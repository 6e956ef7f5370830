//! The grid file of `mtrec run`: experiment configs x override sets (variants) x seeds,
//! expanded into runs that are each one self-contained `mtrec train` or `mtrec search`
//! command line, so the same grid runs on this machine's cores or on a cluster scheduler.
//!
//! ```toml
//! [grid]
//! name = "census-g1-seeds"            # default: the file's stem
//! out = "runs/census-g1-seeds"        # default: runs/<name>; each run in out/<run id>
//! configs = ["configs/census-g1-mmoe.toml", "configs/census-g1-automtl.toml"]
//! seeds = [1, 2, 3, 4, 5]             # train.seed of each run (init and batch order)
//! set = ["train.epochs=10"]           # optional: overrides for every run
//!
//! [[grid.variant]]                    # optional; none = the configs as written
//! label = "base"                      # no `set`: the configs as written, as a variant
//! [[grid.variant]]
//! label = "lr3e-3"
//! set = ["train.learning_rate=3e-3"]
//! ```
//!
//! Variants replace the configs as written rather than add to them: a grid of variants only
//! runs what it names, so a comparison of learning rates is not silently joined by runs at
//! the file's rate, and a grid that wants them says so with a variant without `set`.
//!
//! Everything is checked when the grid is loaded (every config with every variant's
//! overrides, exactly as `mtrec train --set` checks them), so a typo stops the grid before
//! the first run rather than failing one run in every hundred.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mtrec_arch::ArchConfig;
use mtrec_engine::ExperimentConfig;
use mtrec_engine::config::Override;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GridFile {
    grid: GridSection,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GridSection {
    name: Option<String>,
    out: Option<PathBuf>,
    configs: Vec<PathBuf>,
    seeds: Vec<u64>,
    #[serde(default)]
    set: Vec<String>,
    #[serde(default, rename = "variant")]
    variants: Vec<VariantSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VariantSection {
    label: String,
    #[serde(default)]
    set: Vec<String>,
}

/// Which subcommand runs a config: AutoMTL search spaces are searched, the rest trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    Train,
    Search,
}

impl Program {
    pub fn as_str(self) -> &'static str {
        match self {
            Program::Train => "train",
            Program::Search => "search",
        }
    }
}

/// One run of the grid.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// `<config stem>[-<label>]-s<seed>`: the run's folder name under the grid's `out`.
    pub id: String,
    pub config: PathBuf,
    pub program: Program,
    pub variant: Option<String>,
    /// `--set` overrides in the order given: the grid's, then the variant's (a variant run
    /// also gets `name=<config name>-<label>` first, so `mtrec compare` keeps variants apart).
    pub overrides: Vec<String>,
    pub seed: u64,
    pub out: PathBuf,
    /// The config this run trains, resolved exactly as `train`/`search` resolve it; a run
    /// folder found on disk counts as this run only if its saved config equals this.
    pub expected: ExperimentConfig,
}

impl RunSpec {
    /// The arguments after the executable: everything the run needs, nothing from this
    /// process's state.
    pub fn args(&self, threads: usize) -> Vec<String> {
        let mut args = vec![
            "--threads".to_string(),
            threads.to_string(),
            self.program.as_str().to_string(),
            "--config".to_string(),
            self.config.display().to_string(),
            "--seed".to_string(),
            self.seed.to_string(),
            "--out".to_string(),
            self.out.display().to_string(),
            "--json".to_string(),
        ];
        for o in &self.overrides {
            args.push("--set".to_string());
            args.push(o.clone());
        }
        args
    }
}

/// A loaded and checked grid.
#[derive(Debug)]
pub struct Grid {
    pub name: String,
    pub out: PathBuf,
    /// Seed-major order (every config and variant at the first seed, then the next seed), so
    /// an interrupted grid already holds complete comparisons at its first seeds.
    pub runs: Vec<RunSpec>,
}

impl Grid {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read the grid file", path.display()))?;
        Self::from_toml_str(&text, path)
    }

    pub fn from_toml_str(text: &str, path: &Path) -> Result<Self> {
        let file: GridFile = toml::from_str(text)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim_end()))?;
        let g = file.grid;
        let bad = |message: String| anyhow::anyhow!("{}: {message}", path.display());
        let name = match g.name {
            Some(n) => n,
            None => path
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_else(|| "grid".into()),
        };
        check_word(&name).map_err(|m| bad(format!("grid.name `{name}`: {m}")))?;
        let out = g.out.unwrap_or_else(|| PathBuf::from("runs").join(&name));
        if g.configs.is_empty() {
            return Err(bad(
                "grid.configs is empty: list experiment configs, e.g. configs = [\"configs/census-g1-mmoe.toml\"]".into(),
            ));
        }
        if g.seeds.is_empty() {
            return Err(bad(
                "grid.seeds is empty: list the train seeds, e.g. seeds = [1, 2, 3]".into(),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for s in &g.seeds {
            if !seen.insert(s) {
                return Err(bad(format!("grid.seeds lists {s} twice")));
            }
        }
        let common = parse_overrides(&g.set).map_err(|m| bad(format!("grid.set: {m}")))?;

        let mut stems: BTreeMap<String, &PathBuf> = BTreeMap::new();
        for c in &g.configs {
            let stem = c
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .ok_or_else(|| bad(format!("grid.configs: `{}` is not a file", c.display())))?;
            check_word(&stem).map_err(|m| {
                bad(format!(
                    "grid.configs: `{}`: its file name names the runs; {m}",
                    c.display()
                ))
            })?;
            if let Some(other) = stems.insert(stem.clone(), c) {
                return Err(bad(format!(
                    "grid.configs: `{}` and `{}` share the file name `{stem}`, which names their runs",
                    other.display(),
                    c.display()
                )));
            }
        }

        // (label, its overrides); no variants means the configs as written, and with
        // variants only they run (see the module doc).
        let mut variants: Vec<(Option<String>, Vec<String>)> = Vec::new();
        if g.variants.is_empty() {
            variants.push((None, Vec::new()));
        }
        for v in &g.variants {
            check_word(&v.label).map_err(|m| bad(format!("variant label `{}`: {m}", v.label)))?;
            if variants
                .iter()
                .any(|(l, _)| l.as_deref() == Some(v.label.as_str()))
            {
                return Err(bad(format!("variant label `{}` is used twice", v.label)));
            }
            parse_overrides(&v.set).map_err(|m| bad(format!("variant `{}`: {m}", v.label)))?;
            variants.push((Some(v.label.clone()), v.set.clone()));
        }

        // Every (config, variant) resolved once; the seed only changes train.seed.
        struct Cell {
            config: PathBuf,
            stem: String,
            label: Option<String>,
            overrides: Vec<String>,
            expected: ExperimentConfig,
        }
        let mut cells = Vec::new();
        for c in &g.configs {
            let stem = c
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            let plain = ExperimentConfig::from_toml_file_with(c, &common)
                .map_err(|e| bad(e.to_string()))?;
            for (label, set) in &variants {
                let mut overrides: Vec<String> = g.set.clone();
                if let Some(label) = label {
                    overrides.push(format!("name={}-{label}", plain.name));
                }
                overrides.extend(set.iter().cloned());
                let parsed = parse_overrides(&overrides).map_err(bad)?;
                let expected = ExperimentConfig::from_toml_file_with(c, &parsed).map_err(|e| {
                    let who = label
                        .as_ref()
                        .map_or(String::new(), |l| format!("variant `{l}`: "));
                    bad(format!("{who}{e}"))
                })?;
                cells.push(Cell {
                    config: c.clone(),
                    stem: stem.clone(),
                    label: label.clone(),
                    overrides,
                    expected,
                });
            }
        }

        let mut runs = Vec::new();
        let mut ids: BTreeMap<String, String> = BTreeMap::new();
        for &seed in &g.seeds {
            for cell in &cells {
                let id = match &cell.label {
                    Some(l) => format!("{}-{l}-s{seed}", cell.stem),
                    None => format!("{}-s{seed}", cell.stem),
                };
                let what = format!(
                    "{}{}",
                    cell.config.display(),
                    cell.label
                        .as_ref()
                        .map_or(String::new(), |l| format!(" with variant `{l}`"))
                );
                if let Some(other) = ids.insert(id.clone(), what.clone()) {
                    return Err(bad(format!(
                        "run id `{id}` would name both {other} and {what}: rename a variant label"
                    )));
                }
                let mut expected = cell.expected.clone();
                expected.train.seed = seed;
                let program = match expected.model {
                    ArchConfig::Automtl(_) => Program::Search,
                    _ => Program::Train,
                };
                runs.push(RunSpec {
                    out: out.join(&id),
                    id,
                    config: cell.config.clone(),
                    program,
                    variant: cell.label.clone(),
                    overrides: cell.overrides.clone(),
                    seed,
                    expected,
                });
            }
        }
        Ok(Self { name, out, runs })
    }
}

/// Parses `KEY=VALUE` overrides; `train.seed` belongs to `seeds`.
fn parse_overrides(set: &[String]) -> Result<Vec<Override>, String> {
    set.iter()
        .map(|text| {
            let o: Override = text.parse()?;
            if o.path == ["train", "seed"] {
                return Err(format!(
                    "`{text}`: train.seed is set by grid.seeds, not by an override"
                ));
            }
            Ok(o)
        })
        .collect()
}

/// Names that become folder names: letters, digits and `._+-`, not starting with a dot.
fn check_word(word: &str) -> Result<(), String> {
    if word.is_empty() {
        return Err("must not be empty".into());
    }
    if word.starts_with('.') {
        return Err("must not start with a dot".into());
    }
    match word
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._+-".contains(*c)))
    {
        Some(c) => Err(format!(
            "`{c}` cannot be part of a run folder name (use letters, digits and ._+-)"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Grids are read relative to the project root, where the configs live.
    fn load(text: &str) -> Result<Grid> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let text = text.replace("configs/", &format!("{}/configs/", root.display()));
        Grid::from_toml_str(&text, Path::new("g.toml"))
    }

    #[test]
    fn expands_configs_variants_and_seeds_seed_major() {
        let g = load(
            r#"
[grid]
configs = ["configs/synthetic-mmoe.toml", "configs/synthetic-omoe.toml"]
seeds = [7, 8]
set = ["train.epochs=1"]
[[grid.variant]]
label = "base"
[[grid.variant]]
label = "lr3e-3"
set = ["train.learning_rate=3e-3"]
"#,
        )
        .unwrap();
        assert_eq!(g.name, "g");
        assert_eq!(g.out, Path::new("runs/g"));
        let ids: Vec<&str> = g.runs.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "synthetic-mmoe-base-s7",
                "synthetic-mmoe-lr3e-3-s7",
                "synthetic-omoe-base-s7",
                "synthetic-omoe-lr3e-3-s7",
                "synthetic-mmoe-base-s8",
                "synthetic-mmoe-lr3e-3-s8",
                "synthetic-omoe-base-s8",
                "synthetic-omoe-lr3e-3-s8",
            ]
        );
        let r = &g.runs[5];
        assert_eq!(r.out, Path::new("runs/g/synthetic-mmoe-lr3e-3-s8"));
        assert_eq!(
            r.overrides,
            [
                "train.epochs=1",
                "name=synthetic-mmoe-lr3e-3",
                "train.learning_rate=3e-3"
            ]
        );
        assert_eq!(r.expected.train.learning_rate, 3e-3);
        assert_eq!(r.expected.train.epochs, 1);
        assert_eq!(r.expected.train.seed, 8);
        assert_eq!(r.expected.name, "synthetic-mmoe-lr3e-3");
        assert_eq!(r.program, Program::Train);
    }

    #[test]
    fn without_variants_runs_the_configs_as_written_and_automtl_is_searched() {
        let g = load(
            "[grid]\nname = \"x\"\nout = \"elsewhere\"\nconfigs = [\"configs/synthetic-c05-automtl.toml\"]\nseeds = [3]\n",
        )
        .unwrap();
        assert_eq!(g.runs.len(), 1);
        let r = &g.runs[0];
        assert_eq!(r.id, "synthetic-c05-automtl-s3");
        assert_eq!(r.out, Path::new("elsewhere/synthetic-c05-automtl-s3"));
        assert!(r.overrides.is_empty());
        assert_eq!(r.program, Program::Search);
        let args = r.args(2);
        assert_eq!(args[..3], ["--threads", "2", "search"]);
        assert!(args.ends_with(&["--json".to_string()]));
    }

    #[test]
    fn mistakes_name_the_file_and_the_key() {
        let cases = [
            (
                "[grid]\nconfigs = []\nseeds = [1]\n",
                "grid.configs is empty",
            ),
            (
                "[grid]\nconfigs = [\"configs/synthetic-mmoe.toml\"]\nseeds = [1]\nseed = 2\n",
                "unknown field `seed`",
            ),
            (
                "[grid]\nconfigs = [\"configs/synthetic-mmoe.toml\"]\nseeds = [1, 1]\n",
                "lists 1 twice",
            ),
            (
                "[grid]\nconfigs = [\"configs/synthetic-mmoe.toml\"]\nseeds = [1]\nset = [\"train.seed=4\"]\n",
                "train.seed is set by grid.seeds",
            ),
            (
                "[grid]\nconfigs = [\"configs/synthetic-mmoe.toml\"]\nseeds = [1]\n[[grid.variant]]\nlabel = \"a b\"\n",
                "variant label `a b`",
            ),
            (
                "[grid]\nconfigs = [\"configs/synthetic-mmoe.toml\"]\nseeds = [1]\n[[grid.variant]]\nlabel = \"v\"\nset = [\"train.learnin_rate=1\"]\n",
                "variant `v`: ",
            ),
            (
                "[grid]\nconfigs = [\"configs/synthetic-mmoe.toml\"]\nseeds = [1]\n[[grid.variant]]\nlabel = \"v\"\n[[grid.variant]]\nlabel = \"v\"\n",
                "used twice",
            ),
            (
                "[grid]\nconfigs = [\"configs/synthetic-mmoe.toml\", \"configs/synthetic-mmoe.toml\"]\nseeds = [1]\n",
                "share the file name",
            ),
        ];
        for (text, needle) in cases {
            let e = format!("{:#}", load(text).unwrap_err());
            assert!(e.starts_with("g.toml: "), "{e}");
            assert!(e.contains(needle), "{needle:?} not in {e}");
        }
    }
}
