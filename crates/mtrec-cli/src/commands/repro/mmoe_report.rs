//! What `mtrec repro mmoe-synthetic` makes of its runs: the learning rate per model, the
//! curves and final losses per (model, correlation) with their uncertainty, the paper's
//! observations tested one by one, the figures, and the files.
//!
//! Every observation is turned into comparisons of two samples of runs, each with Welch's
//! t-test (the runs of two cells share seeds, see `mmoe_synthetic`, which makes their
//! differences less noisy than Welch assumes: the test errs on the careful side). Where an
//! observation needs several comparisons at once ("in all scenarios"), their p-values are
//! Holm-adjusted, so that "significant" keeps its 5 % meaning for the observation as a whole.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell as TableCell, CellAlignment, Table};
use mtrec_report::plot::{
    BandPanel, BandPoint, BandSeries, Chart, Figure, HistogramGroup, HistogramPanel, ImageFormat,
    write_figure,
};
use mtrec_report::stats::{Summary, TestResult, format_p, summarize, t_quantile, welch_t_test};
use serde::Serialize;

use crate::atomic::write_atomically;

use super::mmoe_synthetic::{ModelKind, Phase, RunRecord, Settings};

/// Significance level of every test.
const ALPHA: f64 = 0.05;
/// "OMoE ≈ MMoE": the difference of their mean final losses at correlation 1.0 is within this
/// share of MMoE's mean, with 95 % confidence.
const EQUIVALENCE_MARGIN: f64 = 0.05;

/// The learning rate chosen for each model, with the pilot scores it was chosen on.
#[derive(Debug, Clone, Serialize)]
pub struct Rates(pub BTreeMap<ModelKind, RateChoice>);

#[derive(Debug, Clone, Serialize)]
pub struct RateChoice {
    pub chosen: f64,
    pub pilots: Vec<PilotScore>,
}

/// One learning rate's pilot runs of a model, over every correlation.
#[derive(Debug, Clone, Serialize)]
pub struct PilotScore {
    pub learning_rate: f64,
    pub runs: usize,
    pub failed: usize,
    /// Mean validation loss after the last step; `None` when a pilot failed (diverged), which
    /// rules the rate out.
    pub mean_valid_loss: Option<f64>,
}

impl Rates {
    pub fn chosen(&self, model: ModelKind) -> f64 {
        self.0[&model].chosen
    }
}

/// Scores every learning rate of every model on its pilot runs and picks the lowest mean
/// validation loss (the smaller rate on a tie). With one rate there is nothing to choose.
pub fn choose_learning_rates(settings: &Settings, records: &[RunRecord]) -> Result<Rates> {
    let mut rates = BTreeMap::new();
    for model in ModelKind::ALL {
        let mut pilots = Vec::new();
        for &lr in &settings.learning_rates {
            let runs: Vec<&RunRecord> = records
                .iter()
                .filter(|r| {
                    r.phase == Phase::Pilot
                        && r.model == model
                        && r.learning_rate == lr
                        && r.run < settings.pilots
                        && settings.correlations.contains(&r.correlation)
                })
                .collect();
            let expected = settings.pilots * settings.correlations.len();
            if runs.len() < expected && settings.learning_rates.len() > 1 {
                bail!(
                    "{}: {} of {expected} pilot runs at learning rate {lr:e} are recorded",
                    model.label(),
                    runs.len()
                );
            }
            let losses: Vec<f64> = runs.iter().filter_map(|r| r.final_valid_loss()).collect();
            let failed = runs.len() - losses.len();
            pilots.push(PilotScore {
                learning_rate: lr,
                runs: runs.len(),
                failed,
                mean_valid_loss: (failed == 0 && !losses.is_empty())
                    .then(|| losses.iter().sum::<f64>() / losses.len() as f64),
            });
        }
        let chosen = if settings.learning_rates.len() == 1 {
            settings.learning_rates[0]
        } else {
            pilots
                .iter()
                .filter_map(|p| p.mean_valid_loss.map(|l| (l, p.learning_rate)))
                .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)))
                .map(|(_, lr)| lr)
                .with_context(|| {
                    format!(
                        "{}: a pilot run failed at every learning rate; nothing to choose",
                        model.label()
                    )
                })?
        };
        rates.insert(model, RateChoice { chosen, pilots });
    }
    Ok(Rates(rates))
}

/// The learning-curve statistics of a cell: at each step, over its finished runs.
#[derive(Debug, Clone, Serialize)]
pub struct CurveSummary {
    pub steps: Vec<usize>,
    pub n: Vec<usize>,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    pub ci95_low: Vec<Option<f64>>,
    pub ci95_high: Vec<Option<f64>>,
}

/// One (model, correlation) of the study.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub model: ModelKind,
    pub correlation: f64,
    pub learning_rate: f64,
    /// Runs recorded for the cell (`--runs` of them once the study is complete).
    pub runs: usize,
    pub failed: usize,
    /// The failures' messages, one per distinct message.
    pub errors: Vec<String>,
    /// The test loss after the last step, over the finished runs, in run order.
    #[serde(rename = "final")]
    pub final_loss: Summary,
    /// The run index of each value of `final.values`.
    pub final_runs: Vec<usize>,
    pub curve: CurveSummary,
}

impl Cell {
    /// The final loss of run `run`, if it finished.
    fn final_of(&self, run: usize) -> Option<f64> {
        self.final_runs
            .iter()
            .position(|&r| r == run)
            .map(|i| self.final_loss.values[i])
    }
}

/// The cells of the main runs `0..runs` at each model's chosen rate, model by model.
pub fn cells(settings: &Settings, runs: usize, rates: &Rates, records: &[RunRecord]) -> Vec<Cell> {
    let mut out = Vec::new();
    for model in ModelKind::ALL {
        for &correlation in &settings.correlations {
            let learning_rate = rates.chosen(model);
            let mut mine: Vec<&RunRecord> = records
                .iter()
                .filter(|r| {
                    r.phase == Phase::Main
                        && r.model == model
                        && r.correlation == correlation
                        && r.learning_rate == learning_rate
                        && r.run < runs
                })
                .collect();
            mine.sort_by_key(|r| r.run);
            let ok: Vec<&RunRecord> = mine.iter().copied().filter(|r| r.ok()).collect();
            let mut errors: Vec<String> = mine.iter().filter_map(|r| r.error.clone()).collect();
            errors.sort();
            errors.dedup();
            let steps = ok.first().map(|r| r.steps.clone()).unwrap_or_default();
            let mut curve = CurveSummary {
                steps: steps.clone(),
                n: Vec::new(),
                mean: Vec::new(),
                std: Vec::new(),
                ci95_low: Vec::new(),
                ci95_high: Vec::new(),
            };
            for i in 0..steps.len() {
                let at: Vec<f64> = ok
                    .iter()
                    .filter_map(|r| r.test_loss.get(i).copied())
                    .collect();
                let s = summarize(&at);
                curve.n.push(s.n);
                curve.mean.push(s.mean);
                curve.std.push(s.std);
                curve.ci95_low.push(s.ci95.map(|c| c.0));
                curve.ci95_high.push(s.ci95.map(|c| c.1));
            }
            let finals: Vec<f64> = ok.iter().filter_map(|r| r.final_test_loss()).collect();
            out.push(Cell {
                model,
                correlation,
                learning_rate,
                runs: mine.len(),
                failed: mine.len() - ok.len(),
                errors,
                final_loss: summarize(&finals),
                final_runs: ok.iter().map(|r| r.run).collect(),
                curve,
            });
        }
    }
    out
}

