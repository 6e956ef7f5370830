//! Expected improvement (Jones, Schonlau & Welch, 1998): how much a point is expected to
//! beat the best value so far under the surrogate's posterior. It is large where the mean is
//! high (exploitation) or the variance is large (exploration), and needs no tuning beyond a
//! small margin `xi`.
//!
//! For a posterior `N(mu, s^2)` at a point and the best observed value `f*` (maximising):
//! `EI = (mu - f* - xi) Phi(z) + s phi(z)` with `z = (mu - f* - xi) / s`, and
//! `EI = max(mu - f* - xi, 0)` where `s = 0`.

/// Standard normal density.
pub fn normal_pdf(z: f64) -> f64 {
    (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// Standard normal distribution function; through `erfc`, which keeps its relative accuracy
/// in the far lower tail where `EI` of unpromising points is decided.
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * statrs::function::erf::erfc(-z / std::f64::consts::SQRT_2)
}

/// Expected improvement over `best + xi` of a posterior with `mean` and `variance`.
pub fn expected_improvement(mean: f64, variance: f64, best: f64, xi: f64) -> f64 {
    let gain = mean - best - xi;
    let sd = variance.max(0.0).sqrt();
    if sd < 1e-12 {
        return gain.max(0.0);
    }
    let z = gain / sd;
    (gain * normal_cdf(z) + sd * normal_pdf(z)).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol, "{a} vs {b}");
    }

    #[test]
    fn normal_functions_match_table_values() {
        close(normal_cdf(0.0), 0.5, 1e-15);
        close(normal_cdf(1.0), 0.841_344_746_068_543, 1e-9);
        close(normal_cdf(-1.959_963_984_540_054), 0.025, 1e-9);
        close(normal_pdf(1.0), 0.241_970_724_519_143, 1e-9);
        // Far tail: Phi(-10) = 7.619853e-24, kept to relative accuracy.
        close(normal_cdf(-10.0) / 7.619_853_024_160_593e-24, 1.0, 1e-9);
    }

    #[test]
    fn expected_improvement_matches_hand_values() {
        // mu = 1, s = 1, f* = 0: z = 1, EI = Phi(1) + phi(1) = 0.841345 + 0.241971.
        close(
            expected_improvement(1.0, 1.0, 0.0, 0.0),
            1.083_315_470_587_686,
            1e-9,
        );
        // mu = f*: z = 0, EI = s phi(0) = 2 * 0.398942.
        close(
            expected_improvement(0.5, 4.0, 0.5, 0.0),
            0.797_884_560_802_865,
            1e-9,
        );
        // mu = 0, s = 0.5, f* = 0.4, xi = 0.1: gain -0.5, z = -1,
        // EI = -0.5 Phi(-1) + 0.5 phi(1) = -0.5 * 0.158655 + 0.5 * 0.241971 = 0.041658.
        close(
            expected_improvement(0.0, 0.25, 0.4, 0.1),
            0.041_657_735_293_843,
            1e-9,
        );
        // No variance: the plain improvement, or nothing.
        close(expected_improvement(2.0, 0.0, 1.5, 0.0), 0.5, 1e-15);
        close(expected_improvement(1.0, 0.0, 1.5, 0.0), 0.0, 1e-15);
    }

    #[test]
    fn expected_improvement_grows_with_mean_and_with_uncertainty() {
        let base = expected_improvement(0.0, 1.0, 0.5, 0.0);
        assert!(expected_improvement(0.2, 1.0, 0.5, 0.0) > base);
        assert!(expected_improvement(0.0, 2.0, 0.5, 0.0) > base);
        assert!(base > 0.0);
    }
}
