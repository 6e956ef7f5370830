//! The surrogate: a Gaussian process with a Matérn 5/2 kernel and one length scale per
//! coordinate (ARD), written here rather than taken from a crate.
//!
//! Why not a crate: measured on this project's 2-core machines (`cargo build`, fresh target,
//! `nice`), `egobox-gp` 0.37 pulls about 110 crates (linfa, linfa-pls, ndarray-npy, zip,
//! pest, a second rand) and took 4 min 21 s wall (2 min 38 s CPU); `friedrich` 0.6 pulls
//! nalgebra, simba, chrono and rand 0.10 (a second rand again) and took 1 min 08 s, and fits
//! its kernel by gradient ascent, harder to check by hand than a grid. A tuner's GP sees at
//! most a few hundred points in a dozen dimensions: one Cholesky factorisation of the
//! covariance, a grid over the hyper-parameters and a profile likelihood fit in a few hundred
//! lines with no dependency, and every figure it returns can be checked against a hand
//! computation.
//!
//! Model: `y = m + s f(x) + noise`, with the observations standardised to mean 0 and
//! variance 1 (`m`, `s`), `f ~ GP(0, sigma^2 k(x, x'))`,
//! `k = (1 + sqrt(5) r + 5 r^2 / 3) exp(-sqrt(5) r)`, `r^2 = sum_i ((x_i - x'_i) / l_i)^2`,
//! and noise variance `g sigma^2`. Matérn 5/2 rather than the squared exponential: the
//! latter's infinitely smooth samples make it overconfident between points on response
//! surfaces like validation metrics (Snoek et al., NeurIPS 2012, use 5/2 for this reason).
//!
//! Hyper-parameters maximise the log marginal likelihood. For given length scales and noise
//! ratio `g` the best `sigma^2` has a closed form, `z^T C^-1 z / n` with `C = R + g I`, so only
//! `l` and `g` are searched: an isotropic grid first, then two coordinate sweeps that let
//! each dimension's length scale move on the same grid (a coordinate that does not matter
//! drifts to a long scale). A grid is deterministic and cannot diverge; its resolution (a
//! factor of 1.45 between length scales) is finer than the likelihood can tell apart with
//! tens of points.

use crate::TuneError;

/// Kernel and noise of a fitted or given process.
#[derive(Debug, Clone, PartialEq)]
pub struct Hyper {
    /// One per input coordinate.
    pub lengthscales: Vec<f64>,
    /// `sigma^2`: the prior variance of `f`.
    pub signal_variance: f64,
    /// Observation noise variance, on the same scale as the signal variance.
    pub noise_variance: f64,
}

/// The Matérn 5/2 correlation at scaled distance `r`.
pub fn matern52(r: f64) -> f64 {
    let s = 5f64.sqrt() * r;
    (1.0 + s + s * s / 3.0) * (-s).exp()
}

/// Length scales tried, in the encoded unit cube (a factor of ~1.45 apart).
const LENGTHSCALES: [f64; 16] = [
    0.02, 0.029, 0.042, 0.061, 0.089, 0.13, 0.19, 0.27, 0.4, 0.58, 0.84, 1.2, 1.8, 2.6, 3.8, 5.5,
];
/// Noise-to-signal variance ratios tried; the smallest doubles as jitter for noiseless data.
const NOISE_RATIOS: [f64; 7] = [1e-6, 1e-4, 1e-3, 1e-2, 3e-2, 0.1, 0.3];

#[derive(Debug, Clone)]
pub struct Gp {
    x: Vec<Vec<f64>>,
    hyper: Hyper,
    /// Lower Cholesky factor of `sigma^2 k(X, X) + noise I`, row-major `n x n`.
    chol: Vec<f64>,
    /// `(K + noise I)^-1 z`.
    alpha: Vec<f64>,
    y_mean: f64,
    y_scale: f64,
    lml: f64,
}

