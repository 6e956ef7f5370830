//! The `[data]` section of an experiment file and the loader behind it.
//!
//! ```toml
//! [data]
//! kind = "census"            # or "synthetic", or "files"
//! group = 1
//! ```
//!
//! ```toml
//! [data]
//! kind = "files"
//! schema = "data/samples/ali-ccp/schema.toml"
//! train = "data/samples/ali-ccp/ali_ccp_train_sample.csv"
//! valid = "data/samples/ali-ccp/ali_ccp_val_sample.csv"
//! test = "data/samples/ali-ccp/ali_ccp_test_sample.csv"
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::census::CensusConfig;
use crate::encode::{FeatureMeta, Preprocessor, RawTable};
use crate::error::{DataError, Result};
use crate::schema::Schema;
use crate::source::{Format, SourceSpec};
use crate::split::split_indices;
use crate::synthetic::SyntheticConfig;
use crate::table::EncodedTable;

/// Which data set an experiment runs on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DataConfig {
    /// UCI Census-Income (KDD) with the MMoE paper's task groups.
    Census(CensusConfig),
    /// The MMoE paper's synthetic regression tasks of controlled correlation.
    Synthetic(SyntheticConfig),
    /// Any CSV or Parquet files described by a schema file.
    Files(FilesConfig),
}

/// Files described by a schema; missing validation/test files are carved out
/// of the training file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesConfig {
    /// The schema file (TOML, see [`crate::schema`]).
    pub schema: PathBuf,
    pub train: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<PathBuf>,
    /// Train/valid/test fractions used to split `train` when `valid` or `test`
    /// is not given (default `[0.8, 0.1, 0.1]`); the parts of given files are
    /// dropped and the rest renormalised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<[f64; 3]>,
    /// Seed of the split of `train` (default 2018, as for Census).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// CSV separator; default `,` (tab for `.tsv`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separator: Option<char>,
    /// Whether CSV files have a header line; default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<bool>,
    /// Default: guessed from each file's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// Keep only the first N rows of each split (quick runs and tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subsample: Option<usize>,
}

fn default_seed() -> u64 {
    2018
}

impl FilesConfig {
    /// A config for `train` alone with every default.
    pub fn new(schema: impl Into<PathBuf>, train: impl Into<PathBuf>) -> Self {
        FilesConfig {
            schema: schema.into(),
            train: train.into(),
            valid: None,
            test: None,
            split: None,
            seed: default_seed(),
            separator: None,
            header: None,
            format: None,
            subsample: None,
        }
    }

    pub(crate) fn source(&self, path: PathBuf, schema: &Schema) -> Result<SourceSpec> {
        let mut spec = SourceSpec::new(path);
        if let Some(c) = self.separator {
            if !c.is_ascii() {
                return Err(DataError::config(format!(
                    "separator {c:?} is not a single-byte (ASCII) character"
                )));
            }
            spec.separator = c as u8;
        }
        spec.header = self.header.unwrap_or(true);
        spec.format = self.format;
        if !spec.header {
            spec.columns = schema.columns.clone();
        }
        Ok(spec)
    }
}

/// A loaded data set: the fitted preprocessor and the three encoded splits.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub preprocessor: Preprocessor,
    pub train: EncodedTable,
    pub valid: EncodedTable,
    pub test: EncodedTable,
}

impl Dataset {
    pub fn meta(&self) -> FeatureMeta {
        self.preprocessor.meta()
    }

    /// Fits on the training rows and encodes the three splits; each split is
    /// first cut to `subsample` rows when given.
    pub(crate) fn from_raw(
        schema: &Schema,
        raw: &RawTable,
        train: Vec<usize>,
        valid: Vec<usize>,
        test: Vec<usize>,
        subsample: Option<usize>,
    ) -> Result<Dataset> {
        let names = ["training", "validation", "test"].map(|s| format!("the {s} split"));
        Dataset::from_raw_named(schema, raw, [train, valid, test], subsample, &names)
    }

    /// [`Dataset::from_raw`] with the splits' names for errors (which file
    /// each one comes from).
    fn from_raw_named(
        schema: &Schema,
        raw: &RawTable,
        [mut train, mut valid, mut test]: [Vec<usize>; 3],
        subsample: Option<usize>,
        names: &[String; 3],
    ) -> Result<Dataset> {
        if let Some(n) = subsample {
            train.truncate(n);
            valid.truncate(n);
            test.truncate(n);
        }
        if train.is_empty() {
            return Err(DataError::Empty {
                what: "the training split".into(),
            });
        }
        let preprocessor = Preprocessor::fit(schema, raw, &train);
        let train = preprocessor.encode_raw(raw, &train, &names[0])?;
        let valid = preprocessor.encode_raw(raw, &valid, &names[1])?;
        let test = preprocessor.encode_raw(raw, &test, &names[2])?;
        tracing::debug!(
            train = train.n_rows,
            valid = valid.n_rows,
            test = test.n_rows,
            "data set encoded"
        );
        Ok(Dataset {
            preprocessor,
            train,
            valid,
            test,
        })
    }
}

/// Loads the configured data set; relative paths are joined to `base_dir`.
pub fn load(cfg: &DataConfig, base_dir: &Path) -> Result<Dataset> {
    match cfg {
        DataConfig::Census(c) => crate::census::load(c, base_dir),
        DataConfig::Synthetic(c) => crate::synthetic::dataset(c),
        DataConfig::Files(c) => load_files(c, base_dir),
    }
}

