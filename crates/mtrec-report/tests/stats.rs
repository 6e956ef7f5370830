//! Statistics against values worked out independently: by hand where the arithmetic is short,
//! else from scipy 1.17.1 (`scipy.stats`, run once in a throwaway virtualenv; the calls are in
//! each test's comment) and, for Wilcoxon with ties, a brute-force enumeration of all sign
//! assignments in plain Python that agrees with scipy's permutation method.

use mtrec_report::stats::{
    DeltaTask, PMethod, TestKind, delta_m, paired_t_test, summarize, t_quantile, welch_t_test,
    wilcoxon_signed_rank,
};
use mtrec_report::{Metric, RunError, load_run};

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn t_quantiles_match_the_tables() {
    // Printed t tables: t(0.975; 1) = 12.706, t(0.975; 4) = 2.776; scipy.stats.t.ppf gives
    // 12.706204736174694 and 2.7764451051977934.
    assert!(close(t_quantile(0.975, 1.0), 12.706204736174694, 1e-9));
    assert!(close(t_quantile(0.975, 4.0), 2.7764451051977934, 1e-9));
}

#[test]
fn ci_of_two_runs_is_wide() {
    // By hand: mean 2, std sqrt(2), standard error sqrt(2)/sqrt(2) = 1, so the interval is
    // 2 ± t(0.975; 1) = 2 ± 12.7062 (scipy.stats.t.interval: -10.706204736174694, 14.706...).
    let s = summarize(&[1.0, 3.0]);
    assert_eq!(s.n, 2);
    assert_eq!(s.mean, 2.0);
    assert!(close(s.std, 2f64.sqrt(), 1e-15));
    let (lo, hi) = s.ci95.unwrap();
    assert!(close(lo, -10.706204736174694, 1e-9), "{lo}");
    assert!(close(hi, 14.706204736174694, 1e-9), "{hi}");
}

#[test]
fn ci_of_five_seeds() {
    // scipy.stats.t.interval(0.95, 4, loc=mean, scale=sem): (0.9480610054834576,
    // 0.9489389945165426); std (ddof=1) 0.00035355339059327403, mean 0.9485.
    let s = summarize(&[0.9480, 0.9489, 0.9483, 0.9487, 0.9486]);
    assert!(close(s.mean, 0.9485, 1e-12));
    assert!(close(s.std, 0.00035355339059327403, 1e-12));
    let (lo, hi) = s.ci95.unwrap();
    assert!(close(lo, 0.9480610054834576, 1e-10), "{lo}");
    assert!(close(hi, 0.9489389945165426, 1e-10), "{hi}");
    assert_eq!(s.show(4), "0.9485 ± 0.0004 [0.9481, 0.9489] (n=5)");
}

#[test]
fn one_run_has_no_interval_and_no_invented_spread() {
    let s = summarize(&[0.7]);
    assert_eq!((s.n, s.std, s.ci95), (1, 0.0, None));
    assert_eq!(s.show(3), "0.700 (n=1)");
    let empty = summarize(&[]);
    assert!(empty.mean.is_nan() && empty.ci95.is_none());
    // NaN is written as JSON null, not as an invalid token.
    let json = serde_json::to_value(&empty).unwrap();
    assert!(json["mean"].is_null(), "{json}");
}

#[test]
fn paired_t_matches_scipy() {
    // scipy.stats.ttest_rel(a, b): statistic 2.803059552906938, pvalue 0.03785673467687626.
    let a = [0.71, 0.74, 0.69, 0.73, 0.75, 0.70];
    let b = [0.70, 0.71, 0.70, 0.70, 0.72, 0.68];
    let r = paired_t_test(&a, &b).unwrap();
    assert_eq!(
        (r.test, r.method, r.n, r.df),
        (TestKind::PairedT, PMethod::TDistribution, 6, Some(5.0))
    );
    assert!(
        close(r.statistic, 2.803059552906938, 1e-9),
        "{}",
        r.statistic
    );
    assert!(close(r.p_value, 0.03785673467687626, 1e-9), "{}", r.p_value);
    assert!(close(r.mean_diff, 0.01833333333333333, 1e-12));
    // Swapping the sides flips t, keeps p.
    let s = paired_t_test(&b, &a).unwrap();
    assert!(close(s.statistic, -r.statistic, 1e-12) && close(s.p_value, r.p_value, 1e-12));
    assert!(paired_t_test(&a[..1], &b[..1]).is_none());
    assert!(paired_t_test(&a, &b[..5]).is_none());
}

