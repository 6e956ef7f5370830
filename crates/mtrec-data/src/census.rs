//! UCI Census-Income (KDD) with the task groups of the MMoE paper (Ma et al.,
//! KDD 2018, section 6.2), spec section 2.2.
//!
//! The files have no header: 42 fields separated by `", "`, the last one the
//! income label (`- 50000.` or `50000+.`). Column 24, the instance weight, is
//! a sampling weight for population statistics, never an input.
//!
//! Task groups; a group's label columns are removed from its inputs, the
//! other group's label column stays an input as in the paper's setup:
//! - group 1: `income` (`50000+.`) and `marital` (`Never married`);
//!   `education` stays an input;
//! - group 2: `education` (a college degree or higher, see
//!   [`COLLEGE_DEGREES`]) and `marital`; `income` stays an input.
//!
//! Inputs: the seven continuous columns are dense; every other column is
//! sparse, including the numeric-coded recodes (industry, occupation,
//! veterans benefits, own business) and `year`, whose numbers are codes.
//! `?` (not asked that year) is kept as a value of its own.
//!
//! Protocols: only the official test file can be shipped, so by default it is
//! split 50/25/25 (seeded) into train/valid/test. When the user supplies the
//! official train file, it is the training set and the test file is split 1:1
//! into valid/test, the paper's protocol.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Dataset;
use crate::encode::RawTable;
use crate::error::{DataError, Result};
use crate::schema::{DenseField, Schema, SparseField, TaskKind, TaskSpec};
use crate::source::{SourceSpec, open_maybe_gz};
use crate::split::split_indices;

/// The 42 columns in file order, spelled as in `census-income.names` (its
/// attribute list, where `instance weight` sits between the household
/// summary and the migration codes), plus `income` for the label.
pub const CENSUS_COLUMNS: [&str; 42] = [
    "age",                                        // 0
    "class of worker",                            // 1
    "detailed industry recode",                   // 2
    "detailed occupation recode",                 // 3
    "education",                                  // 4
    "wage per hour",                              // 5
    "enroll in edu inst last wk",                 // 6
    "marital stat",                               // 7
    "major industry code",                        // 8
    "major occupation code",                      // 9
    "race",                                       // 10
    "hispanic origin",                            // 11
    "sex",                                        // 12
    "member of a labor union",                    // 13
    "reason for unemployment",                    // 14
    "full or part time employment stat",          // 15
    "capital gains",                              // 16
    "capital losses",                             // 17
    "dividends from stocks",                      // 18
    "tax filer stat",                             // 19
    "region of previous residence",               // 20
    "state of previous residence",                // 21
    "detailed household and family stat",         // 22
    "detailed household summary in household",    // 23
    "instance weight",                            // 24
    "migration code-change in msa",               // 25
    "migration code-change in reg",               // 26
    "migration code-move within reg",             // 27
    "live in this house 1 year ago",              // 28
    "migration prev res in sunbelt",              // 29
    "num persons worked for employer",            // 30
    "family members under 18",                    // 31
    "country of birth father",                    // 32
    "country of birth mother",                    // 33
    "country of birth self",                      // 34
    "citizenship",                                // 35
    "own business or self employed",              // 36
    "fill inc questionnaire for veteran's admin", // 37
    "veterans benefits",                          // 38
    "weeks worked in year",                       // 39
    "year",                                       // 40
    "income",                                     // 41
];

/// The columns the `.names` file marks continuous; they become dense inputs.
pub const CONTINUOUS: [&str; 7] = [
    "age",
    "wage per hour",
    "capital gains",
    "capital losses",
    "dividends from stocks",
    "num persons worked for employer",
    "weeks worked in year",
];

/// The `education` values counted as "at least a college degree" (6 of the 17):
/// - `Bachelors degree(BA AB BS)`
/// - `Masters degree(MA MS MEng MEd MSW MBA)`
/// - `Doctorate degree(PhD EdD)`
/// - `Prof school degree (MD DDS DVM LLB JD)`
/// - `Associates degree-occup /vocational`
/// - `Associates degree-academic program`
///
/// Negative: `Children`, `Less than 1st grade`, `1st 2nd 3rd or 4th grade`,
/// `5th or 6th grade`, `7th and 8th grade`, `9th grade`, `10th grade`,
/// `11th grade`, `12th grade no diploma`, `High school graduate` and
/// `Some college but no degree` (attended, no degree). On the test file 19.50%
/// of rows are positive.
pub const COLLEGE_DEGREES: [&str; 6] = [
    "Bachelors degree(BA AB BS)",
    "Masters degree(MA MS MEng MEd MSW MBA)",
    "Doctorate degree(PhD EdD)",
    "Prof school degree (MD DDS DVM LLB JD)",
    "Associates degree-occup /vocational",
    "Associates degree-academic program",
];

/// sha256 of the official, uncompressed `census-income.data` (199,523 rows).
pub const OFFICIAL_TRAIN_SHA256: &str =
    "3676a81db7d3528f3f8b9f3c699d0f0aa28db45e6e994fa0b8ed38327539ee86";

const INSTANCE_WEIGHT: &str = "instance weight";

/// Where the Census files are and which protocol and task group to use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CensusConfig {
    /// Task group: 1 (income, marital) or 2 (education, marital).
    pub group: u8,
    /// The official test file (plain or gzip).
    pub test_file: PathBuf,
    /// The official train file; when given, the paper's protocol is used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_file: Option<PathBuf>,
    /// Seed of the random splits.
    pub seed: u64,
    /// Keep only the first N rows of each split after splitting (fast tests).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subsample: Option<usize>,
}

