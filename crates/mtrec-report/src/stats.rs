//! Uncertainty for every comparison: mean, sample standard deviation and t-based 95 %
//! confidence interval over repeated runs, the paired and unpaired tests that say whether two
//! models differ beyond seed noise, and the multi-task literature's Δm against Single-Task.
//!
//! Results move by about 0.01 AUC between seeds, so a difference between two means says little
//! without these. Distribution functions come from `statrs` (regularised incomplete beta and
//! error function) rather than hand-written special functions; the Wilcoxon null distribution
//! is counted exactly here because no small crate offers it with tied ranks.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

/// Mean, sample standard deviation and 95 % confidence interval of the mean of some runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub n: usize,
    /// NaN (JSON `null`) for no values.
    pub mean: f64,
    /// Sample standard deviation (divisor n - 1); 0 for a single value, NaN for none.
    pub std: f64,
    /// `mean ± t(0.975, n - 1) · std / √n`: assumes the runs are independent draws of a
    /// roughly normal figure; `None` below two values, where no spread can be estimated.
    pub ci95: Option<(f64, f64)>,
    pub values: Vec<f64>,
}

pub fn summarize(values: &[f64]) -> Summary {
    let n = values.len();
    let mean = if n == 0 {
        f64::NAN
    } else {
        values.iter().sum::<f64>() / n as f64
    };
    let std = match n {
        0 => f64::NAN,
        1 => 0.0,
        _ => (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt(),
    };
    let ci95 = (n >= 2).then(|| {
        let half = t_quantile(0.975, (n - 1) as f64) * std / (n as f64).sqrt();
        (mean - half, mean + half)
    });
    Summary {
        n,
        mean,
        std,
        ci95,
        values: values.to_vec(),
    }
}

impl Summary {
    /// Half the width of the 95 % interval (the "±" a paper would print next to the mean).
    pub fn ci95_half_width(&self) -> Option<f64> {
        self.ci95.map(|(lo, hi)| (hi - lo) / 2.0)
    }

    /// `0.9485 ± 0.0003 [0.9481, 0.9489] (n=5)`: mean ± sample std, then the 95 % interval.
    pub fn show(&self, digits: usize) -> String {
        format!("{} (n={})", self.show_without_n(digits), self.n)
    }

    /// [`Summary::show`] without the count, for tables that give n in a column of their own.
    pub fn show_without_n(&self, digits: usize) -> String {
        match (self.n, self.ci95) {
            (0, _) => "-".to_string(),
            (_, Some((lo, hi))) => format!(
                "{:.digits$} ± {:.digits$} [{lo:.digits$}, {hi:.digits$}]",
                self.mean, self.std
            ),
            // One run: a ± 0 would claim a precision nobody measured.
            (_, None) => format!("{:.digits$}", self.mean),
        }
    }
}

/// The quantile of Student's t distribution with `df` degrees of freedom (`p` in (0, 1)).
pub fn t_quantile(p: f64, df: f64) -> f64 {
    t_dist(df).inverse_cdf(p)
}

/// Two-sided p-value of a t statistic: `P(|T| >= |t|)`.
pub fn t_two_sided_p(t: f64, df: f64) -> f64 {
    if t.is_nan() {
        return f64::NAN;
    }
    // The survival function is the incomplete beta itself, so tiny p-values keep their digits.
    (2.0 * t_dist(df).sf(t.abs())).min(1.0)
}

/// Two-sided p-value of a standard normal statistic: `P(|Z| >= |z|)`.
pub fn normal_two_sided_p(z: f64) -> f64 {
    if z.is_nan() {
        return f64::NAN;
    }
    (2.0 * Normal::standard().sf(z.abs())).min(1.0)
}

/// A p-value for tables: four decimals, `<0.0001` below that (more digits would claim a
/// precision the model behind the test does not have).
pub fn format_p(p: f64) -> String {
    if p.is_nan() {
        "-".to_string()
    } else if p < 1e-4 {
        "<0.0001".to_string()
    } else {
        format!("{p:.4}")
    }
}

fn t_dist(df: f64) -> StudentsT {
    // Only invalid for df <= 0 or NaN, which callers rule out (n >= 2).
    StudentsT::new(0.0, 1.0, df).expect("t distribution with positive degrees of freedom")
}

/// Which test produced a [`TestResult`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TestKind {
    PairedT,
    Wilcoxon,
    WelchT,
}

/// How the p-value was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PMethod {
    /// Student's t distribution with [`TestResult::df`] degrees of freedom.
    TDistribution,
    /// The exact null distribution, counted over all 2^n sign assignments (tied ranks kept).
    Exact,
    /// Normal approximation with the variance corrected for tied ranks.
    NormalApproximation,
}