fn cell(cells: &[Cell], model: ModelKind, correlation: f64) -> Option<&Cell> {
    cells
        .iter()
        .find(|c| c.model == model && c.correlation == correlation)
}

/// How an observation fares in our numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Every comparison goes the paper's way and is significant (Holm-adjusted p < 0.05).
    Holds,
    /// Every comparison goes the paper's way, not all significantly.
    HoldsNotSignificant,
    /// At least one comparison goes the other way.
    DoesNotHold,
    /// Neither established nor refuted (the equivalence test only).
    Inconclusive,
    /// A comparison lacks the two runs per side a test needs.
    TooFewRuns,
}

impl Verdict {
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Holds => "holds",
            Verdict::HoldsNotSignificant => "holds in direction, not significantly",
            Verdict::DoesNotHold => "does not hold",
            Verdict::Inconclusive => "inconclusive",
            Verdict::TooFewRuns => "too few runs to test",
        }
    }
}

/// One comparison of a statistic of two samples, `a` claimed below `b`.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// What is compared, e.g. "MMoE vs OMoE".
    pub what: String,
    /// "mean" or "std".
    pub statistic: &'static str,
    pub a: f64,
    pub b: f64,
    pub n_a: usize,
    pub n_b: usize,
    /// mean(a) - mean(b) of the tested samples, with its Welch 95 % interval.
    pub diff: f64,
    pub diff_ci95: Option<(f64, f64)>,
    pub welch: Option<TestResult>,
    /// The p-value Holm-adjusted over the observation's comparisons.
    pub p_holm: Option<f64>,
    /// Whether `a < b`, the paper's direction (`None` where the claim has no direction: the
    /// equivalence of observation 2).
    pub as_claimed: Option<bool>,
}

/// One of the paper's observations, tested.
#[derive(Debug, Clone, Serialize)]
pub struct Observation {
    pub id: &'static str,
    /// The paper's words, shortened.
    pub claim: &'static str,
    /// What we test, precisely.
    pub definition: String,
    pub verdict: Verdict,
    pub comparisons: Vec<Comparison>,
    /// Figures that support the verdict without being tested.
    pub notes: Vec<String>,
}

/// Welch's test of `a` against `b` and the 95 % interval of the mean difference.
fn compare(
    what: String,
    statistic: &'static str,
    (a, b): (f64, f64),
    samples: (&[f64], &[f64]),
) -> Comparison {
    let welch = welch_t_test(samples.0, samples.1);
    let (sa, sb) = (summarize(samples.0), summarize(samples.1));
    let diff = sa.mean - sb.mean;
    let diff_ci95 = welch.as_ref().and_then(|w| {
        let se = (sa.std.powi(2) / sa.n as f64 + sb.std.powi(2) / sb.n as f64).sqrt();
        let half = w.df.map_or(0.0, |df| t_quantile(0.975, df)) * se;
        half.is_finite().then_some((diff - half, diff + half))
    });
    Comparison {
        what,
        statistic,
        a,
        b,
        n_a: sa.n,
        n_b: sb.n,
        diff,
        diff_ci95,
        welch,
        p_holm: None,
        as_claimed: Some(a < b),
    }
}