impl Gp {
    /// The posterior of a zero-mean process with the given hyper-parameters, on `y` as given
    /// (no standardisation): the textbook formulas (Rasmussen & Williams, algorithm 2.1).
    pub fn with_hyper(x: Vec<Vec<f64>>, y: &[f64], hyper: Hyper) -> Result<Self, TuneError> {
        check_inputs(&x, y, hyper.lengthscales.len())?;
        let n = y.len();
        let mut k = covariance(&x, &hyper);
        for i in 0..n {
            k[i * n + i] += hyper.noise_variance;
        }
        let chol = cholesky(k, n).ok_or_else(|| {
            TuneError::Gp("the covariance is not positive definite: add noise".into())
        })?;
        let alpha = solve_upper_t(&chol, n, &solve_lower(&chol, n, y));
        let quad: f64 = y.iter().zip(&alpha).map(|(a, b)| a * b).sum();
        let log_det: f64 = (0..n).map(|i| chol[i * n + i].ln()).sum::<f64>() * 2.0;
        let lml = -0.5 * quad - 0.5 * log_det - 0.5 * n as f64 * (2.0 * std::f64::consts::PI).ln();
        Ok(Self {
            x,
            hyper,
            chol,
            alpha,
            y_mean: 0.0,
            y_scale: 1.0,
            lml,
        })
    }

    /// Fits a process to `y` (standardised inside; predictions come back on `y`'s scale)
    /// with hyper-parameters by maximum marginal likelihood (see the module doc).
    pub fn fit(x: Vec<Vec<f64>>, y: &[f64]) -> Result<Self, TuneError> {
        let dims = x.first().map_or(0, Vec::len);
        check_inputs(&x, y, dims)?;
        let n = y.len() as f64;
        let y_mean = y.iter().sum::<f64>() / n;
        let var = y.iter().map(|v| (v - y_mean).powi(2)).sum::<f64>() / n;
        let y_scale = if var > 1e-24 { var.sqrt() } else { 1.0 };
        let z: Vec<f64> = y.iter().map(|v| (v - y_mean) / y_scale).collect();
        let hyper = if y.len() < 3 || var <= 1e-24 {
            // Nothing to learn scales from: a broad default.
            Hyper {
                lengthscales: vec![0.4; dims],
                signal_variance: 1.0,
                noise_variance: 1e-6,
            }
        } else {
            select_hyper(&x, &z, dims)?
        };
        let mut gp = Self::with_hyper(x, &z, hyper)?;
        gp.y_mean = y_mean;
        gp.y_scale = y_scale;
        Ok(gp)
    }

    /// Posterior mean and variance of `f` (noise excluded) at `x`, on the scale of `y`.
    pub fn predict(&self, x: &[f64]) -> (f64, f64) {
        let n = self.x.len();
        let ks: Vec<f64> = self.x.iter().map(|xi| kernel(xi, x, &self.hyper)).collect();
        let mean: f64 = ks.iter().zip(&self.alpha).map(|(a, b)| a * b).sum();
        let v = solve_lower(&self.chol, n, &ks);
        let var = (self.hyper.signal_variance - v.iter().map(|a| a * a).sum::<f64>()).max(0.0);
        (
            self.y_mean + self.y_scale * mean,
            self.y_scale * self.y_scale * var,
        )
    }

    pub fn hyper(&self) -> &Hyper {
        &self.hyper
    }

    /// Log marginal likelihood of the (standardised, for [`Gp::fit`]) observations.
    pub fn log_marginal_likelihood(&self) -> f64 {
        self.lml
    }
}

fn check_inputs(x: &[Vec<f64>], y: &[f64], dims: usize) -> Result<(), TuneError> {
    if x.is_empty() || x.len() != y.len() {
        return Err(TuneError::Gp(format!(
            "{} points for {} values",
            x.len(),
            y.len()
        )));
    }
    if x.iter().any(|p| p.len() != dims) {
        return Err(TuneError::Gp(format!(
            "points must have {dims} coordinates"
        )));
    }
    if y.iter().chain(x.iter().flatten()).any(|v| !v.is_finite()) {
        return Err(TuneError::Gp("non-finite input or value".into()));
    }
    Ok(())
}

fn kernel(a: &[f64], b: &[f64], h: &Hyper) -> f64 {
    let r2: f64 = a
        .iter()
        .zip(b)
        .zip(&h.lengthscales)
        .map(|((p, q), l)| ((p - q) / l).powi(2))
        .sum();
    h.signal_variance * matern52(r2.sqrt())
}

fn covariance(x: &[Vec<f64>], h: &Hyper) -> Vec<f64> {
    let n = x.len();
    let mut k = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let v = kernel(&x[i], &x[j], h);
            k[i * n + j] = v;
            k[j * n + i] = v;
        }
    }
    k
}

/// Lower-triangular `L` with `L L^T = A`; `None` if `A` is not positive definite.
fn cholesky(mut a: Vec<f64>, n: usize) -> Option<Vec<f64>> {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if d.is_nan() || d <= 0.0 {
            return None;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
        for i in 0..j {
            a[i * n + j] = 0.0;
        }
    }
    Some(a)
}

