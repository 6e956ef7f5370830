//! Loss weightings through the engine: MetaBalance's per-task gradient path, and uncertainty
//! weighting's learnt log-variances.

use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use mtrec_arch::Model;
use mtrec_data::batches;
use mtrec_engine::{ExperimentConfig, NullObserver, Stepper, default_device, train};

fn config(weighting: &str) -> ExperimentConfig {
    let text = format!(
        r#"
        name = "weighting-test"
        [data]
        kind = "synthetic"
        correlation = 0.5
        dim = 10
        n_train = 1000
        n_valid = 200
        n_test = 200
        seed = 5
        [model]
        kind = "shared-bottom"
        bottom = [16]
        tower = [8]
        [weighting]
        {weighting}
        [train]
        learning_rate = 0.01
        batch_size = 100
        epochs = 3
        patience = 0
        monitor = "loss"
        seed = 9
        "#
    );
    ExperimentConfig::from_toml_str(&text, Path::new("inline.toml")).unwrap()
}

/// Every trainable float parameter, flattened, in module order (running statistics skipped).
struct Values {
    path: Vec<String>,
    out: Vec<(String, Vec<f32>)>,
}

impl ModuleVisitor for Values {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let path = self.path.join(".");
        if !path.contains("running") {
            let v = param.val().into_data().try_to_vec::<f32>().unwrap();
            self.out.push((path, v));
        }
    }
}

fn values(model: &Model) -> Vec<(String, Vec<f32>)> {
    let mut v = Values {
        path: Vec::new(),
        out: Vec::new(),
    };
    model.valid().visit(&mut v);
    v.out
}

/// `steps` steps from the same initial model, with `[weighting]` = `weighting`.
fn stepped(weighting: &str, steps: usize) -> Vec<(String, Vec<f32>)> {
    let cfg = config(weighting);
    let data = mtrec_data::load(&cfg.data, Path::new(".")).unwrap();
    let meta = data.meta();
    let device = default_device().autodiff();
    device.seed(3);
    let model = mtrec_arch::build(&cfg.model, &cfg.embedding, &meta, &device).unwrap();
    let mut stepper = Stepper::new(
        model,
        &cfg,
        meta.task_kinds.clone(),
        &meta.task_names,
        &device,
    )
    .unwrap();
    for batch in batches(&data.train, 100, Some(1)).take(steps) {
        stepper.step(&batch);
    }
    values(stepper.model())
}

#[test]
fn metabalance_with_relax_zero_is_the_plain_sum_of_task_gradients() {
    // r = 0 leaves every gradient as it is, so the per-task path (one backward per task,
    // shared parameters combined by the weighting, towers summed) must land where one
    // backward of L_1 + L_2 does.
    const SUM: &str = "kind = \"fixed\"\nweights = { task1 = 1.0, task2 = 1.0 }";
    let per_task = stepped("kind = \"meta-balance\"\nrelax = 0.0", 3);
    let summed = stepped(SUM, 3);
    assert_eq!(per_task.len(), summed.len());
    for ((name, a), (_, b)) in per_task.iter().zip(&summed) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-5, "{name}: {x} vs {y}");
        }
    }
}

#[test]
fn metabalance_rescales_shared_parameters_and_leaves_towers_alone() {
    // After one step from the same start, r = 1 must change the shared bottom's update but
    // not the towers': each tower only ever sees its own task's gradient.
    let relaxed = stepped("kind = \"meta-balance\"\nrelax = 1.0", 1);
    let summed = stepped(
        "kind = \"fixed\"\nweights = { task1 = 1.0, task2 = 1.0 }",
        1,
    );
    let (mut towers, mut bottom_diff) = (0, 0.0f32);
    for ((name, a), (_, b)) in relaxed.iter().zip(&summed) {
        let diff = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        if name.contains("tower") {
            towers += 1;
            assert!(diff < 1e-6, "{name} changed by {diff}");
        } else if name.contains("bottom") {
            bottom_diff = bottom_diff.max(diff);
        }
    }
    assert!(towers > 0, "no tower parameters found");
    assert!(
        bottom_diff > 1e-5,
        "relax = 1 left the shared bottom alone ({bottom_diff})"
    );
}

#[test]
fn metabalance_logs_norms_and_scales_per_epoch() {
    let cfg = config("kind = \"meta-balance\"\ntarget = \"task2\"");
    let data = mtrec_data::load(&cfg.data, Path::new(".")).unwrap();
    let outcome = train(&cfg, &data, &default_device(), &mut NullObserver).unwrap();
    for record in &outcome.history {
        let s = &record.stats;
        assert!(
            s["grad_norm/task1"] > 0.0 && s["grad_norm/task2"] > 0.0,
            "{s:?}"
        );
        // Only the auxiliary task is rescaled.
        assert!(
            s["scale/task1"].is_finite() && !s.contains_key("scale/task2"),
            "{s:?}"
        );
    }
}

#[test]
fn uncertainty_weighting_learns_its_log_variances() {
    let cfg = config("kind = \"uncertainty\"\ninit = -0.5");
    let data = mtrec_data::load(&cfg.data, Path::new(".")).unwrap();
    let outcome = train(&cfg, &data, &default_device(), &mut NullObserver).unwrap();
    let last = &outcome.history.last().unwrap().stats;
    for task in ["task1", "task2"] {
        let s = last[&format!("log_variance/{task}")];
        assert!((s + 0.5).abs() > 1e-3, "{task}: s stayed at its init ({s})");
        // The logged weight is 1 / (2 exp(s)), and it is what the outcome reports.
        let w = last[&format!("weight/{task}")];
        assert!((w - 0.5 * (-s).exp()).abs() < 1e-6, "{w} vs s = {s}");
    }
    assert_eq!(
        outcome.loss_weights,
        vec![last["weight/task1"], last["weight/task2"]]
    );
}