/// Holm's step-down adjustment: the i-th smallest of k p-values times (k - i + 1), made
/// monotone, capped at 1; returned in the input order.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let k = p.len();
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    let mut adjusted = vec![0.0; k];
    let mut running: f64 = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((k - rank) as f64 * p[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

/// Fills in the Holm-adjusted p-values and says how the comparisons together fare.
fn directional(comparisons: &mut [Comparison]) -> Verdict {
    if comparisons.is_empty() || comparisons.iter().any(|c| c.welch.is_none()) {
        return Verdict::TooFewRuns;
    }
    let p: Vec<f64> = comparisons
        .iter()
        .map(|c| c.welch.as_ref().map_or(1.0, |w| w.p_value))
        .collect();
    for (c, adj) in comparisons.iter_mut().zip(holm(&p)) {
        c.p_holm = Some(adj);
    }
    if !comparisons.iter().all(|c| c.as_claimed == Some(true)) {
        Verdict::DoesNotHold
    } else if comparisons
        .iter()
        .all(|c| c.p_holm.is_some_and(|p| p < ALPHA))
    {
        Verdict::Holds
    } else {
        Verdict::HoldsNotSignificant
    }
}

/// `|x - median(x)|` for every value: Brown and Forsythe's spread variable, whose mean
/// differs between two samples when their spreads do, robustly to skewed samples.
pub fn abs_deviations_from_median(x: &[f64]) -> Vec<f64> {
    if x.is_empty() {
        return Vec::new();
    }
    let mut sorted = x.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
    };
    x.iter().map(|v| (v - median).abs()).collect()
}

/// The paper's observations (section 5.2 and figure 5), in its order, on `cells`.
pub fn observations(settings: &Settings, cells: &[Cell]) -> Vec<Observation> {
    let lowest = settings
        .correlations
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min);
    let highest = settings
        .correlations
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    let (lo_s, hi_s) = (corr(lowest), corr(highest));
    use ModelKind::{Mmoe, Omoe, SharedBottom};
    let mut out = Vec::new();

    // 1. MMoE degrades least.
    let degradation = |m: ModelKind| -> Vec<f64> {
        let (Some(lo), Some(hi)) = (cell(cells, m, lowest), cell(cells, m, highest)) else {
            return Vec::new();
        };
        lo.final_runs
            .iter()
            .filter_map(|&run| Some(lo.final_of(run)? - hi.final_of(run)?))
            .collect()
    };
    let d: BTreeMap<ModelKind, Vec<f64>> = ModelKind::ALL
        .iter()
        .map(|&m| (m, degradation(m)))
        .collect();
    let mean = |v: &[f64]| summarize(v).mean;
    let mut comparisons: Vec<Comparison> = [Omoe, SharedBottom]
        .iter()
        .map(|&other| {
            compare(
                format!("{} vs {}", Mmoe.label(), other.label()),
                "mean",
                (mean(&d[&Mmoe]), mean(&d[&other])),
                (&d[&Mmoe], &d[&other]),
            )
        })
        .collect();
    let verdict = directional(&mut comparisons);
    out.push(Observation {
        id: "mmoe-degrades-least",
        claim: "The gap between the performance at high and low correlation is much smaller for \
                MMoE than for OMoE and Shared-Bottom.",
        definition: format!(
            "Degradation of a model = its final test loss at correlation {lo_s} minus its \
             final test loss at {hi_s}, per run index (run i of both cells shares data \
             inputs and initial weights), averaged over runs. Holds if MMoE's mean degradation \
             is below OMoE's and below Shared-Bottom's, each by Welch's t-test on the \
             per-run degradations, Holm-adjusted over the 2 comparisons, p < {ALPHA}."
        ),
        verdict,
        comparisons,
        notes: ModelKind::ALL
            .iter()
            .map(|m| format!("{} degradation: {}", m.label(), summarize(&d[m]).show(4)))
            .collect(),
    });

    // 2. OMoE ≈ MMoE at correlation 1.0: an equivalence test.
    let at = |m: ModelKind, c: f64| cell(cells, m, c).map(|x| x.final_loss.values.clone());
    let mut eq = Vec::new();
    let mut notes = Vec::new();
    let verdict = match (at(Omoe, highest), at(Mmoe, highest)) {
        (Some(o), Some(m)) if o.len() >= 2 && m.len() >= 2 => {
            let c = Comparison {
                as_claimed: None,
                ..compare(
                    format!("{} vs {} at {hi_s}", Omoe.label(), Mmoe.label()),
                    "mean",
                    (mean(&o), mean(&m)),
                    (&o, &m),
                )
            };
            let margin = EQUIVALENCE_MARGIN * mean(&m).abs();
            notes.push(format!(
                "margin: ±{margin:.4} ({:.0} % of MMoE's mean final loss at {hi_s})",
                EQUIVALENCE_MARGIN * 100.0
            ));
            let verdict = match c.diff_ci95 {
                Some((lo, hi)) if lo > -margin && hi < margin => Verdict::Holds,
                Some((lo, hi)) if lo >= margin || hi <= -margin => Verdict::DoesNotHold,
                _ => Verdict::Inconclusive,
            };
            eq.push(c);
            verdict
        }
        _ => Verdict::TooFewRuns,
    };
    for &c in settings.correlations.iter().filter(|&&c| c != highest) {
        if let (Some(o), Some(m)) = (at(Omoe, c), at(Mmoe, c)) {
            let cmp = compare(String::new(), "mean", (mean(&o), mean(&m)), (&o, &m));
            notes.push(format!(
                "for contrast, OMoE - MMoE at {}: {:+.4}{} (Welch p {})",
                corr(c),
                cmp.diff,
                cmp.diff_ci95
                    .map(|(l, h)| format!(" [{l:+.4}, {h:+.4}]"))
                    .unwrap_or_default(),
                cmp.welch
                    .as_ref()
                    .map_or("-".into(), |w| format_p(w.p_value))
            ));
        }
    }
    out.push(Observation {
        id: "omoe-equals-mmoe-at-1",
        claim: "Where the two tasks are identical (correlation 1.0) there is almost no \
                difference between MMoE and OMoE.",
        definition: format!(
            "Equivalence: the 95 % Welch interval of mean(OMoE) - mean(MMoE) of the final test \
             loss at correlation {hi_s} lies within ±{:.0} % of MMoE's mean. Does not hold \
             if the interval lies entirely outside that margin; inconclusive otherwise (a \
             non-significant difference alone is not evidence of equality).",
            EQUIVALENCE_MARGIN * 100.0
        ),
        verdict,
        comparisons: eq,
        notes,
    });

    // 3. Both MoE models beat Shared-Bottom on average, in all scenarios.
    let mut comparisons = Vec::new();
    for &c in &settings.correlations {
        for m in [Omoe, Mmoe] {
            if let (Some(moe), Some(sb)) = (at(m, c), at(SharedBottom, c)) {
                comparisons.push(compare(
                    format!("{} vs {} at {}", m.label(), SharedBottom.label(), corr(c)),
                    "mean",
                    (mean(&moe), mean(&sb)),
                    (&moe, &sb),
                ));
            }
        }
    }
    let verdict = directional(&mut comparisons);
    out.push(Observation {
        id: "moe-beats-shared-bottom",
        claim: "Both MoE models are better than Shared-Bottom in all scenarios in terms of \
                average performance.",
        definition: format!(
            "At every correlation, the mean final test loss of OMoE and of MMoE is below \
             Shared-Bottom's: {} comparisons, each by Welch's t-test, Holm-adjusted, p < {ALPHA}.",
            comparisons.len()
        ),
        verdict,
        comparisons,
        notes: Vec::new(),
    });

    // 4. Shared-Bottom has the widest spread of final losses (trainability, figure 5).
    let mut comparisons = Vec::new();
    let std = |v: &[f64]| summarize(v).std;
    for &c in &settings.correlations {
        for m in [Omoe, Mmoe] {
            if let (Some(moe), Some(sb)) = (at(m, c), at(SharedBottom, c)) {
                comparisons.push(compare(
                    format!("{} vs {} at {}", m.label(), SharedBottom.label(), corr(c)),
                    "std",
                    (std(&moe), std(&sb)),
                    (
                        &abs_deviations_from_median(&moe),
                        &abs_deviations_from_median(&sb),
                    ),
                ));
            }
        }
    }
    let verdict = directional(&mut comparisons);
    let spread_notes = cells
        .iter()
        .filter(|c| c.final_loss.n > 0)
        .map(|c| {
            let v = &c.final_loss.values;
            let (lo, hi) = v
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                    (a.min(x), b.max(x))
                });
            format!(
                "{} at {}: std {:.4}, range [{lo:.4}, {hi:.4}]",
                c.model.label(),
                corr(c.correlation),
                c.final_loss.std
            )
        })
        .collect();
    out.push(Observation {
        id: "shared-bottom-widest-spread",
        claim: "Shared-Bottom's final losses spread more over repeated runs than the MoE \
                models' (it is harder to train: more runs end in poor local minima).",
        definition: format!(
            "At every correlation, the sample std of the final test loss of OMoE and of MMoE \
             is below Shared-Bottom's; each difference tested by the Brown-Forsythe test \
             (Welch's t-test on the absolute deviations from each sample's median, robust to \
             skewed losses), Holm-adjusted over the {} comparisons, p < {ALPHA}.",
            comparisons.len()
        ),
        verdict,
        comparisons,
        notes: spread_notes,
    });

    // The paper's observation (1), for completeness: every model does better on more related
    // tasks.
    let mut comparisons = Vec::new();
    let mut sorted = settings.correlations.clone();
    sorted.sort_by(f64::total_cmp);
    for m in ModelKind::ALL {
        for pair in sorted.windows(2) {
            if let (Some(high), Some(low)) = (at(m, pair[1]), at(m, pair[0])) {
                comparisons.push(compare(
                    format!("{} at {} vs {}", m.label(), corr(pair[1]), corr(pair[0])),
                    "mean",
                    (mean(&high), mean(&low)),
                    (&high, &low),
                ));
            }
        }
    }
    let verdict = directional(&mut comparisons);
    out.push(Observation {
        id: "higher-correlation-is-easier",
        claim: "For all models, the performance on data with higher correlation is better.",
        definition: format!(
            "For every model, the mean final test loss at each correlation is below the mean at \
             the next lower one: {} comparisons by Welch's t-test, Holm-adjusted, p < {ALPHA}.",
            comparisons.len()
        ),
        verdict,
        comparisons,
        notes: Vec::new(),
    });
    out
}

