//! Human-facing output: terminal tables of per-task metrics, SVG charts, and searched
//! architectures as text and diagrams.
//!
//! Machine-readable output is plain serde JSON of the engine's reports; this crate renders the
//! same figures for people, so the two never disagree.

pub mod arch;
pub mod plot;
pub mod table;

pub use arch::{genotype_dot, genotype_text, write_genotype_svg};
pub use plot::{Panel, Series, write_svg};
pub use table::{MetricsRow, metrics_table};
