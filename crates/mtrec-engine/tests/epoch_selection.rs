//! Which epoch a training run keeps, and when it stops: regression tests for model selection
//! under a learnt weighting and for the default epoch schedule.

use std::path::Path;

use mtrec_engine::{ExperimentConfig, NullObserver, TrainOutcome, default_device, train};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A standard normal draw (Box-Muller), so the data needs no distribution crate.
fn gauss(rng: &mut StdRng) -> f64 {
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    let v: f64 = rng.random();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// `rows` rows of `user,item,price,age,click,watch`, the shape of the peer's report: `click`
/// binary, `watch` a regression target (hours watched, so its MSE is small and the
/// uncertainty weighting's learnt weight of it grows large; `scale = "none"` keeps it in
/// hours, as it was when the fault was found). Returns the config's `[data]`.
fn write_click_watch(dir: &Path, rows: usize, seed: u64) -> String {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut csv = String::from("user,item,price,age,click,watch\n");
    for _ in 0..rows {
        let user = rng.random_range(0..40);
        let item = rng.random_range(0..30);
        let price = rng.random_range(1.0..100.0f64);
        let age = rng.random_range(18..70);
        let z = 0.8 * (user as f64).sin() + 0.6 * (item as f64).cos() - 0.01 * price
            + 0.02 * (age as f64 - 40.0)
            + gauss(&mut rng);
        let click = u8::from(z > 0.0);
        let minutes = 20.0
            + 8.0 * (0.7 * user as f64).sin()
            + 5.0 * click as f64
            + 0.1 * age as f64
            + 6.0 * gauss(&mut rng);
        let watch = minutes.max(0.0) / 60.0;
        csv.push_str(&format!(
            "u{user},i{item},{price:.2},{age},{click},{watch:.4}\n"
        ));
    }
    std::fs::write(dir.join("rows.csv"), csv).unwrap();
    std::fs::write(
        dir.join("schema.toml"),
        "[[sparse]]\nname = \"user\"\n[[sparse]]\nname = \"item\"\n\
         [[dense]]\nname = \"price\"\n[[dense]]\nname = \"age\"\n\
         [[tasks]]\nname = \"click\"\nkind = \"binary\"\ncolumn = \"click\"\n\
         [[tasks]]\nname = \"watch\"\nkind = \"regression\"\ncolumn = \"watch\"\n\
         scale = \"none\"\n",
    )
    .unwrap();
    format!(
        "[data]\nkind = \"files\"\nschema = \"{}\"\ntrain = \"{}\"\n",
        dir.join("schema.toml").display(),
        dir.join("rows.csv").display()
    )
}

fn run(text: &str) -> TrainOutcome {
    let cfg = ExperimentConfig::from_toml_str(text, Path::new("inline.toml")).unwrap();
    cfg.validate(Path::new("inline.toml")).unwrap();
    let data = mtrec_data::load(&cfg.data, Path::new(".")).unwrap();
    train(&cfg, &data, &default_device(), &mut NullObserver).unwrap()
}

fn task_loss(outcome: &TrainOutcome, epoch: usize, task: &str) -> f64 {
    let m = outcome.history[epoch - 1].valid.task(task).unwrap();
    m.logloss.or(m.mse).unwrap()
}

/// The peer's reproduction, scaled down: MMoE under `[weighting] kind = "uncertainty"` with the
/// `auto` monitor (the validation loss, since `watch` is a regression). The learnt weight of
/// `watch` grows several-fold over the run, so a validation loss weighted by it rose epoch
/// after epoch by construction and epoch 1 was kept, although epochs 2 and 3 had both a lower
/// click logloss and a lower watch MSE. The kept epoch must not be beaten on every task.
#[test]
fn uncertainty_weighting_keeps_an_epoch_no_other_beats_on_every_task_loss() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_click_watch(dir.path(), 750, 1);
    let outcome = run(&format!(
        "name = \"selection\"\n{data}\
         [embedding]\ndim = 4\n[model]\nkind = \"mmoe\"\n[weighting]\nkind = \"uncertainty\"\n\
         [train]\nlearning_rate = 3e-2\nbatch_size = 32\nepochs = 12\npatience = 0\nseed = 2018\n"
    ));
    let best = outcome.best_epoch;
    let tasks = ["click", "watch"];
    let dominating: Vec<usize> = (1..=outcome.history.len())
        .filter(|&e| {
            tasks
                .iter()
                .all(|t| task_loss(&outcome, e, t) < task_loss(&outcome, best, t))
        })
        .collect();
    assert!(
        dominating.is_empty(),
        "kept epoch {best} is beaten on every task loss by epochs {dominating:?}"
    );
    // The learnt weights did move (else this test would not exercise the fault).
    let w = &outcome.history.last().unwrap().stats;
    assert!(w["weight/watch"] > 5.0, "{w:?}");
}

/// Defaults train to convergence: with no `[train]` section, 9600 training rows (10 batches
/// an epoch) keep improving until epoch 60 and the run ends by early stopping at 65, under the
/// cap. The old default of 10 epochs ended it on its still-improving last epoch.
#[test]
fn default_schedule_stops_early_after_the_best_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_click_watch(dir.path(), 12000, 2);
    let outcome = run(&format!(
        "name = \"defaults\"\n{data}[embedding]\ndim = 4\n[model]\nkind = \"mmoe\"\n"
    ));
    let run = outcome.history.len();
    assert!(
        outcome.best_epoch < run,
        "best epoch {} is the last of {run}: training was cut short",
        outcome.best_epoch
    );
    // Ended by early stopping: `patience` (5) epochs without improvement, under the cap.
    assert_eq!(
        run - outcome.best_epoch,
        5,
        "best {} of {run}",
        outcome.best_epoch
    );
    assert!(run < 100, "ran into the cap");
    assert!(!outcome.best_epoch_is_last() && outcome.undertrained_hint().is_none());
}