#[test]
fn paired_t_without_spread() {
    // Identical runs: no evidence of a difference. A constant shift: certain.
    let r = paired_t_test(&[1.0, 2.0], &[1.0, 2.0]).unwrap();
    assert_eq!((r.statistic, r.p_value), (0.0, 1.0));
    let r = paired_t_test(&[1.5, 2.5], &[1.0, 2.0]).unwrap();
    assert_eq!((r.statistic, r.p_value), (f64::INFINITY, 0.0));
}

#[test]
fn welch_matches_scipy() {
    // scipy.stats.ttest_ind(x, y, equal_var=False): statistic -2.225512039969852,
    // pvalue 0.035484530830010394, df 24.524634944257343.
    let x = [19.8, 20.4, 19.6, 17.8, 18.5, 18.9, 18.3, 18.9, 19.5, 22.0];
    let y = [
        28.2, 26.6, 20.1, 23.3, 25.2, 22.1, 17.7, 27.6, 20.6, 13.7, 23.2, 17.5, 20.6, 18.0, 23.9,
        21.6, 24.3, 20.4, 23.9, 13.3,
    ];
    let r = welch_t_test(&x, &y).unwrap();
    assert_eq!((r.test, r.n), (TestKind::WelchT, 30));
    assert!(
        close(r.statistic, -2.225512039969852, 1e-9),
        "{}",
        r.statistic
    );
    assert!(
        close(r.p_value, 0.035484530830010394, 1e-9),
        "{}",
        r.p_value
    );
    assert!(close(r.df.unwrap(), 24.524634944257343, 1e-9));
    assert!(welch_t_test(&x[..1], &y).is_none());
}

#[test]
#[allow(clippy::approx_constant)] // 3.14 is a measurement in the data, not π.
fn wilcoxon_exact_without_ties() {
    // Hollander & Wolfe's depression data (R's ?wilcox.test example): R gives V = 40,
    // p-value = 0.03906; scipy.stats.wilcoxon(a, b, method='exact') 0.0390625 (= 20/512) with
    // statistic min(V, 45 - V) = 5. By hand: the negative differences -0.08 and -0.147 have
    // ranks 2 and 3, so V = 45 - 5 = 40.
    let a = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30];
    let b = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29];
    let r = wilcoxon_signed_rank(&a, &b).unwrap();
    assert_eq!(
        (r.test, r.method, r.n, r.zeros),
        (TestKind::Wilcoxon, PMethod::Exact, 9, 0)
    );
    assert_eq!(r.statistic, 40.0);
    assert!(close(r.p_value, 0.0390625, 1e-12), "{}", r.p_value);
}

#[test]
fn wilcoxon_exact_with_ties_and_a_zero() {
    // d = a - b = [0.5, -0.5, 2, 1, 0, 3, 3]: the zero is dropped, |d| ranks are
    // [1.5, 1.5, 4, 3, 5.5, 5.5], V = 19.5. Enumerating the 2^6 sign assignments in Python
    // gives p = 0.09375 (= 6/64: 3 assignments have a sum >= 19.5, 3 a sum <= 1.5);
    // scipy.stats.wilcoxon(..., method=PermutationMethod()) agrees.
    let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
    let b = [0.5, 2.5, 1.0, 3.0, 5.0, 3.0, 4.0];
    let r = wilcoxon_signed_rank(&a, &b).unwrap();
    assert_eq!((r.method, r.n, r.zeros), (PMethod::Exact, 7, 1));
    assert_eq!(r.statistic, 19.5);
    assert!(close(r.p_value, 0.09375, 1e-12), "{}", r.p_value);
}

