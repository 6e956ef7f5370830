//! Human-facing output: terminal tables of per-task metrics, SVG and PNG charts, and searched
//! architectures as text and diagrams.
//!
//! Machine-readable output is plain serde JSON of the engine's reports; this crate renders the
//! same figures for people, so the two never disagree.

pub mod arch;
pub mod comparison;
pub mod heatmap;
pub mod html;
pub mod markdown;
pub mod page;
pub mod plot;
pub mod runs;
pub mod settings;
pub mod stats;
pub mod table;

pub use arch::{genotype_dot, genotype_text, write_genotype_svg};
pub use html::render_html;
pub use markdown::render_markdown;
pub use page::{GateLevel, ReportPage, RunExtras, build_page};
pub use plot::{Panel, Series, write_svg};
pub use runs::{Metric, RunError, RunRecord, TaskFigure, load_run};
pub use stats::{Summary, TestResult, summarize};
pub use table::{MetricsRow, metrics_table};