/// What this invocation did, for the timing section.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Session {
    /// Runs trained by this invocation (the others were recorded before).
    pub ran: usize,
    pub workers: usize,
    pub wall_seconds: f64,
}

/// The paper's runs per (model, correlation).
pub const PAPER_RUNS: usize = 200;
/// Below this many runs per cell the tests have next to no power, and one unlucky run decides
/// a verdict: the report says so at its top.
pub const MIN_RUNS_FOR_VERDICTS: usize = 10;

/// Seconds per run and what the full study costs at these settings.
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    /// Wall seconds of one run (data, training, evaluation), over every finished run: on a
    /// busy machine this includes waiting for a core.
    pub run_seconds: Summary,
    /// CPU seconds of one run's thread: the run's cost on a core of its own.
    pub run_cpu_seconds: Summary,
    pub session: Session,
    /// Runs of the whole study at `runs_per_cell` (pilots included).
    pub study_runs: usize,
    /// `study_runs x mean run CPU seconds / workers`: the study's wall time with one
    /// otherwise idle core per worker (from the wall seconds where CPU time is unknown).
    pub projected_wall_seconds: f64,
    /// Runs of the full study: the paper's 200 per cell and the full settings' pilots.
    pub full_study_runs: usize,
    /// The full settings' steps over these settings' steps: a run's measured cost is scaled
    /// by it (a cost per step; data generation and evaluation are small beside the steps).
    pub full_study_step_scale: f64,
    /// The full study's wall time with one otherwise idle core per worker.
    pub projected_wall_seconds_full: f64,
    /// The same from the wall seconds per run: the machine as busy as it was.
    pub projected_wall_seconds_full_as_loaded: f64,
}

fn timing(settings: &Settings, runs: usize, records: &[RunRecord], session: Session) -> Timing {
    let finished = || records.iter().filter(|r| r.ok());
    let run_seconds = summarize(&finished().map(|r| r.seconds).collect::<Vec<_>>());
    let run_cpu_seconds = summarize(&finished().filter_map(|r| r.cpu_seconds).collect::<Vec<_>>());
    let mean = |s: &Summary| if s.n > 0 { s.mean } else { 0.0 };
    let per_run = if run_cpu_seconds.n > 0 {
        run_cpu_seconds.mean
    } else {
        mean(&run_seconds)
    };
    let workers = session.workers.max(1) as f64;
    let study_runs = |s: &Settings, runs: usize| {
        let cells = ModelKind::ALL.len() * s.correlations.len();
        cells * runs + cells * s.learning_rates.len() * s.pilots
    };
    let full = Settings::full();
    let full_study_runs = study_runs(&full, PAPER_RUNS);
    let scale = full.steps as f64 / settings.steps.max(1) as f64;
    let full_study = |per_run: f64| full_study_runs as f64 * per_run * scale / workers;
    Timing {
        study_runs: study_runs(settings, runs),
        projected_wall_seconds: study_runs(settings, runs) as f64 * per_run / workers,
        full_study_runs,
        full_study_step_scale: scale,
        projected_wall_seconds_full: full_study(per_run),
        projected_wall_seconds_full_as_loaded: full_study(mean(&run_seconds)),
        run_seconds,
        run_cpu_seconds,
        session,
    }
}

impl Timing {
    /// "the full study (200 runs per cell, 10000 steps, 3 pilots ...) would take about X",
    /// saying when the figure is scaled from runs of another length.
    fn full_study_text(&self, settings: &Settings, as_loaded: bool) -> String {
        let full = Settings::full();
        let loaded = if as_loaded {
            format!(
                " (about {} at the wall time per run measured here)",
                hours(self.projected_wall_seconds_full_as_loaded)
            )
        } else {
            String::new()
        };
        let scaled = if self.full_study_step_scale == 1.0 {
            String::new()
        } else {
            format!(
                "; the cost per step measured here, scaled from {} to {} steps",
                settings.steps, full.steps
            )
        };
        format!(
            "the full study ({PAPER_RUNS} runs per cell as in the paper, {} steps, {} pilots per \
             rate and correlation: {} runs) would take about {} on {} idle core(s){loaded}{scaled}",
            full.steps,
            full.pilots,
            self.full_study_runs,
            hours(self.projected_wall_seconds_full),
            self.session.workers
        )
    }
}

/// The warning at the top of report.md (and before the verdicts in the terminal) when the
/// runs cannot support the verdicts: too few per cell, or training shorter than the study's.
pub fn caveat(settings: &Settings, runs: usize) -> Option<String> {
    let full = Settings::full();
    let quick = if *settings == Settings::quick() {
        " (`--quick`)"
    } else {
        ""
    };
    if runs < MIN_RUNS_FOR_VERDICTS {
        Some(format!(
            "Smoke test{quick}: {runs} run(s) per cell. At this n the verdicts below say nothing \
             about the models: the tests have next to no power and one unlucky run decides \
             them. Run at least {MIN_RUNS_FOR_VERDICTS} per cell (`--runs`; the paper: \
             {PAPER_RUNS}) for conclusions."
        ))
    } else if settings.steps < full.steps {
        Some(format!(
            "Short training{quick}: {} steps per run instead of the study's {}. The curves \
             have not flattened, so the verdicts below describe early training, not the models.",
            settings.steps, full.steps
        ))
    } else {
        None
    }
}

/// Everything written to `summary.json`.
#[derive(Debug, Serialize)]
struct SummaryFile<'a> {
    study: &'static str,
    settings: &'a Settings,
    runs_per_cell: usize,
    learning_rates: &'a Rates,
    /// Why the verdicts cannot be trusted (too few runs, short training), if they cannot.
    caveat: Option<String>,
    cells: &'a [Cell],
    observations: &'a [Observation],
    timing: &'a Timing,
}

