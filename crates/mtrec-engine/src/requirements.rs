//! The configured model's and scheme's assumptions about the tasks, checked once before
//! training (see [`mtrec_data::task_checks`] for the rules and what each check costs).
//!
//! A broken assumption does not stop a training run by itself: ESMM trains on swapped tasks
//! or a regression "conversion" and prints figures that mean nothing. So `mtrec train` and
//! `mtrec search` call [`check_tasks`] between loading the data and the first step, and a
//! program driving [`crate::train`] itself should too.

use std::path::Path;

use mtrec_data::{Dataset, TaskRequirement};

use crate::{EngineError, ExperimentConfig};

/// The model's requirements, then the scheme's.
pub fn task_requirements(cfg: &ExperimentConfig) -> Vec<TaskRequirement> {
    let mut reqs = cfg.model.task_requirements();
    reqs.extend(cfg.scheme.task_requirements());
    reqs
}

/// Checks `cfg`'s requirements against `data` (loaded from `cfg.data` relative to `base_dir`):
/// kinds and counts first, then implications between labels. A breach in the training data is
/// the error; one in a separately given validation or test file is logged as a warning.
pub fn check_tasks(
    cfg: &ExperimentConfig,
    data: &Dataset,
    base_dir: &Path,
) -> Result<(), EngineError> {
    let reqs = task_requirements(cfg);
    if reqs.is_empty() {
        return Ok(());
    }
    mtrec_data::check_task_kinds(&reqs, &cfg.data, base_dir, &data.meta())?;
    mtrec_data::check_task_labels(&reqs, &cfg.data, base_dir, &data.preprocessor.schema)?;
    for warning in mtrec_data::check_task_rows(&reqs, &cfg.data, base_dir, data)? {
        tracing::warn!("{warning}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use mtrec_data::TaskRule;

    use super::*;

    #[test]
    fn the_model_and_the_scheme_both_declare_their_assumptions() {
        let cfg = |text: &str| {
            ExperimentConfig::from_toml_str(
                &format!("[data]\nkind = \"census\"\n{text}"),
                Path::new("t.toml"),
            )
            .unwrap()
        };
        let rules = |c: &ExperimentConfig| -> Vec<TaskRule> {
            task_requirements(c).iter().map(|r| r.rule).collect()
        };
        assert!(rules(&cfg("")).is_empty(), "MMoE takes any tasks");
        assert!(rules(&cfg("[scheme]\nkind = \"lt4rec\"\n")).is_empty());
        let esmm_distil = cfg("[model]\nkind = \"esmm\"\n[scheme]\nkind = \"cross-distil\"\n");
        assert_eq!(
            rules(&esmm_distil),
            [
                TaskRule::Count(2),
                TaskRule::Binary(0),
                TaskRule::Binary(1),
                TaskRule::Implies { from: 1, to: 0 },
                TaskRule::Unconditional,
                TaskRule::MinBinary(2),
                TaskRule::FullLabels,
            ]
        );
        assert_eq!(
            task_requirements(&esmm_distil)[5].by,
            "[scheme] kind = \"cross-distil\""
        );
    }
}