/// Solves `L v = b`.
fn solve_lower(l: &[f64], n: usize, b: &[f64]) -> Vec<f64> {
    let mut v = vec![0.0; n];
    for i in 0..n {
        let s: f64 = (0..i).map(|k| l[i * n + k] * v[k]).sum();
        v[i] = (b[i] - s) / l[i * n + i];
    }
    v
}

/// Solves `L^T v = b`.
fn solve_upper_t(l: &[f64], n: usize, b: &[f64]) -> Vec<f64> {
    let mut v = vec![0.0; n];
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|k| l[k * n + i] * v[k]).sum();
        v[i] = (b[i] - s) / l[i * n + i];
    }
    v
}

/// Log marginal likelihood with `sigma^2` at its optimum for the given correlation length
/// scales and noise ratio, and that `sigma^2`.
fn profile_lml(x: &[Vec<f64>], z: &[f64], lengthscales: &[f64], ratio: f64) -> Option<(f64, f64)> {
    let n = z.len();
    let unit = Hyper {
        lengthscales: lengthscales.to_vec(),
        signal_variance: 1.0,
        noise_variance: 0.0,
    };
    let mut c = covariance(x, &unit);
    for i in 0..n {
        c[i * n + i] += ratio;
    }
    let l = cholesky(c, n)?;
    let w = solve_lower(&l, n, z);
    let quad: f64 = w.iter().map(|v| v * v).sum();
    let sigma2 = (quad / n as f64).max(1e-12);
    let log_det: f64 = (0..n).map(|i| l[i * n + i].ln()).sum::<f64>() * 2.0;
    let nf = n as f64;
    let lml = -0.5 * nf * sigma2.ln()
        - 0.5 * log_det
        - 0.5 * nf * (1.0 + (2.0 * std::f64::consts::PI).ln());
    Some((lml, sigma2))
}

/// The best hyper-parameters found so far by [`select_hyper`].
#[derive(Clone)]
struct Best {
    lml: f64,
    lengthscales: Vec<f64>,
    ratio: f64,
    sigma2: f64,
}

fn consider(
    x: &[Vec<f64>],
    z: &[f64],
    lengthscales: Vec<f64>,
    ratio: f64,
    best: &mut Option<Best>,
) {
    if let Some((lml, sigma2)) = profile_lml(x, z, &lengthscales, ratio)
        && best.as_ref().is_none_or(|b| lml > b.lml)
    {
        *best = Some(Best {
            lml,
            lengthscales,
            ratio,
            sigma2,
        });
    }
}