/// Writes the figures, CSV and JSON files and report.md to `out`, and prints the summary.
pub fn write_outputs(
    out: &Path,
    settings: &Settings,
    runs: usize,
    rates: &Rates,
    records: &[RunRecord],
    session: Session,
    json: bool,
) -> Result<()> {
    let cells = cells(settings, runs, rates, records);
    let observations = observations(settings, &cells);
    let timing = timing(settings, runs, records, session);
    let caveat = caveat(settings, runs);
    for (name, figure) in [
        ("figure4", figure4(settings, &cells)),
        ("figure5", figure5(&cells)),
    ] {
        for format in [ImageFormat::Svg, ImageFormat::Png] {
            let ext = if format == ImageFormat::Png {
                "png"
            } else {
                "svg"
            };
            write_figure(&out.join(format!("{name}.{ext}")), &figure, format)
                .map_err(anyhow::Error::msg)?;
        }
    }
    write_atomically(&out.join("curves.csv"), &curves_csv(&cells))?;
    write_atomically(
        &out.join("final_losses.csv"),
        &final_losses_csv(settings, runs, records),
    )?;
    let summary = SummaryFile {
        study: "mmoe-synthetic",
        settings,
        runs_per_cell: runs,
        learning_rates: rates,
        caveat: caveat.clone(),
        cells: &cells,
        observations: &observations,
        timing: &timing,
    };
    let summary_json = serde_json::to_string_pretty(&summary)?;
    write_atomically(&out.join("summary.json"), &summary_json)?;
    write_atomically(
        &out.join("report.md"),
        &report_markdown(
            settings,
            runs,
            rates,
            &cells,
            &observations,
            &timing,
            caveat.as_deref(),
        ),
    )?;
    if json {
        println!("{summary_json}");
    } else {
        println!("{}", cells_table(&cells));
        if let Some(c) = &caveat {
            println!("NOTE: {c}");
        }
        for o in &observations {
            println!("{}: {}", o.id, o.verdict.text());
        }
        println!(
            "a run: {:.2} s of CPU ({:.2} s wall) at {} steps; {}",
            timing.run_cpu_seconds.mean,
            timing.run_seconds.mean,
            settings.steps,
            timing.full_study_text(settings, false)
        );
        println!("report: {}", out.join("report.md").display());
    }
    Ok(())
}

fn hours(seconds: f64) -> String {
    if seconds < 120.0 {
        format!("{seconds:.0} s")
    } else if seconds < 7200.0 {
        format!("{:.0} min", seconds / 60.0)
    } else {
        format!("{:.1} h", seconds / 3600.0)
    }
}

/// A correlation as the paper writes it: 1.0, 0.9, 0.5.
pub fn corr(c: f64) -> String {
    if c.fract() == 0.0 {
        format!("{c:.1}")
    } else {
        c.to_string()
    }
}

/// Figure 4: the mean test loss against steps with its 95 % interval, on a log axis (the
/// loss falls from ~7 to below 1, and the differences that matter are at the end); one panel
/// per correlation (a line per model), then one per model (a line per correlation: the gap the
/// paper reads). The models come first so that they get the colours of figure 5.
fn figure4(settings: &Settings, cells: &[Cell]) -> Figure {
    let band = |name: String, c: &Cell| BandSeries {
        name,
        points: (0..c.curve.steps.len())
            .map(|i| {
                let y = c.curve.mean[i];
                BandPoint {
                    x: c.curve.steps[i] as f64,
                    y,
                    lo: c.curve.ci95_low[i].unwrap_or(y),
                    hi: c.curve.ci95_high[i].unwrap_or(y),
                }
            })
            .collect(),
    };
    let mut charts = Vec::new();
    for &c in &settings.correlations {
        charts.push(Chart::Bands(BandPanel {
            title: format!("correlation {}: test loss (mean, 95 % CI)", corr(c)),
            x_label: "step".into(),
            y_label: "test loss (mean MSE of the 2 tasks)".into(),
            series: cells
                .iter()
                .filter(|x| x.correlation == c)
                .map(|x| band(x.model.label().to_string(), x))
                .collect(),
            log_y: true,
        }));
    }
    for m in ModelKind::ALL {
        charts.push(Chart::Bands(BandPanel {
            title: format!("{}: test loss (mean, 95 % CI)", m.label()),
            x_label: "step".into(),
            y_label: "test loss (mean MSE of the 2 tasks)".into(),
            series: cells
                .iter()
                .filter(|c| c.model == m)
                .map(|c| band(format!("correlation {}", corr(c.correlation)), c))
                .collect(),
            log_y: true,
        }));
    }
    Figure { charts, columns: 3 }
}

/// Figure 5: histograms of the final test loss, one panel per correlation, the three models
/// overlaid on the same bins (shared by every panel, so widths compare).
fn figure5(cells: &[Cell]) -> Figure {
    let all = cells
        .iter()
        .flat_map(|c| c.final_loss.values.iter().copied());
    let (lo, hi) = all
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    let range = (lo < hi).then_some((lo, hi));
    let n = cells.iter().map(|c| c.final_loss.n).max().unwrap_or(0);
    let bins = ((n as f64).sqrt().round() as usize).clamp(8, 30);
    let mut correlations: Vec<f64> = Vec::new();
    for c in cells {
        if !correlations.contains(&c.correlation) {
            correlations.push(c.correlation);
        }
    }
    let charts = correlations
        .iter()
        .map(|&corr_value| {
            Chart::Histogram(HistogramPanel {
                title: format!("correlation {}: final test loss", corr(corr_value)),
                x_label: "final test loss".into(),
                groups: cells
                    .iter()
                    .filter(|c| c.correlation == corr_value)
                    .map(|c| HistogramGroup {
                        name: c.model.label().to_string(),
                        values: c.final_loss.values.clone(),
                    })
                    .collect(),
                bins,
                range,
            })
        })
        .collect();
    Figure { charts, columns: 3 }
}

/// A CSV field, quoted when it holds a separator, quote or line break.
fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(String::new, |v| v.to_string())
}

fn curves_csv(cells: &[Cell]) -> String {
    let mut s =
        String::from("model,correlation,learning_rate,step,n,mean,std,ci95_low,ci95_high\n");
    for c in cells {
        for i in 0..c.curve.steps.len() {
            let _ = writeln!(
                s,
                "{},{},{},{},{},{},{},{},{}",
                c.model.key(),
                corr(c.correlation),
                c.learning_rate,
                c.curve.steps[i],
                c.curve.n[i],
                c.curve.mean[i],
                c.curve.std[i],
                opt(c.curve.ci95_low[i]),
                opt(c.curve.ci95_high[i]),
            );
        }
    }
    s
}

