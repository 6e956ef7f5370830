//! The optimiser on functions whose optimum is known, against random search with the same
//! budget and seeds, and a tuning stopped and resumed through its log.

use std::path::Path;

use mtrec_tune::{
    Assignment, Observation, Source, Space, TrialLog, TrialRecord, TrialStatus, propose,
    propose_random,
};

/// Branin-Hoo on [-5, 10] x [0, 15]: three global minima of 0.397887 at (-pi, 12.275),
/// (pi, 2.275) and (9.42478, 2.475) (Dixon & Szegö, 1978).
fn branin(a: &Assignment) -> f64 {
    let x1 = a["x1"].as_float().unwrap();
    let x2 = a["x2"].as_float().unwrap();
    let pi = std::f64::consts::PI;
    let b = 5.1 / (4.0 * pi * pi);
    let c = 5.0 / pi;
    let t = 1.0 / (8.0 * pi);
    (x2 - b * x1 * x1 + c * x1 - 6.0).powi(2) + 10.0 * (1.0 - t) * x1.cos() + 10.0
}

const BRANIN_MIN: f64 = 0.397_887_357_729_738;

fn branin_space(seed: u64, trials: usize) -> Space {
    let text = format!(
        "trials = {trials}\ninitial = 5\nseed = {seed}\n[objective]\nmetric = \"valid.loss\"\n\
         [[param]]\nkey = \"x1\"\nmin = -5.0\nmax = 10.0\n\
         [[param]]\nkey = \"x2\"\nmin = 0.0\nmax = 15.0\n"
    );
    Space::from_toml_str(&text, Path::new("branin.toml")).unwrap()
}

/// The lowest value found within the space's budget by `strategy`.
fn minimise(
    space: &Space,
    f: impl Fn(&Assignment) -> f64,
    strategy: fn(&Space, &[Observation]) -> mtrec_tune::Proposal,
) -> f64 {
    let mut history: Vec<Observation> = Vec::new();
    let mut best = f64::INFINITY;
    for _ in 0..space.trials {
        let p = strategy(space, &history);
        let value = f(&space.decode(&p.x));
        best = best.min(value);
        history.push(Observation {
            x: p.x,
            score: Some(space.objective.score(value)),
        });
    }
    best
}

#[test]
fn finds_the_branin_minimum_within_the_budget_and_beats_random_search() {
    let budget = 30;
    let seeds = 1..=5;
    let mut gp_regret = Vec::new();
    let mut random_regret = Vec::new();
    for seed in seeds {
        let space = branin_space(seed, budget);
        let gp = minimise(&space, branin, propose) - BRANIN_MIN;
        let random = minimise(&space, branin, propose_random) - BRANIN_MIN;
        // Within 0.05 of the optimum, i.e. about 1 % of the function's range near it.
        assert!(
            gp < 0.05,
            "seed {seed}: the GP got within {gp} of the minimum"
        );
        gp_regret.push(gp);
        random_regret.push(random);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (g, r) = (mean(&gp_regret), mean(&random_regret));
    assert!(
        g * 10.0 < r,
        "mean regret over the seeds: GP {g:.4} ({gp_regret:?}), random {r:.4} ({random_regret:?})"
    );
}

#[test]
fn finds_the_optimum_of_a_mixed_space() {
    // A shifted bowl in log(lr), an integer and a choice: the minimum 0 is at lr = 10^-2.5
    // (0.003162), n = 6, kind = "b".
    let text = "trials = 25\nseed = 7\n[objective]\nmetric = \"valid.loss\"\n\
        [[param]]\nkey = \"train.learning_rate\"\nmin = 1e-4\nmax = 1e-1\nlog = true\n\
        [[param]]\nkey = \"model.n\"\ntype = \"int\"\nmin = 1\nmax = 16\n\
        [[param]]\nkey = \"model.kind\"\nvalues = [\"a\", \"b\", \"c\"]\n";
    let space = Space::from_toml_str(text, Path::new("mixed.toml")).unwrap();
    let f = |a: &Assignment| {
        let lr = a["train.learning_rate"].as_float().unwrap();
        let n = a["model.n"].as_integer().unwrap() as f64;
        let kind = if a["model.kind"].as_str() == Some("b") {
            0.0
        } else {
            1.0
        };
        (lr.log10() + 2.5).powi(2) + ((n - 6.0) / 4.0).powi(2) + kind
    };
    let mut history = Vec::new();
    let mut best = (f64::INFINITY, Assignment::new());
    for _ in 0..space.trials {
        let p = propose(&space, &history);
        let a = space.decode(&p.x);
        let v = f(&a);
        if v < best.0 {
            best = (v, a);
        }
        history.push(Observation {
            x: p.x,
            score: Some(-v),
        });
    }
    let (value, a) = best;
    assert!(value < 0.02, "best {value} at {a:?}");
    assert_eq!(a["model.kind"].as_str(), Some("b"));
    assert_eq!(a["model.n"].as_integer(), Some(6));
}

#[test]
fn failed_trials_do_not_stop_the_search_and_are_not_proposed_again() {
    // Half the space "fails to train"; the optimiser must still find the minimum elsewhere.
    let space = branin_space(3, 30);
    let mut history: Vec<Observation> = Vec::new();
    let mut best = f64::INFINITY;
    let mut failed_points = Vec::new();
    for _ in 0..space.trials {
        let p = propose(&space, &history);
        let a = space.decode(&p.x);
        let fails = a["x1"].as_float().unwrap() > 5.0;
        assert!(
            !failed_points.contains(&p.x),
            "a failed config proposed again"
        );
        let score = if fails {
            failed_points.push(p.x.clone());
            None
        } else {
            let v = branin(&a);
            best = best.min(v);
            Some(-v)
        };
        history.push(Observation { x: p.x, score });
    }
    assert!(
        best - BRANIN_MIN < 0.05,
        "best {best} with failures in x1 > 5"
    );
}

#[test]
fn a_resumed_tuning_proposes_what_an_uninterrupted_one_would() {
    let space = branin_space(11, 12);
    let run = |log: &mut TrialLog, until: usize| {
        while log.records().len() < until {
            let history = log.observations(&space).unwrap();
            let p = propose(&space, &history);
            let params = space.decode(&p.x);
            let value = branin(&params);
            let trial = log.records().len() + 1;
            log.append(TrialRecord {
                trial,
                params,
                metric: space.objective.metric.to_string(),
                // Every fourth trial fails, to resume through failures too.
                objective: (!trial.is_multiple_of(4)).then_some(value),
                status: if !trial.is_multiple_of(4) {
                    TrialStatus::Ok
                } else {
                    TrialStatus::Failed
                },
                error: (trial.is_multiple_of(4)).then(|| "boom".to_string()),
                wall_seconds: 0.0,
                source: p.source,
                expected_improvement: p.expected_improvement,
                out: String::new(),
                command: String::new(),
            })
            .unwrap();
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.jsonl");
    run(&mut TrialLog::open(&whole).unwrap(), 12);
    let parts = dir.path().join("parts.jsonl");
    run(&mut TrialLog::open(&parts).unwrap(), 7);
    // A new process: only the file carries over.
    run(&mut TrialLog::open(&parts).unwrap(), 12);
    let a = TrialLog::open(&whole).unwrap();
    let b = TrialLog::open(&parts).unwrap();
    assert_eq!(a.records(), b.records());
    let sources: Vec<Source> = a.records().iter().map(|r| r.source).collect();
    assert_eq!(&sources[..5], &[Source::Design; 5]);
    assert!(sources[5..].iter().all(|s| *s == Source::Gp), "{sources:?}");
}