fn select_hyper(x: &[Vec<f64>], z: &[f64], dims: usize) -> Result<Hyper, TuneError> {
    let mut best: Option<Best> = None;
    for &l in &LENGTHSCALES {
        for &g in &NOISE_RATIOS {
            consider(x, z, vec![l; dims], g, &mut best);
        }
    }
    for _sweep in 0..2 {
        for d in 0..dims {
            let Some(start) = best.clone() else { break };
            for &l in &LENGTHSCALES {
                let mut ls = start.lengthscales.clone();
                ls[d] = l;
                consider(x, z, ls, start.ratio, &mut best);
            }
        }
        if let Some(start) = best.clone() {
            for &g in &NOISE_RATIOS {
                consider(x, z, start.lengthscales.clone(), g, &mut best);
            }
        }
    }
    let best = best.ok_or_else(|| {
        TuneError::Gp("no hyper-parameters on the grid give a positive-definite covariance".into())
    })?;
    Ok(Hyper {
        lengthscales: best.lengthscales,
        signal_variance: best.sigma2,
        noise_variance: best.ratio * best.sigma2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol, "{a} vs {b}");
    }

    #[test]
    fn matern52_at_hand_worked_distances() {
        close(matern52(0.0), 1.0, 1e-15);
        // r = 1: (1 + sqrt 5 + 5/3) e^-sqrt5 = 4.902734 * 0.106878 = 0.523994
        close(matern52(1.0), 0.523_994_5, 1e-6);
        // r = 0.5: s = 1.118034; (1 + 1.118034 + 0.416667) e^-1.118034 = 2.534701 * 0.326922
        close(matern52(0.5), 0.828_649_1, 1e-6);
    }

    #[test]
    fn posterior_with_one_observation_matches_hand_values() {
        // One point x = 0, y = 2, sigma^2 = 1, l = 1, no noise. At x = 1 (r = 1, k = 0.523994):
        // mean = k * y = 1.047989, variance = 1 - k^2 = 0.725430.
        let gp = Gp::with_hyper(
            vec![vec![0.0]],
            &[2.0],
            Hyper {
                lengthscales: vec![1.0],
                signal_variance: 1.0,
                noise_variance: 0.0,
            },
        )
        .unwrap();
        let (m, v) = gp.predict(&[1.0]);
        close(m, 1.047_989, 1e-6);
        close(v, 0.725_430, 1e-6);
        // At the observation itself: the value, no variance.
        let (m0, v0) = gp.predict(&[0.0]);
        close(m0, 2.0, 1e-12);
        close(v0, 0.0, 1e-12);
    }

    #[test]
    fn posterior_with_two_noisy_observations_matches_hand_values() {
        // x = (0, 1), y = (1, -1), sigma^2 = 2, l = 2, noise 0.1. k(0, 1) = 2 m(0.5) = 1.657298.
        // K + noise I = [[2.1, 1.657298], [1.657298, 2.1]], det = 4.41 - 2.746637 = 1.663363,
        // inverse = [[2.1, -1.657298], [-1.657298, 2.1]] / det.
        // alpha = K^-1 y = (2.1 + 1.657298, -1.657298 - 2.1) / det = (2.258857, -2.258857).
        // At x* = 0.25: r = (0.125, 0.375), m(r) = (0.987199, 0.896213), so
        // k* = (1.974397, 1.792427). mean = k* . alpha = (1.974397 - 1.792427) 2.258857
        // = 0.411045. variance = 2 - k*^T K^-1 k*, with
        // k*^T K^-1 k* = (2.1 (1.974397^2 + 1.792427^2) - 2 1.657298 1.974397 1.792427) / det
        // = (2.1 * 7.111038 - 11.730231) / 1.663363 = 3.202949 / 1.663363 = 1.925587,
        // so variance = 0.074413.
        let gp = Gp::with_hyper(
            vec![vec![0.0], vec![1.0]],
            &[1.0, -1.0],
            Hyper {
                lengthscales: vec![2.0],
                signal_variance: 2.0,
                noise_variance: 0.1,
            },
        )
        .unwrap();
        let (m, v) = gp.predict(&[0.25]);
        close(m, 0.411_045, 2e-6);
        close(v, 0.074_413, 2e-6);
    }

    #[test]
    fn log_marginal_likelihood_of_one_point() {
        // y = 2 under N(0, 1 + 0.5): -y^2 / (2 * 1.5) - ln(1.5) / 2 - ln(2 pi) / 2
        // = -1.333333 - 0.202733 - 0.918939 = -2.455005.
        let gp = Gp::with_hyper(
            vec![vec![0.3, 0.7]],
            &[2.0],
            Hyper {
                lengthscales: vec![1.0, 1.0],
                signal_variance: 1.0,
                noise_variance: 0.5,
            },
        )
        .unwrap();
        close(gp.log_marginal_likelihood(), -2.455_005, 1e-6);
    }

    #[test]
    fn fit_interpolates_a_smooth_function_and_ignores_a_useless_coordinate() {
        // y = sin(6 x0) on a grid, x1 random noise that does not affect y.
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..15 {
            let a = i as f64 / 14.0;
            let b = ((i * 7) % 15) as f64 / 14.0;
            x.push(vec![a, b]);
            y.push((6.0 * a).sin());
        }
        let gp = Gp::fit(x, &y).unwrap();
        for t in [0.1, 0.33, 0.52, 0.9] {
            let (m, v) = gp.predict(&[t, 0.5]);
            close(m, (6.0 * t).sin(), 0.05);
            assert!(v < 0.01, "variance {v} at {t}");
        }
        let l = &gp.hyper().lengthscales;
        assert!(
            l[1] > 3.0 * l[0],
            "the unused coordinate keeps a long scale: {l:?}"
        );
        // Far outside the data the variance returns towards the prior's.
        let (_, far) = gp.predict(&[3.0, 0.5]);
        assert!(far > 0.1, "{far}");
    }

    #[test]
    fn fit_survives_constant_and_duplicate_observations() {
        let x = vec![vec![0.2], vec![0.2], vec![0.8]];
        let gp = Gp::fit(x.clone(), &[1.0, 1.0, 1.0]).unwrap();
        close(gp.predict(&[0.5]).0, 1.0, 1e-9);
        let gp = Gp::fit(x, &[1.0, 1.1, 3.0]).unwrap();
        assert!(gp.predict(&[0.2]).0 > 0.9 && gp.predict(&[0.2]).0 < 1.2);
    }
}