/// A two-sided test of "a and b have the same mean (paired: the differences centre on 0)".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestResult {
    pub test: TestKind,
    pub method: PMethod,
    /// Pairs for the paired tests (zeros included); runs of both sides for Welch.
    pub n: usize,
    /// t for the t-tests; for Wilcoxon the sum of the ranks of the positive differences a - b
    /// (R's `V`; scipy reports `min(V, n'(n'+1)/2 - V)` with n' the non-zero pairs).
    /// ±inf (JSON `null`) when the differences have no spread but a non-zero mean.
    pub statistic: f64,
    pub p_value: f64,
    /// Mean of a - b (paired) or mean(a) - mean(b) (Welch).
    pub mean_diff: f64,
    /// Degrees of freedom of the t-tests (Welch-Satterthwaite for Welch).
    pub df: Option<f64>,
    /// Wilcoxon only: pairs with a - b = 0, left out of the ranking (Wilcoxon's own rule).
    pub zeros: usize,
}

/// Largest number of non-zero pairs for which Wilcoxon's p-value is counted exactly (scipy's
/// threshold as well); above it the normal approximation is within ~1e-3 and counting the
/// 2^n assignments would stop fitting an f64 exactly.
pub const WILCOXON_EXACT_MAX_N: usize = 50;

fn differences(a: &[f64], b: &[f64]) -> Option<Vec<f64>> {
    (a.len() == b.len()).then(|| a.iter().zip(b).map(|(x, y)| x - y).collect())
}

/// t and its p-value for a mean difference `diff` with standard error `se`, degenerate spread
/// included: no spread and no difference is "no evidence" (t 0, p 1), no spread but a
/// difference is certain (t ±inf, p 0).
fn t_stat_p(diff: f64, se: f64, df: f64) -> (f64, f64) {
    if se > 0.0 {
        let t = diff / se;
        (t, t_two_sided_p(t, df))
    } else if diff == 0.0 {
        (0.0, 1.0)
    } else {
        (diff.signum() * f64::INFINITY, 0.0)
    }
}

/// Paired t-test on `a[i] - b[i]` (the same seeds run by two models): `None` unless both have
/// the same length of at least 2.
pub fn paired_t_test(a: &[f64], b: &[f64]) -> Option<TestResult> {
    let d = differences(a, b)?;
    if d.len() < 2 {
        return None;
    }
    let s = summarize(&d);
    let df = (d.len() - 1) as f64;
    let (statistic, p_value) = t_stat_p(s.mean, s.std / (d.len() as f64).sqrt(), df);
    Some(TestResult {
        test: TestKind::PairedT,
        method: PMethod::TDistribution,
        n: d.len(),
        statistic,
        p_value,
        mean_diff: s.mean,
        df: Some(df),
        zeros: 0,
    })
}

/// Welch's unpaired t-test (unequal variances), for runs that share no seeds: `None` unless
/// both sides have at least 2 values.
pub fn welch_t_test(a: &[f64], b: &[f64]) -> Option<TestResult> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let (sa, sb) = (summarize(a), summarize(b));
    let (va, vb) = (
        sa.std.powi(2) / a.len() as f64,
        sb.std.powi(2) / b.len() as f64,
    );
    let df = if va + vb > 0.0 {
        (va + vb).powi(2) / (va.powi(2) / (a.len() - 1) as f64 + vb.powi(2) / (b.len() - 1) as f64)
    } else {
        (a.len() + b.len() - 2) as f64
    };
    let diff = sa.mean - sb.mean;
    let (statistic, p_value) = t_stat_p(diff, (va + vb).sqrt(), df);
    Some(TestResult {
        test: TestKind::WelchT,
        method: PMethod::TDistribution,
        n: a.len() + b.len(),
        statistic,
        p_value,
        mean_diff: diff,
        df: Some(df),
        zeros: 0,
    })
}

