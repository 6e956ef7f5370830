//! Choosing the next trial: the first `initial` trials come from a Latin hypercube (spread
//! over every range at once, so the surrogate starts with a view of the whole space), then
//! each trial is the point of highest expected improvement under a GP fitted to all finished
//! trials.
//!
//! The acquisition is maximised over a few thousand random points of the space plus
//! perturbations of the best trials so far, then refined by a short stochastic hill climb
//! from the best few: EI is cheap to evaluate and has many flat regions (where it underflows)
//! and narrow peaks, which sampling finds more reliably than gradients, and every candidate
//! is snapped (integers rounded, choices one-hot) so EI is judged at configs that can run.
//!
//! A proposal depends only on the space (its seed) and the finished trials, with a random
//! stream per trial number, so a tuning that is stopped and resumed proposes exactly what an
//! uninterrupted one would have.
//!
//! Failed trials enter the surrogate at the worst value seen so far: it steers away from
//! configs that do not train instead of proposing them again.

use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::acquisition::expected_improvement;
use crate::gp::Gp;
use crate::space::{ParamKind, Space};

/// A finished trial as the optimiser sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The encoded point (see [`Space::encode`]).
    pub x: Vec<f64>,
    /// The objective in "bigger is better" form ([`crate::Objective::score`]); `None` for a
    /// failed trial.
    pub score: Option<f64>,
}

/// How a proposal was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The initial Latin hypercube.
    Design,
    /// Maximum expected improvement under the GP.
    Gp,
    /// Uniformly at random: fewer than two successful trials to fit a GP to, or random search.
    Random,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    pub x: Vec<f64>,
    pub source: Source,
    /// The expected improvement at `x`, for GP proposals (on the objective's scale).
    pub expected_improvement: Option<f64>,
}

const RANDOM_CANDIDATES: usize = 2000;
/// Perturbations around each of the best trials, at each of two step sizes.
const LOCAL_CANDIDATES: usize = 50;
const INCUMBENTS: usize = 3;
const REFINE_STARTS: usize = 5;
const REFINE_STEPS: usize = 40;
/// The improvement margin, in standard deviations of the observed scores. None: the common
/// 0.01 stalled near the optimum on Branin, whose spread of values (0.4 to 300) makes even a
/// hundredth of it larger than the improvements left to find there; a GP that interpolates
/// (its noise is fitted) already stops proposing points it has seen.
const XI: f64 = 0.0;

/// The next trial after `history` (every finished trial, failed ones included, in order).
pub fn propose(space: &Space, history: &[Observation]) -> Proposal {
    let trial = history.len();
    if trial < space.initial {
        let design = space.latin_hypercube(space.initial, &mut rng_for(space.seed, 0));
        return Proposal {
            x: design[trial].clone(),
            source: Source::Design,
            expected_improvement: None,
        };
    }
    let mut rng = rng_for(space.seed, trial as u64 + 1);
    let xs: Vec<Vec<f64>> = history.iter().map(|o| o.x.clone()).collect();
    let scores: Vec<f64> = history.iter().filter_map(|o| o.score).collect();
    if scores.len() < 2 {
        return random(space, &mut rng, &xs);
    }
    let worst = scores.iter().copied().fold(f64::INFINITY, f64::min);
    let best = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let ys: Vec<f64> = history.iter().map(|o| o.score.unwrap_or(worst)).collect();
    let Ok(gp) = Gp::fit(xs.clone(), &ys) else {
        return random(space, &mut rng, &xs);
    };
    let mean = scores.iter().sum::<f64>() / scores.len() as f64;
    let sd = (scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / scores.len() as f64).sqrt();
    let ei = |x: &[f64]| {
        let (m, v) = gp.predict(x);
        expected_improvement(m, v, best, XI * sd)
    };
    let mut incumbents: Vec<&Observation> = history.iter().filter(|o| o.score.is_some()).collect();
    incumbents.sort_by(|a, b| {
        b.score
            .partial_cmp(&a.score)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut candidates: Vec<Vec<f64>> = (0..RANDOM_CANDIDATES)
        .map(|_| space.sample(&mut rng))
        .collect();
    for inc in incumbents.iter().take(INCUMBENTS) {
        for step in [0.1, 0.02] {
            for _ in 0..LOCAL_CANDIDATES {
                candidates.push(perturb(space, &inc.x, step, 0.1, &mut rng));
            }
        }
    }
    let mut scored: Vec<(f64, Vec<f64>)> = candidates.into_iter().map(|x| (ei(&x), x)).collect();
    sort_descending(&mut scored);
    scored.dedup_by(|a, b| a.1 == b.1);
    let starts: Vec<(f64, Vec<f64>)> = scored.iter().take(REFINE_STARTS).cloned().collect();
    for (mut value, mut x) in starts {
        let mut step = 0.05;
        for t in 0..REFINE_STEPS {
            if t > 0 && t % 10 == 0 {
                step /= 2.0;
            }
            let y = perturb(space, &x, step, 0.05, &mut rng);
            let v = ei(&y);
            if v > value {
                (value, x) = (v, y);
            }
        }
        scored.push((value, x));
    }
    sort_descending(&mut scored);
    // A config already run teaches nothing new (training is seeded): take the best other one.
    match scored.into_iter().find(|(_, x)| !xs.contains(x)) {
        Some((value, x)) => Proposal {
            x,
            source: Source::Gp,
            expected_improvement: Some(value),
        },
        None => random(space, &mut rng, &xs),
    }
}

/// Random search with the same seeding scheme: the baseline the tests hold the GP against.
pub fn propose_random(space: &Space, history: &[Observation]) -> Proposal {
    let seen: Vec<Vec<f64>> = history.iter().map(|o| o.x.clone()).collect();
    random(
        space,
        &mut rng_for(space.seed, history.len() as u64 + 1),
        &seen,
    )
}

/// A random point not in `seen`, where a few hundred draws find one (a small discrete space
/// may be used up: then any point).
fn random(space: &Space, rng: &mut ChaCha8Rng, seen: &[Vec<f64>]) -> Proposal {
    let mut x = space.sample(rng);
    for _ in 0..300 {
        if !seen.contains(&x) {
            break;
        }
        x = space.sample(rng);
    }
    Proposal {
        x,
        source: Source::Random,
        expected_improvement: None,
    }
}

fn rng_for(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

fn sort_descending(v: &mut [(f64, Vec<f64>)]) {
    v.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
}

/// A nearby point: numeric coordinates moved by `N(0, step^2)`, each choice switched to
/// another value with probability `flip`; snapped.
fn perturb(space: &Space, x: &[f64], step: f64, flip: f64, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let mut y = x.to_vec();
    let mut at = 0;
    for p in &space.params {
        match &p.kind {
            ParamKind::Choice { values } => {
                let k = values.len();
                if rng.random::<f64>() < flip {
                    let current = (0..k).position(|i| y[at + i] == 1.0).unwrap_or(0);
                    let other = (current + rng.random_range(1..k)) % k;
                    for i in 0..k {
                        y[at + i] = if i == other { 1.0 } else { 0.0 };
                    }
                }
                at += k;
            }
            _ => {
                let z: f64 = rng.sample(StandardNormal);
                y[at] = (y[at] + step * z).clamp(0.0, 1.0);
                at += 1;
            }
        }
    }
    space.snap(&y)
}