/// Every recorded run (pilots included), one row each.
fn final_losses_csv(settings: &Settings, runs: usize, records: &[RunRecord]) -> String {
    let mut s = String::from(
        "phase,model,correlation,learning_rate,run,data_seed,init_seed,final_test_loss,\
         final_valid_loss,task1_test_mse,task2_test_mse,seconds,error\n",
    );
    let mut rows: Vec<&RunRecord> = records
        .iter()
        .filter(|r| match r.phase {
            Phase::Main => r.run < runs,
            Phase::Pilot => r.run < settings.pilots,
        })
        .collect();
    rows.sort_by(|a, b| {
        (a.phase == Phase::Main, a.model, a.run)
            .cmp(&(b.phase == Phase::Main, b.model, b.run))
            .then(a.correlation.total_cmp(&b.correlation))
            .then(a.learning_rate.total_cmp(&b.learning_rate))
    });
    for r in rows {
        let phase = match r.phase {
            Phase::Pilot => "pilot",
            Phase::Main => "main",
        };
        let _ = writeln!(
            s,
            "{phase},{},{},{},{},{},{},{},{},{},{},{:.3},{}",
            r.model.key(),
            corr(r.correlation),
            r.learning_rate,
            r.run,
            r.data_seed,
            r.init_seed,
            opt(r.final_test_loss()),
            opt(r.final_valid_loss()),
            opt(r.final_task_mse.first().copied()),
            opt(r.final_task_mse.get(1).copied()),
            r.seconds,
            field(r.error.as_deref().unwrap_or("")),
        );
    }
    s
}

fn right(text: String) -> TableCell {
    TableCell::new(text).set_alignment(CellAlignment::Right)
}

fn cells_table(cells: &[Cell]) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(vec![
        "model",
        "correlation",
        "learning rate",
        "n",
        "final test loss: mean ± std [95 % CI]",
        "failed",
    ]);
    for c in cells {
        table.add_row(vec![
            TableCell::new(c.model.label()),
            right(corr(c.correlation)),
            right(format!("{:e}", c.learning_rate)),
            right(c.final_loss.n.to_string()),
            right(c.final_loss.show_without_n(4)),
            right(c.failed.to_string()),
        ]);
    }
    table
}

