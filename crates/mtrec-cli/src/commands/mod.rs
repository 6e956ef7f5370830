//! One module per subcommand.

mod arch;
mod compare;
mod data;
mod demo;
mod eval;
mod models;
mod predict;
mod report;
mod repro;
mod run;
mod search;
mod serve;
mod train;
mod tune;

use anyhow::Result;
use mtrec_engine::EvalReport;
use mtrec_report::{MetricsRow, metrics_table};

use crate::cli::{ArchCommand, Command, DataCommand, ReproCommand};

pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Demo(args) => demo::run(args),
        Command::Train(args) => train::run(args),
        Command::Search(args) => search::run(args),
        Command::Run(args) => run::run(args),
        Command::Tune(args) => tune::run(args),
        Command::Compare(args) => compare::run(args),
        Command::Report(args) => report::run(args),
        Command::Repro(ReproCommand::MmoeSynthetic(args)) => repro::mmoe_synthetic(args),
        Command::Repro(ReproCommand::Census(args)) => repro::census(args),
        Command::Eval(args) => eval::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Data(DataCommand::Inspect(args)) => data::inspect(args),
        Command::Data(DataCommand::Synth(args)) => data::synth(args),
        Command::Arch(ArchCommand::Show(args)) => arch::show(args),
        Command::Arch(ArchCommand::Score(args)) => arch::score(args),
        Command::Models => models::run(),
    }
}

/// A report's per-task metrics as a terminal table.
fn report_table(title: &str, report: &EvalReport) -> String {
    let rows: Vec<MetricsRow<'_>> = report
        .tasks
        .iter()
        .chain(&report.derived)
        .map(|t| MetricsRow {
            label: t.name.clone(),
            metrics: &t.metrics,
        })
        .collect();
    metrics_table(title, &rows)
}