/// Ranks of `x` (1-based), ties sharing the average of their ranks; exact equality decides
/// ties, as in R and scipy.
fn average_ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&i, &j| x[i].total_cmp(&x[j]));
    let mut ranks = vec![0.0; x.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && x[order[end]] == x[order[start]] {
            end += 1;
        }
        // Positions start..end hold ranks start+1..=end; their average:
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

/// Wilcoxon signed-rank test on `a[i] - b[i]`: zero differences are dropped, tied |a - b|
/// share the average rank. The p-value is exact (counted over every sign assignment of the
/// actual ranks, so ties are conditioned on) up to [`WILCOXON_EXACT_MAX_N`] non-zero pairs,
/// else from the normal approximation with the tie-corrected variance and no continuity
/// correction (scipy's defaults). `None` unless both have the same, non-zero length.
///
/// With n pairs the smallest possible two-sided p is 2 / 2^n: 4 seeds can never reach 0.05.
pub fn wilcoxon_signed_rank(a: &[f64], b: &[f64]) -> Option<TestResult> {
    let d = differences(a, b)?;
    if d.is_empty() {
        return None;
    }
    let mean_diff = d.iter().sum::<f64>() / d.len() as f64;
    let nonzero: Vec<f64> = d.iter().copied().filter(|v| *v != 0.0).collect();
    let zeros = d.len() - nonzero.len();
    let m = nonzero.len();
    let result = |statistic, p_value, method| TestResult {
        test: TestKind::Wilcoxon,
        method,
        n: d.len(),
        statistic,
        p_value,
        mean_diff,
        df: None,
        zeros,
    };
    if m == 0 {
        return Some(result(0.0, 1.0, PMethod::Exact));
    }
    let abs: Vec<f64> = nonzero.iter().map(|v| v.abs()).collect();
    let ranks = average_ranks(&abs);
    let w_plus: f64 = ranks
        .iter()
        .zip(&nonzero)
        .filter(|(_, d)| **d > 0.0)
        .map(|(r, _)| r)
        .sum();
    if m <= WILCOXON_EXACT_MAX_N {
        // Average ranks are multiples of 1/2: count the sums of doubled ranks, an integer
        // knapsack over the 2^m assignments of a sign to each rank.
        let doubled: Vec<usize> = ranks.iter().map(|r| (r * 2.0).round() as usize).collect();
        let total: usize = doubled.iter().sum();
        let mut counts = vec![0.0f64; total + 1];
        counts[0] = 1.0;
        let mut reach = 0;
        for &r in &doubled {
            for s in (0..=reach).rev() {
                let c = counts[s];
                if c > 0.0 {
                    counts[s + r] += c;
                }
            }
            reach += r;
        }
        let all = 2f64.powi(m as i32);
        let w2 = (w_plus * 2.0).round() as usize;
        let lower: f64 = counts[..=w2].iter().sum::<f64>() / all;
        let upper: f64 = counts[w2..].iter().sum::<f64>() / all;
        let p = (2.0 * lower.min(upper)).min(1.0);
        return Some(result(w_plus, p, PMethod::Exact));
    }
    let n = m as f64;
    let mean = n * (n + 1.0) / 4.0;
    let tie_term: f64 = tie_sizes(&abs).map(|t| t.powi(3) - t).sum::<f64>() / 48.0;
    let var = n * (n + 1.0) * (2.0 * n + 1.0) / 24.0 - tie_term;
    let z = (w_plus - mean) / var.sqrt();
    Some(result(
        w_plus,
        normal_two_sided_p(z),
        PMethod::NormalApproximation,
    ))
}

/// Sizes of the groups of equal values in `x` (each value's group counted once).
fn tie_sizes(x: &[f64]) -> impl Iterator<Item = f64> {
    let mut sorted = x.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut sizes = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let j = sorted[i..].iter().take_while(|v| **v == sorted[i]).count();
        sizes.push(j as f64);
        i += j;
    }
    sizes.into_iter()
}

/// One task's figure for [`delta_m`]: the model's, the Single-Task model's, and the direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeltaTask {
    pub model: f64,
    pub single: f64,
    /// MSE, logloss: lower is better, so a drop counts as a gain.
    pub lower_is_better: bool,
}

/// Δm in percent (Maninis et al., CVPR 2019; LibMTL): the average over tasks of
/// `(-1)^l_k · (M_k - S_k) / S_k · 100`, `l_k = 1` where lower is better. Positive means the
/// multi-task model is better than Single-Task on average. `None` for no tasks or a
/// Single-Task figure of 0 (no relative change defined).
pub fn delta_m(tasks: &[DeltaTask]) -> Option<f64> {
    if tasks.is_empty() || tasks.iter().any(|t| t.single == 0.0) {
        return None;
    }
    let sum: f64 = tasks
        .iter()
        .map(|t| {
            let rel = (t.model - t.single) / t.single * 100.0;
            if t.lower_is_better { -rel } else { rel }
        })
        .sum();
    Some(sum / tasks.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_ranks_share_ties() {
        assert_eq!(
            average_ranks(&[0.5, 0.5, 2.0, 1.0]),
            vec![1.5, 1.5, 4.0, 3.0]
        );
        let sizes: Vec<f64> = tie_sizes(&[3.0, 1.0, 3.0, 3.0]).collect();
        assert_eq!(sizes, vec![1.0, 3.0]);
    }

    #[test]
    fn wilcoxon_of_all_zero_differences_is_no_evidence() {
        let r = wilcoxon_signed_rank(&[1.0, 2.0], &[1.0, 2.0]).unwrap();
        assert_eq!((r.p_value, r.zeros, r.n), (1.0, 2, 2));
        assert!(wilcoxon_signed_rank(&[1.0], &[1.0, 2.0]).is_none());
    }
}