impl Default for CensusConfig {
    fn default() -> Self {
        CensusConfig {
            group: 1,
            test_file: PathBuf::from("data/census-income/census-income.test.gz"),
            train_file: None,
            seed: 2018,
            subsample: None,
        }
    }
}

/// The schema of a task group: 32 sparse and 7 dense inputs, two binary tasks.
/// Any group other than 2 gives group 1 ([`load`] rejects other values).
pub fn census_schema(group: u8) -> Schema {
    let income = {
        let mut t = TaskSpec::new("income", TaskKind::Binary, "income");
        t.positive = Some(vec!["50000+.".into()]);
        t
    };
    let education = {
        let mut t = TaskSpec::new("education", TaskKind::Binary, "education");
        t.positive = Some(COLLEGE_DEGREES.iter().map(|s| s.to_string()).collect());
        t
    };
    let marital = {
        let mut t = TaskSpec::new("marital", TaskKind::Binary, "marital stat");
        t.positive = Some(vec!["Never married".into()]);
        t
    };
    let tasks = if group == 2 {
        vec![education, marital]
    } else {
        vec![income, marital]
    };
    let excluded = |c: &str| c == INSTANCE_WEIGHT || tasks.iter().any(|t| t.column == c);
    let sparse = CENSUS_COLUMNS
        .iter()
        .filter(|c| !excluded(c) && !CONTINUOUS.contains(c))
        .map(|c| SparseField::new(*c))
        .collect();
    let dense = CONTINUOUS.iter().map(|c| DenseField::new(*c)).collect();
    Schema {
        columns: Some(CENSUS_COLUMNS.iter().map(|s| s.to_string()).collect()),
        sparse,
        dense,
        tasks,
    }
}

fn census_source(path: PathBuf) -> SourceSpec {
    SourceSpec::new(path)
        .with_header(false)
        .with_separator(b',')
        .with_columns(CENSUS_COLUMNS.iter().map(|s| s.to_string()).collect())
}

/// Loads Census-Income with the configured protocol; paths are joined to `base_dir`.
pub fn load(cfg: &CensusConfig, base_dir: &Path) -> Result<Dataset> {
    if cfg.group != 1 && cfg.group != 2 {
        return Err(DataError::config(format!(
            "census group must be 1 or 2, got {}",
            cfg.group
        )));
    }
    let schema = census_schema(cfg.group);
    let mut raw = RawTable::new(&schema);
    let (train, valid, test) = match &cfg.train_file {
        None => {
            let rows = raw.append(&schema, &census_source(base_dir.join(&cfg.test_file)))?;
            let mut parts = split_indices(rows.len(), &[0.5, 0.25, 0.25], cfg.seed).into_iter();
            let mut next = || parts.next().unwrap_or_default();
            (next(), next(), next())
        }
        Some(train_file) => {
            let train_path = base_dir.join(train_file);
            check_train_hash(&train_path)?;
            let train = raw.append(&schema, &census_source(train_path))?;
            let rows = raw.append(&schema, &census_source(base_dir.join(&cfg.test_file)))?;
            let mut parts = split_indices(rows.len(), &[0.5, 0.5], cfg.seed).into_iter();
            let mut next = || -> Vec<usize> {
                parts
                    .next()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|i| rows[i])
                    .collect()
            };
            (train, next(), next())
        }
    };
    Dataset::from_raw(&schema, &raw, train, valid, test, cfg.subsample)
}

/// sha256 (hex) of a file's content, decompressed first if it is gzip, so a
/// compressed copy of the official file still matches the official hash.
pub fn content_sha256(path: &Path) -> Result<String> {
    let mut input = open_maybe_gz(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = input.read(&mut buf).map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// A different train file may be a legitimate variant (a cleaned copy, a
/// fixture), so a mismatch is reported, not fatal. Returns whether it matched.
pub fn check_train_hash(path: &Path) -> Result<bool> {
    let got = content_sha256(path)?;
    let ok = got == OFFICIAL_TRAIN_SHA256;
    if ok {
        tracing::info!(path = %path.display(), "census train file matches the official sha256");
    } else {
        tracing::warn!(
            path = %path.display(),
            expected = OFFICIAL_TRAIN_SHA256,
            got = %got,
            "census train file differs from the official census-income.data; \
             results will not be comparable with the paper's"
        );
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_list_matches_the_documented_positions() {
        assert_eq!(CENSUS_COLUMNS[4], "education");
        assert_eq!(CENSUS_COLUMNS[7], "marital stat");
        assert_eq!(CENSUS_COLUMNS[24], "instance weight");
        assert_eq!(CENSUS_COLUMNS[41], "income");
    }

    #[test]
    fn schemas_drop_their_own_labels_and_the_weight() {
        for (group, tasks, kept_label) in [
            (1u8, ["income", "marital"], "education"),
            (2, ["education", "marital"], "income"),
        ] {
            let s = census_schema(group);
            s.validate("census").expect("valid schema");
            assert_eq!(s.task_names(), tasks);
            let inputs: Vec<&str> = s
                .sparse
                .iter()
                .map(|f| f.column())
                .chain(s.dense.iter().map(|f| f.column()))
                .collect();
            assert_eq!(s.sparse.len(), 32);
            assert_eq!(s.dense.len(), 7);
            for gone in ["instance weight", "marital stat", tasks[0]] {
                assert!(!inputs.contains(&gone), "group {group}: {gone} is an input");
            }
            assert!(inputs.contains(&kept_label), "group {group}");
        }
    }

    #[test]
    fn bad_group_is_a_config_error() {
        let cfg = CensusConfig {
            group: 3,
            ..CensusConfig::default()
        };
        let e = load(&cfg, Path::new(".")).unwrap_err();
        assert!(e.to_string().contains("group must be 1 or 2"), "{e}");
    }
}
