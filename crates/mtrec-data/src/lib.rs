//! Data for mtrec: everything between a file on disk and a mini-batch.
//!
//! Multi-task recommendation experiments differ mostly in their data: which
//! columns are categorical, how each task's label is derived, how the files
//! are split. This crate turns all of that into one shape, an
//! [`EncodedTable`] of vocabulary ids, standardised numbers and per-task
//! labels, described by a [`FeatureMeta`], so that models, the training loop
//! and the metrics never look at a file.
//!
//! - [`Schema`] (TOML) names the sparse and dense fields and the tasks;
//! - [`source`] streams rows out of CSV (plain or gzip) and Parquet files;
//! - [`Preprocessor`] holds what is fitted on the training split only
//!   (vocabularies, dense statistics) and is saved beside every checkpoint;
//! - [`load`] builds a [`Dataset`] from a [`DataConfig`]: the Census-Income
//!   preset, the MMoE synthetic generator, or schema-described files;
//! - [`batches`] cuts a table into seeded, shuffled mini-batches;
//! - [`inspect()`](inspect::inspect) summarises an unknown file and guesses a schema;
//! - [`derive`] computes labels from rules over columns, [`buckets`] turns
//!   numbers into bucket ids, [`bag`] splits multi-valued cells (`a|b|c`) into
//!   several ids, [`leakage`] names inputs that give a label away.
//!
//! Errors carry the file, line and field of the offending value.

mod atomic;
pub mod bag;
pub mod batch;
pub mod buckets;
pub mod census;
pub mod config;
pub mod derive;
pub mod encode;
pub mod error;
pub mod inspect;
pub mod leakage;
pub mod planted;
pub mod records;
pub mod schema;
pub mod source;
pub mod split;
pub mod synthetic;
pub mod table;
pub mod task_checks;

pub use bag::{BagLayout, DEFAULT_MAX_VALUES, Pooling};
pub use batch::{Batch, BatchIter, batches};
pub use buckets::Buckets;
pub use census::{CensusConfig, census_schema};
pub use config::{DataConfig, Dataset, FilesConfig, load};
pub use derive::{CompareOp, DeriveRule, Operand};
pub use encode::{DenseStats, FeatureMeta, Preprocessor, Vocabulary};
pub use error::{DataError, Result};
pub use inspect::{ColumnStats, Inspection, guess_schema, inspect, schema_toml};
pub use leakage::{Leak, LeakScore, find_leaks};
pub use planted::{BetweenGroups, GroundTruth, Planted, PlantedConfig, PlantedRows, TaskGroup};
pub use records::{RecordError, RecordField, RecordFieldKind};
pub use schema::{DenseField, LabelScale, MissingLabels, Schema, SparseField, TaskKind, TaskSpec};
pub use source::{Cell, Format, SourceReader, SourceSpec};
pub use split::split_indices;
pub use synthetic::{SyntheticConfig, SyntheticData};
pub use table::EncodedTable;
pub use task_checks::{
    TaskRequirement, TaskRule, check_eval_rows, check_task_kinds, check_task_labels,
    check_task_rows,
};