fn load_files(cfg: &FilesConfig, base_dir: &Path) -> Result<Dataset> {
    let schema = Schema::from_toml_file(&base_dir.join(&cfg.schema))?;
    let fractions = split_fractions(cfg)?;
    let mut raw = RawTable::new(&schema);
    let train_rows = raw.append(&schema, &cfg.source(base_dir.join(&cfg.train), &schema)?)?;
    let mut given = |p: &Option<PathBuf>| -> Result<Option<Vec<usize>>> {
        match p {
            Some(p) => Ok(Some(
                raw.append(&schema, &cfg.source(base_dir.join(p), &schema)?)?,
            )),
            None => Ok(None),
        }
    };
    let valid_rows = given(&cfg.valid)?;
    let test_rows = given(&cfg.test)?;

    let (train, valid, test) = match (valid_rows, test_rows) {
        (Some(v), Some(t)) => (train_rows, v, t),
        (v, t) => {
            let mut parts = split_indices(train_rows.len(), &fractions, cfg.seed).into_iter();
            let mut next = || -> Vec<usize> {
                parts
                    .next()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|i| train_rows[i])
                    .collect()
            };
            let tr = next();
            let v = v.unwrap_or_else(&mut next);
            let t = t.unwrap_or_else(&mut next);
            (tr, v, t)
        }
    };
    let train_file = base_dir.join(&cfg.train);
    let name = |split: &str, file: Option<&PathBuf>| match file {
        Some(f) => format!("the {split} split ({})", base_dir.join(f).display()),
        None => format!("the {split} split (part of {})", train_file.display()),
    };
    let whole_train = (cfg.valid.is_some() && cfg.test.is_some()).then_some(&cfg.train);
    let names = [
        name("training", whole_train),
        name("validation", cfg.valid.as_ref()),
        name("test", cfg.test.as_ref()),
    ];
    Dataset::from_raw_named(&schema, &raw, [train, valid, test], cfg.subsample, &names)
}

/// The fractions to split the training file with, one per part to carve out
/// (train first), renormalised to sum to 1.
fn split_fractions(cfg: &FilesConfig) -> Result<Vec<f64>> {
    let split = cfg.split.unwrap_or([0.8, 0.1, 0.1]);
    if split.iter().any(|f| !f.is_finite() || *f < 0.0) {
        return Err(DataError::config(format!(
            "split fractions must be non-negative numbers, got {split:?}"
        )));
    }
    if cfg.split.is_some() && cfg.valid.is_some() && cfg.test.is_some() {
        return Err(DataError::config(
            "`split` is given but both `valid` and `test` files are too: nothing to split",
        ));
    }
    let mut f = vec![split[0]];
    if cfg.valid.is_none() {
        f.push(split[1]);
    }
    if cfg.test.is_none() {
        f.push(split[2]);
    }
    let sum: f64 = f.iter().sum();
    if split[0] <= 0.0 || sum <= 0.0 {
        return Err(DataError::config(format!(
            "split fractions {split:?} leave no training rows"
        )));
    }
    Ok(f.into_iter().map(|x| x / sum).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_config_reads_each_kind_and_rejects_unknown_keys() {
        let c: DataConfig = toml::from_str("kind = \"census\"\ngroup = 2\n").expect("census");
        match c {
            DataConfig::Census(c) => {
                assert_eq!(c.group, 2);
                assert_eq!(c.seed, 2018);
            }
            other => panic!("wrong kind {other:?}"),
        }
        let c: DataConfig =
            toml::from_str("kind = \"synthetic\"\ncorrelation = 0.5\n").expect("synthetic");
        assert!(matches!(c, DataConfig::Synthetic(s) if s.correlation == 0.5 && s.dim == 100));
        let c: DataConfig = toml::from_str(
            "kind = \"files\"\nschema = \"s.toml\"\ntrain = \"t.csv\"\nseparator = \"\\t\"\n\
             split = [0.6, 0.2, 0.2]\nformat = \"csv\"\n",
        )
        .expect("files");
        match &c {
            DataConfig::Files(f) => {
                assert_eq!(f.separator, Some('\t'));
                assert_eq!(f.split, Some([0.6, 0.2, 0.2]));
                assert_eq!(f.format, Some(Format::Csv));
            }
            other => panic!("wrong kind {other:?}"),
        }
        let back: DataConfig = toml::from_str(&toml::to_string(&c).expect("ser")).expect("de");
        assert_eq!(back, c);
        let e = toml::from_str::<DataConfig>("kind = \"census\"\ngroupp = 2\n").unwrap_err();
        assert!(e.to_string().contains("groupp"), "{e}");
    }

    #[test]
    fn split_fractions_drop_given_files_and_renormalise() {
        let mut c = FilesConfig::new("s.toml", "t.csv");
        let f = split_fractions(&c).expect("ok");
        assert!((f[0] - 0.8).abs() < 1e-12 && (f[2] - 0.1).abs() < 1e-12 && f.len() == 3);
        c.test = Some("x.csv".into());
        let f = split_fractions(&c).expect("ok");
        assert!((f[0] - 8.0 / 9.0).abs() < 1e-12 && f.len() == 2);
        c.split = Some([0.0, 0.5, 0.5]);
        assert!(split_fractions(&c).is_err());
        c.split = Some([f64::NAN, 0.5, 0.5]);
        assert!(split_fractions(&c).is_err());
    }
}