#[test]
fn wilcoxon_four_seeds_cannot_reach_five_percent() {
    // All four differences positive: the most extreme of 2^4 assignments, p = 2/16.
    let r = wilcoxon_signed_rank(&[2.0, 3.0, 4.0, 5.0], &[1.0, 1.0, 1.0, 1.0]).unwrap();
    assert_eq!(r.statistic, 10.0);
    assert!(close(r.p_value, 0.125, 1e-15));
}

#[test]
fn wilcoxon_normal_approximation_for_many_pairs() {
    // 60 differences rounded to 0.1 (many ties, 5 zeros: 55 ranked > 50, so approximated).
    // scipy.stats.wilcoxon(d, method='approx', zero_method='wilcox', correction=False):
    // statistic min(V, W-) = 440 (V = 1100 of 55*56/2 = 1540), pvalue 0.005644653123391817.
    let d = [
        0.0, 0.0, 0.0, 0.4, -0.2, 0.7, 1.6, 1.2, -0.4, -1.0, -0.3, 0.3, -2.0, 0.1, -0.9, -0.4,
        -0.2, -0.0, 0.7, 1.3, 0.2, 1.7, -0.4, 0.7, 1.2, 0.4, -0.4, -0.6, -0.2, 0.5, -0.7, 0.1, 0.1,
        0.8, 0.5, 0.7, -0.4, 0.2, 1.1, 1.8, -1.0, 1.8, 1.6, 1.1, 0.6, -0.0, 1.8, 2.3, 2.1, 1.6,
        0.7, -0.9, 0.3, 1.0, -1.0, 0.7, 0.7, 1.0, -0.9, -0.4,
    ];
    let zero = [0.0; 60];
    let r = wilcoxon_signed_rank(&d, &zero).unwrap();
    assert_eq!(
        (r.method, r.n, r.zeros),
        (PMethod::NormalApproximation, 60, 5)
    );
    assert_eq!(r.statistic, 1100.0);
    assert!(
        close(r.p_value, 0.005644653123391817, 1e-10),
        "{}",
        r.p_value
    );
}

#[test]
fn delta_m_counts_a_lower_mse_as_a_gain() {
    // By hand: AUC 0.95 vs 0.94 is +0.01/0.94 = +1.0638298 %; MSE 4 vs 5 is a 20 % drop,
    // +20 % since lower is better; the average is 10.5319149 %.
    let tasks = [
        DeltaTask {
            model: 0.95,
            single: 0.94,
            lower_is_better: false,
        },
        DeltaTask {
            model: 4.0,
            single: 5.0,
            lower_is_better: true,
        },
    ];
    assert!(close(delta_m(&tasks).unwrap(), 10.531914893617, 1e-9));
    // A worse MSE is a loss: -25 % (5 vs 4), with the AUC task unchanged: -12.5 %.
    let worse = [
        DeltaTask {
            model: 0.94,
            single: 0.94,
            lower_is_better: false,
        },
        DeltaTask {
            model: 5.0,
            single: 4.0,
            lower_is_better: true,
        },
    ];
    assert!(close(delta_m(&worse).unwrap(), -12.5, 1e-12));
    assert!(delta_m(&[]).is_none());
    assert!(
        delta_m(&[DeltaTask {
            model: 1.0,
            single: 0.0,
            lower_is_better: true
        }])
        .is_none()
    );
}

#[test]
fn test_results_serialize_with_their_method() {
    let r = wilcoxon_signed_rank(&[2.0, 3.0], &[1.0, 1.0]).unwrap();
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["test"], "wilcoxon");
    assert_eq!(json["method"], "exact");
    let t = serde_json::to_value(paired_t_test(&[2.0, 3.5], &[1.0, 1.0]).unwrap()).unwrap();
    assert_eq!(
        (t["test"].as_str(), t["method"].as_str()),
        (Some("paired-t"), Some("t-distribution"))
    );
}

