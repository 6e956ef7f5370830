//! `mtrec repro`: a paper's study end to end, from the runs to its figures and a report that
//! says which of the paper's claims hold in our numbers.
//!
//! - `mmoe-synthetic`: the MMoE paper's task-relatedness study; the runs (resumable) in
//!   `mmoe_synthetic.rs`, the statistics, figures and report in `mmoe_report.rs`.
//! - `census`: the MMoE paper's Census-Income comparison (`census.rs`).

mod census;
mod mmoe_report;
mod mmoe_synthetic;

pub use census::run as census;
pub use mmoe_synthetic::run as mmoe_synthetic;