fn report_markdown(
    settings: &Settings,
    runs: usize,
    rates: &Rates,
    cells: &[Cell],
    observations: &[Observation],
    timing: &Timing,
    caveat: Option<&str>,
) -> String {
    let mut s = String::new();
    let complete = cells.iter().all(|c| c.runs == runs);
    let _ = writeln!(
        s,
        "# MMoE synthetic study: task relatedness and trainability\n\n\
         Ma et al., *Modeling Task Relationships in Multi-task Learning with Multi-gate \
         Mixture-of-Experts*, KDD 2018, section 5.2 (figures 4 and 5), reproduced by \
         `mtrec repro mmoe-synthetic`.\n"
    );
    if let Some(c) = caveat {
        let _ = writeln!(s, "> **Warning.** {c}\n");
    }
    if !complete {
        let _ = writeln!(
            s,
            "**Incomplete:** some cells have fewer than the {runs} runs asked for (see n \
             below); run the same command again to finish.\n"
        );
    }
    let _ = writeln!(s, "## Setup\n");
    let _ = writeln!(
        s,
        "- Data: the paper's generator (input {}, two regression tasks, m = {} sine terms, \
         scale {}, label noise std {}); per run {} training, {} validation and {} test rows, \
         drawn anew for every run.\n\
         - Models: Shared-Bottom (bottom [113], towers [8]), OMoE and MMoE (8 experts of [16], \
         towers [8]); the MoE models have 13,056 weights in experts and towers, Shared-Bottom's \
         bottom matches that count.\n\
         - Training: Adam, batch {}, {} steps (about {:.0} passes over the training rows); the \
         test loss (the mean of the two tasks' test MSEs) measured every {} steps.\n\
         - Runs: {runs} per (model, correlation), each with new data and a new initialisation \
         (run i shares its data seed across models and its initial weights across \
         correlations).\n",
        settings.generator.dim,
        settings.generator.m,
        settings.generator.scale,
        settings.generator.noise_std,
        settings.train_rows,
        settings.valid_rows,
        settings.test_rows,
        settings.batch_size,
        settings.steps,
        (settings.steps * settings.batch_size) as f64 / settings.train_rows as f64,
        settings.every,
    );
    let _ = writeln!(
        s,
        "### Learning rate\n\nOne rate per model from {:?}: {} pilot run(s) per (model, rate, \
         correlation) on data and initialisations the main runs never use, each scored by its \
         validation loss after the last step; the rate with the lowest mean wins (a rate with a \
         diverged pilot is out).\n",
        settings.learning_rates, settings.pilots
    );
    let _ = writeln!(
        s,
        "| model | learning rate | pilots | failed | mean validation loss | chosen |\n|---|---|---|---|---|---|"
    );
    for (model, choice) in &rates.0 {
        for p in &choice.pilots {
            let _ = writeln!(
                s,
                "| {} | {:e} | {} | {} | {} | {} |",
                model.label(),
                p.learning_rate,
                p.runs,
                p.failed,
                p.mean_valid_loss.map_or("-".into(), |l| format!("{l:.4}")),
                if p.learning_rate == choice.chosen {
                    "**yes**"
                } else {
                    ""
                }
            );
        }
    }
    let _ = writeln!(s, "\n## Results\n");
    let _ = writeln!(
        s,
        "Final test loss (after step {}): mean ± sample std [95 % t-interval of the mean], n \
         finished runs.\n",
        settings.steps
    );
    let _ = writeln!(
        s,
        "| model | correlation | learning rate | n | final test loss | failed |\n|---|---|---|---|---|---|"
    );
    for c in cells {
        let _ = writeln!(
            s,
            "| {} | {} | {:e} | {} | {} | {} |",
            c.model.label(),
            corr(c.correlation),
            c.learning_rate,
            c.final_loss.n,
            c.final_loss.show_without_n(4),
            c.failed
        );
    }
    for c in cells.iter().filter(|c| !c.errors.is_empty()) {
        let _ = writeln!(
            s,
            "\n{} at {}: {} failed run(s): {}",
            c.model.label(),
            corr(c.correlation),
            c.failed,
            c.errors.join("; ")
        );
    }
    let _ = writeln!(
        s,
        "\n![Figure 4: mean test loss against steps](figure4.png)\n\n\
         Figure 4 (`figure4.png`, `figure4.svg`; numbers in `curves.csv`): mean test loss \
         against steps with its 95 % interval; top row one panel per correlation, bottom row \
         one per model.\n\n\
         ![Figure 5: histograms of the final test loss](figure5.png)\n\n\
         Figure 5 (`figure5.png`, `figure5.svg`; numbers in `final_losses.csv`): histograms \
         of the final test loss over the runs, one panel per correlation, common bins.\n"
    );
    let _ = writeln!(s, "## The paper's observations\n");
    for (i, o) in observations.iter().enumerate() {
        let _ = writeln!(
            s,
            "### {}. {}: **{}**\n\n> {}\n\nTest: {}\n",
            i + 1,
            o.id,
            o.verdict.text(),
            o.claim,
            o.definition
        );
        if !o.comparisons.is_empty() {
            let _ = writeln!(
                s,
                "| comparison (a vs b) | statistic | a | b | n a / b | mean diff a - b [95 % CI] | Welch t (df) | p | Holm p | a < b |\n|---|---|---|---|---|---|---|---|---|---|"
            );
            for c in &o.comparisons {
                let (t, p) = c.welch.as_ref().map_or(("-".into(), "-".into()), |w| {
                    (
                        format!("{:.3} ({:.1})", w.statistic, w.df.unwrap_or(f64::NAN)),
                        format_p(w.p_value),
                    )
                });
                let _ = writeln!(
                    s,
                    "| {} | {} | {:.4} | {:.4} | {} / {} | {:+.4}{} | {t} | {p} | {} | {} |",
                    c.what,
                    c.statistic,
                    c.a,
                    c.b,
                    c.n_a,
                    c.n_b,
                    c.diff,
                    c.diff_ci95
                        .map(|(l, h)| format!(" [{l:+.4}, {h:+.4}]"))
                        .unwrap_or_default(),
                    c.p_holm.map_or("-".into(), format_p),
                    match c.as_claimed {
                        Some(true) => "yes",
                        Some(false) => "**no**",
                        None => "-",
                    },
                );
            }
            let _ = writeln!(s);
        }
        for n in &o.notes {
            let _ = writeln!(s, "- {n}");
        }
        if !o.notes.is_empty() {
            let _ = writeln!(s);
        }
    }
    let t = timing;
    let _ = writeln!(
        s,
        "## Cost\n\nOne run (data, {} steps, {} evaluations) used {} s of CPU on one thread and \
         took {} s of wall time (mean ± std [95 % CI] over {} finished runs; wall time includes \
         waiting for a core on a busy machine). This invocation trained {} runs in {} on {} \
         worker(s). The whole study at these settings is {} runs (pilots included): about {} \
         on {} otherwise idle core(s); {}.\n",
        settings.steps,
        settings.steps / settings.every.max(1) + 1,
        t.run_cpu_seconds.show_without_n(2),
        t.run_seconds.show_without_n(2),
        t.run_seconds.n,
        t.session.ran,
        hours(t.session.wall_seconds),
        t.session.workers,
        t.study_runs,
        hours(t.projected_wall_seconds),
        t.session.workers,
        t.full_study_text(settings, true),
    );
    let _ = writeln!(
        s,
        "## Files\n\n- `runs.jsonl`: every run, one JSON line (curves included); the command \
         resumes from it.\n- `settings.json`: the settings the runs were made with.\n- \
         `summary.json`: settings, learning-rate choice, per-cell curves and final losses, \
         observations with every test, timing.\n- `curves.csv`, `final_losses.csv`, \
         `figure4.{{png,svg}}`, `figure5.{{png,svg}}`."
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holm_matches_hand_computed_adjustments() {
        // Sorted 0.01, 0.03, 0.04 -> x3, x2, x1 = 0.03, 0.06, 0.04 -> monotone 0.03, 0.06, 0.06.
        let adj = holm(&[0.01, 0.04, 0.03]);
        let expected = [0.03, 0.06, 0.06];
        for (a, e) in adj.iter().zip(expected) {
            assert!((a - e).abs() < 1e-12, "{adj:?}");
        }
        assert_eq!(holm(&[0.6, 0.9]), vec![1.0, 1.0]);
        assert!(holm(&[]).is_empty());
    }

    #[test]
    fn deviations_are_taken_from_the_median() {
        // Median 3 (odd n); median 2.5 (even n).
        assert_eq!(
            abs_deviations_from_median(&[1.0, 2.0, 3.0, 4.0, 100.0]),
            vec![2.0, 1.0, 0.0, 1.0, 97.0]
        );
        assert_eq!(
            abs_deviations_from_median(&[4.0, 1.0, 2.0, 3.0]),
            vec![1.5, 1.5, 0.5, 0.5]
        );
    }

    fn cell_of(model: ModelKind, correlation: f64, finals: &[f64]) -> Cell {
        Cell {
            model,
            correlation,
            learning_rate: 1e-3,
            runs: finals.len(),
            failed: 0,
            errors: Vec::new(),
            final_loss: summarize(finals),
            final_runs: (0..finals.len()).collect(),
            curve: CurveSummary {
                steps: vec![0, 1],
                n: vec![finals.len(); 2],
                mean: vec![9.0, summarize(finals).mean],
                std: vec![0.0; 2],
                ci95_low: vec![None; 2],
                ci95_high: vec![None; 2],
            },
        }
    }

    /// Cells built to the paper's description: MMoE loses about 0.1 from 1.0 to 0.5, OMoE 1.0,
    /// Shared-Bottom 2.0; OMoE = MMoE at 1.0 (up to noise); Shared-Bottom worse and far more
    /// spread. Eight runs per cell; the small noise patterns differ between cells.
    fn paper_like() -> (Settings, Vec<Cell>) {
        let settings = Settings {
            correlations: vec![0.5, 1.0],
            ..Settings::quick()
        };
        let j1 = [-0.02, 0.02, -0.01, 0.01, 0.0, 0.015, -0.015, 0.005];
        let j2 = [0.01, -0.01, 0.02, -0.02, 0.005, 0.0, -0.005, 0.015];
        let wide = [-1.0, 1.0, -0.9, 0.9, -1.1, 1.1, -1.0, 1.0];
        let shift = |base: f64, j: &[f64]| j.iter().map(|x| base + x).collect::<Vec<_>>();
        let cells = vec![
            cell_of(ModelKind::SharedBottom, 0.5, &shift(5.0, &wide)),
            cell_of(ModelKind::SharedBottom, 1.0, &shift(3.0, &wide)),
            cell_of(ModelKind::Omoe, 0.5, &shift(2.0, &j1)),
            cell_of(ModelKind::Omoe, 1.0, &shift(1.0, &j2)),
            cell_of(ModelKind::Mmoe, 0.5, &shift(1.1, &j2)),
            cell_of(ModelKind::Mmoe, 1.0, &shift(1.0, &j1)),
        ];
        (settings, cells)
    }

    #[test]
    fn data_shaped_like_the_paper_passes_every_observation() {
        let (settings, cells) = paper_like();
        let obs = observations(&settings, &cells);
        let verdict = |id: &str| obs.iter().find(|o| o.id == id).unwrap().verdict;
        assert_eq!(verdict("mmoe-degrades-least"), Verdict::Holds);
        assert_eq!(verdict("omoe-equals-mmoe-at-1"), Verdict::Holds);
        assert_eq!(verdict("moe-beats-shared-bottom"), Verdict::Holds);
        assert_eq!(verdict("shared-bottom-widest-spread"), Verdict::Holds);
        assert_eq!(verdict("higher-correlation-is-easier"), Verdict::Holds);
        // Degradations are paired by run: 0.1 + j2 - j1 for MMoE, 1 + j1 - j2 for OMoE.
        let d = &obs[0].comparisons[0];
        assert!(
            (d.a - 0.10125).abs() < 1e-9 && (d.b - 0.99875).abs() < 1e-9,
            "{d:?}"
        );
    }

    #[test]
    fn reversed_data_fails_the_observations() {
        let (settings, mut cells) = paper_like();
        // Swap MMoE and Shared-Bottom: now MMoE degrades most and spreads widest.
        for c in cells.iter_mut() {
            c.model = match c.model {
                ModelKind::SharedBottom => ModelKind::Mmoe,
                ModelKind::Mmoe => ModelKind::SharedBottom,
                m => m,
            };
        }
        let obs = observations(&settings, &cells);
        let verdict = |id: &str| obs.iter().find(|o| o.id == id).unwrap().verdict;
        assert_eq!(verdict("mmoe-degrades-least"), Verdict::DoesNotHold);
        assert_eq!(verdict("moe-beats-shared-bottom"), Verdict::DoesNotHold);
        assert_eq!(verdict("shared-bottom-widest-spread"), Verdict::DoesNotHold);
        // OMoE (1.0) vs the new MMoE (3.0) at 1.0: far outside a 5 % margin.
        assert_eq!(verdict("omoe-equals-mmoe-at-1"), Verdict::DoesNotHold);
    }

    #[test]
    fn two_runs_cannot_show_equivalence_and_one_cannot_be_tested() {
        let (settings, cells) = paper_like();
        let few: Vec<Cell> = cells
            .iter()
            .map(|c| {
                let v = &c.final_loss.values;
                cell_of(c.model, c.correlation, &[v[0], v[4]])
            })
            .collect();
        let obs = observations(&settings, &few);
        assert_eq!(obs[1].verdict, Verdict::Inconclusive, "{:?}", obs[1]);
        let one: Vec<Cell> = cells
            .iter()
            .map(|c| cell_of(c.model, c.correlation, &c.final_loss.values[..1]))
            .collect();
        let obs = observations(&settings, &one);
        assert!(
            obs.iter().all(|o| o.verdict == Verdict::TooFewRuns),
            "{obs:?}"
        );
    }

    #[test]
    fn welch_interval_of_the_difference_matches_a_hand_computation() {
        // a: mean 2, var 1 (n 3); b: mean 1, var 1 (n 3): se = sqrt(2/3), df = 4,
        // t(0.975, 4) = 2.776445.
        let c = compare(
            "x".into(),
            "mean",
            (2.0, 1.0),
            (&[1.0, 2.0, 3.0], &[0.0, 1.0, 2.0]),
        );
        let half = 2.776445 * (2.0f64 / 3.0).sqrt();
        let (lo, hi) = c.diff_ci95.unwrap();
        assert!((lo - (1.0 - half)).abs() < 1e-5 && (hi - (1.0 + half)).abs() < 1e-5);
        assert_eq!(c.as_claimed, Some(false));
    }

    fn finished_run(run: usize, cpu_seconds: f64) -> RunRecord {
        RunRecord {
            phase: Phase::Main,
            model: ModelKind::Mmoe,
            correlation: 0.5,
            learning_rate: 1e-3,
            run,
            data_seed: 0,
            init_seed: 0,
            steps: vec![0, 3000],
            valid_loss: vec![2.0, 1.0],
            test_loss: vec![2.0, 1.0],
            final_task_mse: vec![1.0, 1.0],
            seconds: cpu_seconds + 0.5,
            cpu_seconds: Some(cpu_seconds),
            train_seconds: cpu_seconds,
            error: None,
        }
    }

    #[test]
    fn the_full_study_is_projected_at_its_own_steps_and_pilots() {
        // Quick runs of 0.9 and 1.1 s of CPU (mean 1.0) at 3,000 steps, 2 workers. The full
        // study: 9 cells x 200 runs + 9 cells x 3 rates x 3 pilots = 1,881 runs of
        // 1.0 x 10,000 / 3,000 s each, over 2 cores: 1,881 x 10 / 3 / 2 = 3,135 s.
        let records = [finished_run(0, 0.9), finished_run(1, 1.1)];
        let session = Session {
            ran: 2,
            workers: 2,
            wall_seconds: 1.0,
        };
        let t = timing(&Settings::quick(), 3, &records, session);
        assert_eq!(t.full_study_runs, 1881);
        assert!(
            (t.projected_wall_seconds_full - 3135.0).abs() < 1e-9,
            "{t:?}"
        );
        // At the wall time per run (1.5 s): x 1.5.
        assert!((t.projected_wall_seconds_full_as_loaded - 4702.5).abs() < 1e-9);
        // This study: 9 x 3 + 9 x 3 x 1 = 54 runs of 1.0 s over 2 cores.
        assert_eq!(t.study_runs, 54);
        assert!((t.projected_wall_seconds - 27.0).abs() < 1e-9);
        let text = t.full_study_text(&Settings::quick(), true);
        assert!(
            text.contains("about 52 min on 2 idle core(s) (about 78 min at the wall time"),
            "{text}"
        );
        assert!(text.contains("scaled from 3000 to 10000 steps"), "{text}");
        // Runs at the full settings are not scaled.
        let full = timing(&Settings::full(), 3, &records, session);
        assert!((full.projected_wall_seconds_full - 940.5).abs() < 1e-9);
        assert!(
            !full
                .full_study_text(&Settings::full(), false)
                .contains("scaled")
        );
    }

    #[test]
    fn few_runs_or_short_training_carry_a_caveat() {
        let quick = caveat(&Settings::quick(), 3).unwrap();
        assert!(
            quick.starts_with("Smoke test (`--quick`): 3 run(s) per cell"),
            "{quick}"
        );
        assert!(quick.contains("say nothing about the models"), "{quick}");
        let few = caveat(&Settings::full(), 9).unwrap();
        assert!(few.starts_with("Smoke test: 9 run(s)"), "{few}");
        let short = caveat(&Settings::quick(), 50).unwrap();
        assert!(
            short.contains("3000 steps per run instead of the study's 10000"),
            "{short}"
        );
        assert_eq!(caveat(&Settings::full(), 10), None);
    }
}