fn write_run(dir: &std::path::Path, metrics: serde_json::Value, config: Option<&str>) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("metrics.json"), metrics.to_string()).unwrap();
    if let Some(c) = config {
        std::fs::write(dir.join("config.toml"), c).unwrap();
    }
}

#[test]
fn load_run_takes_the_seed_from_the_saved_config() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mmoe-s3");
    write_run(
        &dir,
        serde_json::json!({"name": "census-g1-mmoe", "model": "mmoe", "wall_seconds": 21.5,
            "test_loss": 0.1,
            "tasks": {"income": {"auc": 0.948, "logloss": 0.12, "n": 100},
                      "age": {"mse": 3.5, "n": 100},
                      "one-class": {"auc": null, "n": 5}}}),
        Some("name = \"census-g1-mmoe\"\n[train]\nseed = 3\nepochs = 2\n"),
    );
    let run = load_run(&dir).unwrap();
    assert_eq!(run.name, "census-g1-mmoe");
    assert_eq!(run.model, "mmoe");
    assert_eq!(run.seed, Some(3));
    assert_eq!(run.wall_seconds, Some(21.5));
    assert_eq!(run.search_seconds, None);
    assert_eq!(run.tasks["income"].metric, Metric::Auc);
    assert_eq!(run.tasks["income"].logloss, Some(0.12));
    assert_eq!(
        (run.tasks["age"].metric, run.tasks["age"].value),
        (Metric::Mse, 3.5)
    );
    assert!(!run.tasks.contains_key("one-class"));
    assert_eq!(run.dir, dir);
    // The metrics file itself names the same run.
    let direct = load_run(&dir.join("metrics.json")).unwrap();
    assert_eq!((direct.dir, direct.seed), (dir.clone(), Some(3)));
}

#[test]
fn a_seed_in_the_metrics_wins_and_no_config_means_no_seed() {
    let tmp = tempfile::tempdir().unwrap();
    let with = tmp.path().join("a");
    write_run(
        &with,
        serde_json::json!({"name": "x", "model": "mmoe", "seed": 7, "tasks": {}}),
        Some("[train]\nseed = 3\n"),
    );
    assert_eq!(load_run(&with).unwrap().seed, Some(7));
    let without = tmp.path().join("b");
    write_run(
        &without,
        serde_json::json!({"name": "x", "model": "mmoe", "tasks": {}}),
        None,
    );
    assert_eq!(load_run(&without).unwrap().seed, None);
}

#[test]
fn bad_runs_are_named_in_the_error() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("mmoe-s2.err");
    std::fs::write(&log, "WARN something\n").unwrap();
    let e = load_run(&log).unwrap_err();
    assert!(matches!(e, RunError::Json { .. }), "{e}");
    assert!(e.to_string().contains("mmoe-s2.err"), "{e}");

    let missing = tmp.path().join("nowhere");
    let e = load_run(&missing).unwrap_err().to_string();
    assert!(e.contains("nowhere") && e.contains("cannot read"), "{e}");

    let nameless = tmp.path().join("nameless");
    write_run(
        &nameless,
        serde_json::json!({"model": "mmoe", "tasks": {}}),
        None,
    );
    let e = load_run(&nameless).unwrap_err().to_string();
    assert!(e.contains("metrics.json") && e.contains("`name`"), "{e}");

    let bad_config = tmp.path().join("bad-config");
    write_run(
        &bad_config,
        serde_json::json!({"name": "x", "model": "mmoe", "tasks": {}}),
        Some("[train]\nseed = \"three\"\n"),
    );
    let e = load_run(&bad_config).unwrap_err().to_string();
    assert!(e.contains("config.toml") && e.contains("train.seed"), "{e}");
}
