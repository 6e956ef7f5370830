//! Partial labels through the engine: masked labels, conditional tasks, example weights and
//! standardised regression labels, checked against figures computed here by hand.

use std::cmp::Ordering;
use std::path::Path;

use mtrec_arch::MultiTaskModel;
use mtrec_data::{Dataset, EncodedTable, batches};
use mtrec_engine::tensors::{input_of, labels_of, weights_of};
use mtrec_engine::{
    ExperimentConfig, NullObserver, check_tasks, default_device, evaluate, predict, search,
    task_losses, train, weighted_task_losses,
};

/// Knuth's MMIX generator: reproducible data without a dependency.
struct Lcg(u64);

impl Lcg {
    fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// `n` rows of `user,item,x,click,conv,conv_masked,watch_ms,w`: clicks driven by the user and
/// item, conversions (only after a click) by the item, watch time around 1e6 ms driven by the
/// user, a weight by the user; `conv_masked` is `conv` with about a quarter of its cells empty.
fn csv(n: usize, seed: u64) -> String {
    let mut rng = Lcg(seed);
    let mut s = String::from("user,item,x,click,conv,conv_masked,watch_ms,w\n");
    for _ in 0..n {
        let u = (rng.uniform() * 40.0) as u32;
        let i = (rng.uniform() * 40.0) as u32;
        let x = rng.uniform() * 2.0 - 1.0;
        let eu = f64::from((u * 37) % 11) / 5.0 - 1.0;
        let ei = f64::from((i * 17) % 13) / 6.0 - 1.0;
        let click = rng.uniform() < sigmoid(1.5 * (eu + ei) + x - 0.3);
        let conv = click && rng.uniform() < sigmoid(2.0 * ei - 0.5);
        let masked = rng.uniform() < 0.25;
        let watch = 1.0e6 + 3.0e5 * eu + 1.0e5 * (rng.uniform() - 0.5);
        let w = 0.5 + f64::from(u % 4) * 0.5;
        let conv_masked = if masked {
            String::new()
        } else {
            u8::from(conv).to_string()
        };
        s.push_str(&format!(
            "u{u},i{i},{x:.4},{},{},{conv_masked},{watch:.0},{w}\n",
            u8::from(click),
            u8::from(conv)
        ));
    }
    s
}

const INPUTS: &str = r#"
[[sparse]]
name = "user"
[[sparse]]
name = "item"
[[dense]]
name = "x"
"#;

fn task(name: &str, kind: &str, extra: &str) -> String {
    format!("[[tasks]]\nname = \"{name}\"\nkind = \"{kind}\"\n{extra}\n")
}

/// A data set with the given `[[tasks]]` over the shared rows, and its config; the folder
/// holds `s.toml` and `d.csv`.
struct Setup {
    dir: tempfile::TempDir,
    cfg: ExperimentConfig,
    data: Dataset,
}

fn setup(tasks: &str, model: &str, extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.toml"), format!("{INPUTS}{tasks}")).unwrap();
    std::fs::write(dir.path().join("d.csv"), csv(4000, 5)).unwrap();
    let text = format!(
        r#"
        name = "partial"
        [data]
        kind = "files"
        schema = "s.toml"
        train = "d.csv"
        [embedding]
        dim = 4
        [model]
        {model}
        {extra}
        [train]
        learning_rate = 1e-2
        batch_size = 256
        epochs = 3
        patience = 0
        seed = 7
        "#
    );
    let cfg = ExperimentConfig::from_toml_str(&text, Path::new("inline.toml")).unwrap();
    let data = mtrec_data::load(&cfg.data, dir.path()).unwrap();
    Setup { dir, cfg, data }
}

const SHARED_BOTTOM: &str = "kind = \"shared-bottom\"\nbottom = [16]\ntower = [8]";

/// AUC by its definition: every (positive, negative) pair weighs `w_i w_j`, ties one half.
fn brute_auc(scores: &[f32], labels: &[f32], weights: &[f32]) -> f64 {
    let (mut u, mut wp, mut wn) = (0.0, 0.0, 0.0);
    for i in 0..scores.len() {
        if labels[i] > 0.5 {
            wp += f64::from(weights[i]);
        } else {
            wn += f64::from(weights[i]);
        }
    }
    for i in (0..scores.len()).filter(|&i| labels[i] > 0.5) {
        for j in (0..scores.len()).filter(|&j| labels[j] <= 0.5) {
            let pair = f64::from(weights[i]) * f64::from(weights[j]);
            u += pair
                * match scores[i].partial_cmp(&scores[j]) {
                    Some(Ordering::Greater) => 1.0,
                    Some(Ordering::Equal) => 0.5,
                    _ => 0.0,
                };
        }
    }
    u / (wp * wn)
}

/// `sum w l / sum w` with the metrics crate's clamp.
fn brute_logloss(probs: &[f32], labels: &[f32], weights: &[f32]) -> f64 {
    let (mut total, mut w_sum) = (0.0, 0.0);
    for ((&p, &y), &w) in probs.iter().zip(labels).zip(weights) {
        let p = f64::from(p).clamp(1e-7, 1.0 - 1e-7);
        let y = f64::from(y);
        total -= f64::from(w) * (y * p.ln() + (1.0 - y) * (1.0 - p).ln());
        w_sum += f64::from(w);
    }
    total / w_sum
}

/// The entries of `v` where `keep` holds.
fn pick(v: &[f32], keep: &[bool]) -> Vec<f32> {
    v.iter()
        .zip(keep)
        .filter(|(_, k)| **k)
        .map(|(x, _)| *x)
        .collect()
}

fn eval(
    s: &Setup,
    model: &mtrec_engine::Predictor,
    table: &EncodedTable,
) -> mtrec_engine::EvalReport {
    let meta = s.data.meta();
    let weights = vec![1.0 / meta.n_tasks() as f64; meta.n_tasks()];
    evaluate(
        model,
        table,
        &meta.task_names,
        &meta.task_kinds,
        &weights,
        512,
        &default_device(),
    )
    .unwrap()
}

#[test]
fn masking_changes_neither_the_other_tasks_losses_nor_metrics() {
    let full = setup(
        &(task("click", "binary", "")
            + &task("conv", "binary", "")
            + &task("watch", "regression", "column = \"watch_ms\"")),
        SHARED_BOTTOM,
        "",
    );
    let masked = setup(
        &(task("click", "binary", "")
            + &task(
                "conv",
                "binary",
                "column = \"conv_masked\"\nmissing = \"mask\"",
            )
            + &task("watch", "regression", "column = \"watch_ms\"")),
        SHARED_BOTTOM,
        "",
    );
    let device = default_device();
    let model = train(&full.cfg, &full.data, &device, &mut NullObserver)
        .unwrap()
        .model;

    // Metrics: click and watch identical to the last bit; conv on its labelled rows only.
    let a = eval(&full, &model, &full.data.test);
    let b = eval(&masked, &model, &masked.data.test);
    assert_eq!(a.tasks[0].metrics, b.tasks[0].metrics);
    assert_eq!(a.tasks[2].metrics, b.tasks[2].metrics);
    let test = &masked.data.test;
    let labelled: Vec<bool> = test
        .weights_of_task(1)
        .unwrap()
        .iter()
        .map(|&w| w > 0.0)
        .collect();
    let n = labelled.iter().filter(|&&k| k).count();
    assert!(
        n > 100 && n < test.n_rows - 100,
        "{n} of {} labelled",
        test.n_rows
    );
    let preds = predict(&model, test, &test_kinds(&masked), 512, &device);
    let (p, y) = (
        pick(&preds[1], &labelled),
        pick(&test.labels_of_task(1), &labelled),
    );
    let conv = &b.tasks[1].metrics;
    assert_eq!((conv.n, conv.weight_sum), (n, None));
    assert!((conv.auc.unwrap() - brute_auc(&p, &y, &vec![1.0; n])).abs() < 1e-12);
    assert!((conv.logloss.unwrap() - brute_logloss(&p, &y, &vec![1.0; n])).abs() < 1e-9);

    // Losses of one batch: click and watch identical; conv the plain mean over its labelled
    // rows, i.e. the loss of the batch with the other rows left out.
    let inner = model.models()[0].clone();
    let first = |t: &EncodedTable| batches(t, 300, None).next().unwrap();
    let losses = |t: &EncodedTable| -> Vec<f32> {
        let b = first(t);
        let out = inner.forward(&input_of(&b, &device)).outputs;
        weighted_task_losses(
            out,
            labels_of(&b, &device),
            weights_of(&b, &device),
            &test_kinds(&masked),
        )
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
    };
    let (lf, lm) = (losses(&full.data.train), losses(&masked.data.train));
    assert_eq!((lf[0], lf[2]), (lm[0], lm[2]));
    let rows: Vec<usize> = (0..300)
        .filter(|&r| masked.data.train.label_weight_row(r).unwrap()[1] > 0.0)
        .collect();
    let subset = first(&masked.data.train.select(&rows));
    let out = inner.forward(&input_of(&subset, &device)).outputs;
    let plain: Vec<f32> = task_losses(out, labels_of(&subset, &device), &test_kinds(&masked))
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert!((lm[1] - plain[1]).abs() < 1e-5, "{} vs {}", lm[1], plain[1]);
    assert!(
        (lm[1] - lf[1]).abs() > 1e-4,
        "the masked rows must have mattered"
    );
}

fn test_kinds(s: &Setup) -> Vec<mtrec_data::TaskKind> {
    s.data.meta().task_kinds
}

#[test]
fn a_conditional_task_is_scored_on_the_rows_its_given_task_is_positive() {
    let s = setup(
        &(task("click", "binary", "") + &task("conv", "binary", "given = \"click\"")),
        SHARED_BOTTOM,
        "",
    );
    let clicked =
        |t: &EncodedTable| -> Vec<bool> { t.labels_of_task(0).iter().map(|&y| y > 0.5).collect() };
    let train_clicks = clicked(&s.data.train).iter().filter(|&&c| c).count();
    assert_eq!(s.data.train.labelled_rows(1), train_clicks);
    assert_eq!(s.data.train.labelled_rows(0), s.data.train.n_rows);

    let device = default_device();
    let outcome = train(&s.cfg, &s.data, &device, &mut NullObserver).unwrap();
    let test = &s.data.test;
    let keep = clicked(test);
    let preds = predict(&outcome.model, test, &test_kinds(&s), 512, &device);
    let (p, y) = (pick(&preds[1], &keep), pick(&test.labels_of_task(1), &keep));
    let n = p.len();
    let conv = &outcome.test.tasks[1].metrics;
    assert_eq!(conv.n, n);
    let by_hand = brute_auc(&p, &y, &vec![1.0; n]);
    assert!(
        (conv.auc.unwrap() - by_hand).abs() < 1e-12,
        "{conv:?} vs {by_hand}"
    );
    // Scored on every row instead, the conversion would look far easier (every unclicked
    // row is a negative the click signal ranks low): the figure is the conditional one.
    let all = brute_auc(&preds[1], &test.labels_of_task(1), &vec![1.0; test.n_rows]);
    assert!((all - by_hand).abs() > 1e-3, "{all} vs {by_hand}");
    assert_eq!(outcome.test.tasks[0].metrics.n, test.n_rows);
}

#[test]
fn weighted_auc_and_logloss_equal_hand_computed_values() {
    let s = setup(
        &(task("click", "binary", "weight = \"w\"") + &task("conv", "binary", "")),
        SHARED_BOTTOM,
        "",
    );
    let device = default_device();
    let outcome = train(&s.cfg, &s.data, &device, &mut NullObserver).unwrap();
    let test = &s.data.test;
    let w = test.weights_of_task(0).unwrap();
    assert!(w.iter().any(|&v| v != 1.0));
    let preds = predict(&outcome.model, test, &test_kinds(&s), 512, &device);
    let y = test.labels_of_task(0);
    let click = &outcome.test.tasks[0].metrics;
    assert_eq!(click.n, test.n_rows);
    let w_sum: f64 = w.iter().map(|&v| f64::from(v)).sum();
    assert!((click.weight_sum.unwrap() - w_sum).abs() < 1e-9);
    assert!((click.auc.unwrap() - brute_auc(&preds[0], &y, &w)).abs() < 1e-12);
    assert!((click.logloss.unwrap() - brute_logloss(&preds[0], &y, &w)).abs() < 1e-9);
    // Unweighted, the figures differ: the weights were used.
    let ones = vec![1.0; w.len()];
    assert!((click.auc.unwrap() - brute_auc(&preds[0], &y, &ones)).abs() > 1e-6);
    // The conv task has no weights: plain figures, no weight sum.
    assert_eq!(outcome.test.tasks[1].metrics.weight_sum, None);
}

#[test]
fn a_target_in_milliseconds_trains_beside_a_binary_task_and_predicts_on_its_own_scale() {
    let mut both = setup(
        &(task("click", "binary", "") + &task("watch", "regression", "column = \"watch_ms\"")),
        SHARED_BOTTOM,
        "",
    );
    let mut alone = setup(&task("click", "binary", ""), SHARED_BOTTOM, "");
    both.cfg.train.epochs = 10;
    alone.cfg.train.epochs = 10;
    let device = default_device();
    let with_watch = train(&both.cfg, &both.data, &device, &mut NullObserver).unwrap();
    let click_only = train(&alone.cfg, &alone.data, &device, &mut NullObserver).unwrap();
    let auc = |o: &mtrec_engine::TrainOutcome| o.test.tasks[0].metrics.auc.unwrap();
    assert!(
        auc(&click_only) > 0.7,
        "the click task is learnable: {}",
        auc(&click_only)
    );
    assert!(
        auc(&with_watch) > auc(&click_only) - 0.02,
        "with watch time {} vs alone {}",
        auc(&with_watch),
        auc(&click_only)
    );

    let test = &both.data.test;
    let stats = both.data.preprocessor.label_stats[1];
    assert!(stats.mean > 9e5 && stats.std > 1e5, "{stats:?}");
    let preds = predict(&with_watch.model, test, &test_kinds(&both), 512, &device);
    let labels = test.labels_of_task(1);
    let mean = |v: &[f32]| v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
    let (mp, ml) = (mean(&preds[1]), mean(&labels));
    assert!(
        (mp - ml).abs() < 0.1 * f64::from(stats.std),
        "mean prediction {mp} vs mean label {ml}"
    );
    // MSE is reported on the label's own scale; the loss takes it on the training scale.
    let mse: f64 = preds[1]
        .iter()
        .zip(&labels)
        .map(|(&p, &y)| (f64::from(p) - f64::from(y)).powi(2))
        .sum::<f64>()
        / labels.len() as f64;
    let reported = with_watch.test.tasks[1].metrics.mse.unwrap();
    assert!((reported - mse).abs() < 1e-6 * mse, "{reported} vs {mse}");
    let var = f64::from(stats.std).powi(2);
    assert!(
        reported < 0.5 * var,
        "watch time is learnt: MSE {reported}, variance {var}"
    );
    let logloss = with_watch.test.tasks[0].metrics.logloss.unwrap();
    let want = 0.5 * (logloss + reported / var);
    assert!(
        (with_watch.test.loss - want).abs() < 1e-9,
        "{} vs {want}",
        with_watch.test.loss
    );
}

/// Click, conversion given click with missing labels, and a weighted watch time.
fn partial_tasks() -> String {
    task("click", "binary", "")
        + &task(
            "conv",
            "binary",
            "column = \"conv_masked\"\nmissing = \"mask\"\ngiven = \"click\"",
        )
        + &task(
            "watch",
            "regression",
            "column = \"watch_ms\"\nweight = \"w\"",
        )
}

#[test]
fn every_weighting_and_masking_scheme_trains_on_partial_labels() {
    let mmoe = "kind = \"mmoe\"\nn_experts = 2\nexpert = [8]\ntower = [4]";
    let runs = [
        "",
        "[weighting]\nkind = \"uncertainty\"",
        "[weighting]\nkind = \"meta-balance\"",
        "[scheme]\nkind = \"lt4rec\"\nrounds = 1\nround_epochs = 1",
        "[scheme]\nkind = \"csm\"\nprune_epochs = 1",
    ];
    for extra in runs {
        let mut s = setup(&partial_tasks(), mmoe, extra);
        s.cfg.train.epochs = 1;
        check_tasks(&s.cfg, &s.data, s.dir.path()).unwrap();
        let outcome = train(&s.cfg, &s.data, &default_device(), &mut NullObserver)
            .unwrap_or_else(|e| panic!("{extra}: {e}"));
        assert!(outcome.history[0].train_loss.is_finite(), "{extra}");
        let test = &s.data.test;
        let m = |t: usize| &outcome.test.tasks[t].metrics;
        assert_eq!(m(1).n, test.labelled_rows(1), "{extra}");
        assert!(
            m(1).n < test.n_rows && m(1).auc.is_some(),
            "{extra}: {:?}",
            m(1)
        );
        assert!(
            m(2).weight_sum.is_some() && m(2).mse.unwrap().is_finite(),
            "{extra}"
        );
    }
}

#[test]
fn cross_distil_and_esmm_refuse_what_they_cannot_honour() {
    let s = setup(
        &partial_tasks(),
        SHARED_BOTTOM,
        "[scheme]\nkind = \"cross-distil\"",
    );
    let e = check_tasks(&s.cfg, &s.data, s.dir.path())
        .unwrap_err()
        .to_string();
    let schema = s.dir.path().join("s.toml").display().to_string();
    // INPUTS takes 7 lines; the conv task's `[[tasks]]` is line 7 + 4 + 1 = 12.
    assert!(
        e.starts_with(&format!("{schema}:12: [scheme] kind = \"cross-distil\" needs every task labelled on every row with weight 1, but task `conv` has `given = \"click\"`")),
        "{e}"
    );
    let e = train(&s.cfg, &s.data, &default_device(), &mut NullObserver).unwrap_err();
    assert!(e.to_string().contains("cross-distil"), "{e}");

    let esmm = setup(
        &(task("click", "binary", "") + &task("conv", "binary", "given = \"click\"")),
        "kind = \"esmm\"\ntower = [8]",
        "",
    );
    let e = check_tasks(&esmm.cfg, &esmm.data, esmm.dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("model `esmm` needs no task conditional on another, but task `conv` has `given = \"click\"`"),
        "{e}"
    );
    // Masked conversions are fine for ESMM: both of its losses take the weights.
    let masked = setup(
        &(task("click", "binary", "")
            + &task(
                "conv",
                "binary",
                "column = \"conv_masked\"\nmissing = \"mask\"",
            )),
        "kind = \"esmm\"\ntower = [8]",
        "",
    );
    check_tasks(&masked.cfg, &masked.data, masked.dir.path()).unwrap();
    let outcome = train(
        &masked.cfg,
        &masked.data,
        &default_device(),
        &mut NullObserver,
    )
    .unwrap();
    let cvr = outcome.test.task("cvr").expect("ESMM's derived CVR");
    let test = &masked.data.test;
    let clicked_and_labelled = (0..test.n_rows)
        .filter(|&r| test.label_row(r)[0] > 0.5 && test.label_weight_row(r).unwrap()[1] > 0.0)
        .count();
    assert_eq!(cvr.n, clicked_and_labelled);
}

#[test]
fn the_search_trains_on_partial_labels() {
    let automtl = r#"kind = "automtl"
        n_layers = 1
        n_experts = 2
        n_blocks = 1
        block_width = 8
        candidates = ["identity", "mlp-8"]
        tower = [4]"#;
    let search_cfg = r#"[search]
        warmup_epochs = 1
        joint_epochs = 1
        blocks_per_epoch = 2
        batch_size = 256
        max_batches_per_epoch = 4"#;
    let mut s = setup(&partial_tasks(), automtl, search_cfg);
    s.cfg.train.epochs = 1;
    s.cfg.train.max_batches_per_epoch = 4;
    let out = search(&s.cfg, &s.data, &default_device(), &mut NullObserver).unwrap();
    assert!(out.log.epochs.iter().all(|e| e.train_loss.is_finite()));
    assert_eq!(
        out.finetune.test.tasks[1].metrics.n,
        s.data.test.labelled_rows(1)
    );
}
