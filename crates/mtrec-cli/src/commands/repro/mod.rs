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

/// The `--quick` help of each study states its numbers: they are checked against the
/// constants that make them, so the help cannot drift from what the command does.
#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    fn quick_help(study: &str) -> String {
        let cli = crate::cli::Cli::command();
        let cmd = cli
            .find_subcommand("repro")
            .and_then(|r| r.find_subcommand(study))
            .unwrap();
        let quick = cmd.get_arguments().find(|a| a.get_id() == "quick").unwrap();
        quick.get_help().unwrap().to_string()
    }

    /// 5000 -> "5,000", as the help writes numbers.
    fn grouped(n: usize) -> String {
        let digits = n.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    }

    #[test]
    fn grouping_matches_hand_written_numbers() {
        assert_eq!(grouped(5000), "5,000");
        assert_eq!(grouped(10_000), "10,000");
        assert_eq!(grouped(3), "3");
    }

    #[test]
    fn census_quick_help_states_its_budget() {
        let help = quick_help("census");
        let subsample: usize = super::census::QUICK_SETS
            .iter()
            .find_map(|s| s.strip_prefix("data.subsample="))
            .unwrap()
            .parse()
            .unwrap();
        let rows = format!("first {} rows of each split", grouped(subsample));
        assert!(help.contains(&rows), "{rows:?} not in {help:?}");
        let budget = format!(
            "{} trials and {} runs of one epoch",
            super::census::QUICK_TRIALS,
            super::census::QUICK_RUNS
        );
        assert!(help.contains(&budget), "{budget:?} not in {help:?}");
        assert!(super::census::QUICK_SETS.contains(&"train.epochs=1"));
    }

    #[test]
    fn mmoe_quick_help_states_its_settings() {
        use super::mmoe_synthetic::{QUICK_RUNS, Settings};
        let help = quick_help("mmoe-synthetic");
        let (quick, full) = (Settings::quick(), Settings::full());
        let steps = format!(
            "{} steps instead of {}",
            grouped(quick.steps),
            grouped(full.steps)
        );
        assert!(help.contains(&steps), "{steps:?} not in {help:?}");
        assert!(
            help.contains(&format!("{QUICK_RUNS} runs per cell")),
            "{help}"
        );
        assert_eq!(quick.pilots, 1);
        assert!(
            help.contains("one pilot run per learning rate and correlation"),
            "{help}"
        );
    }
}
