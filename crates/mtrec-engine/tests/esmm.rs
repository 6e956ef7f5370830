//! ESMM end to end on generated click/conversion logs in the public layout: it learns both
//! entire-space tasks (beats predicting the training base rate on held-out rows) and reports
//! the CVR AUC on clicked rows.

use std::fmt::Write as _;
use std::path::Path;

use mtrec_engine::{ExperimentConfig, NullObserver, check_tasks, default_device, train};

/// A tiny deterministic generator (no test-only dependency): xorshift64*.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Clicks depend on `x0`, `x1` and the category; conversions (only ever on a click) on `x2`.
fn write_logs(path: &Path, rows: usize, seed: u64) {
    let mut rng = Rng(seed);
    let mut csv = String::from("cat,x0,x1,x2,click,conversion\n");
    for _ in 0..rows {
        let cat = (rng.uniform() * 5.0) as usize;
        let x: Vec<f64> = (0..3).map(|_| rng.uniform() * 4.0 - 2.0).collect();
        let click = rng.uniform() < sigmoid(1.5 * x[0] - x[1] + cat as f64 * 0.4 - 1.0);
        let conv = click && rng.uniform() < sigmoid(2.0 * x[2] - 0.5);
        writeln!(
            csv,
            "c{cat},{:.4},{:.4},{:.4},{},{}",
            x[0], x[1], x[2], click as u8, conv as u8
        )
        .unwrap();
    }
    std::fs::write(path, csv).unwrap();
}

fn base_rate_logloss(labels: &[f32], rate: f64) -> f64 {
    let p = rate.clamp(1e-7, 1.0 - 1e-7);
    labels
        .iter()
        .map(|&y| if y > 0.5 { -p.ln() } else { -(1.0 - p).ln() })
        .sum::<f64>()
        / labels.len() as f64
}

/// The schema of the generated logs, tasks in `order`.
fn write_schema(path: &Path, order: [&str; 2]) {
    std::fs::write(
        path,
        format!(
            "[[sparse]]\nname = \"cat\"\n[[dense]]\nname = \"x0\"\n[[dense]]\nname = \"x1\"\n\
             [[dense]]\nname = \"x2\"\n[[tasks]]\nname = \"{0}\"\nkind = \"binary\"\n\
             [[tasks]]\nname = \"{1}\"\nkind = \"binary\"\n",
            order[0], order[1]
        ),
    )
    .unwrap();
}

#[test]
fn esmm_learns_both_entire_space_tasks_and_reports_cvr_on_clicks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_schema(&d.join("schema.toml"), ["click", "conversion"]);
    write_logs(&d.join("train.csv"), 6000, 1);
    write_logs(&d.join("test.csv"), 3000, 2);
    let text = format!(
        "[data]\nkind = \"files\"\nschema = \"{0}/schema.toml\"\ntrain = \"{0}/train.csv\"\ntest = \"{0}/test.csv\"\n\
         [model]\nkind = \"esmm\"\ntower = [16, 8]\n\
         [train]\nlearning_rate = 3e-3\nbatch_size = 128\nepochs = 8\npatience = 0\nmonitor = \"loss\"\n",
        d.display()
    );
    let cfg = ExperimentConfig::from_toml_str(&text, Path::new("esmm.toml")).unwrap();
    let data = mtrec_data::load(&cfg.data, Path::new(".")).unwrap();
    check_tasks(&cfg, &data, Path::new(".")).expect("conversions only ever on a click");
    let outcome = train(&cfg, &data, &default_device(), &mut NullObserver).unwrap();
    for (t, task) in outcome.test.tasks.iter().enumerate() {
        let train_labels = data.train.labels_of_task(t);
        let rate = train_labels.iter().map(|&v| v as f64).sum::<f64>() / train_labels.len() as f64;
        let baseline = base_rate_logloss(&data.test.labels_of_task(t), rate);
        let logloss = task.metrics.logloss.unwrap();
        assert!(
            logloss < 0.9 * baseline,
            "{}: test logloss {logloss} vs base rate {baseline}",
            task.name
        );
    }
    // CVR is judged only on clicked test rows, where conversion depends on x2 alone.
    let cvr = outcome.test.task("cvr").expect("ESMM reports a CVR figure");
    let clicked = data
        .test
        .labels_of_task(0)
        .iter()
        .filter(|&&c| c > 0.5)
        .count();
    assert_eq!(cvr.n, clicked);
    assert!(
        cvr.auc.unwrap() > 0.7,
        "CVR AUC on clicked rows {:?}",
        cvr.auc
    );
}

/// Listed conversion first, the same logs break ESMM's "no conversion without a click" from the
/// other side: every click without a conversion is a breach. The check refuses them before
/// training, naming the training file's first such line (counted here independently).
#[test]
fn esmm_refuses_tasks_listed_conversion_first_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_schema(&d.join("schema.toml"), ["conversion", "click"]);
    write_logs(&d.join("train.csv"), 400, 3);
    let text = std::fs::read_to_string(d.join("train.csv")).unwrap();
    let breaches: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.ends_with(",1,0"))
        .map(|(i, _)| i + 1)
        .collect();
    assert!(!breaches.is_empty());
    let cfg = ExperimentConfig::from_toml_str(
        &format!(
            "[data]\nkind = \"files\"\nschema = \"{0}/schema.toml\"\ntrain = \"{0}/train.csv\"\n\
             [model]\nkind = \"esmm\"\ntower = [4]\n",
            d.display()
        ),
        Path::new("esmm.toml"),
    )
    .unwrap();
    let data = mtrec_data::load(&cfg.data, Path::new(".")).unwrap();
    let e = check_tasks(&cfg, &data, Path::new("."))
        .unwrap_err()
        .to_string();
    let expected = format!(
        "{}:{}: task `click` is 1 but task `conversion` is 0 ({} such rows in this file)",
        d.join("train.csv").display(),
        breaches[0],
        breaches.len()
    );
    assert!(e.starts_with(&expected), "{e}");
    assert!(e.contains("wrong order"), "{e}");
}
