//! Seeded random splits.
//!
//! A split must be reproducible from the seed alone, so every experiment that
//! names the same seed trains and tests on the same rows, on any machine:
//! the permutation comes from ChaCha8, whose stream is fixed by its spec.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Splits `0..n` into parts of the given fractions, in a seeded random order.
///
/// Every part but the last gets `floor(n * fraction)` rows and the last gets
/// the rest, so the parts always cover every row exactly once (fractions that
/// sum to less than 1 give the remainder to the last part). Negative or NaN
/// fractions count as 0. For `n = 99_762` and `[0.5, 0.25, 0.25]` the sizes
/// are 49,881 / 24,940 / 24,941.
pub fn split_indices(n: usize, fractions: &[f64], seed: u64) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    order.shuffle(&mut rng);
    let Some(last) = fractions.len().checked_sub(1) else {
        return Vec::new();
    };
    let mut parts = Vec::with_capacity(fractions.len());
    let mut start = 0usize;
    for (i, &f) in fractions.iter().enumerate() {
        let size = if i == last {
            n - start
        } else {
            let f = if f.is_nan() { 0.0 } else { f.max(0.0) };
            // The epsilon keeps e.g. 100 * 0.29 = 28.999999999999996 from losing a row.
            ((n as f64 * f + 1e-9).floor() as usize).min(n - start)
        };
        parts.push(order[start..start + size].to_vec());
        start += size;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_floor_rule_and_cover_every_row_once() {
        let parts = split_indices(99_762, &[0.5, 0.25, 0.25], 2018);
        let sizes: Vec<usize> = parts.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![49_881, 24_940, 24_941]);
        let mut all: Vec<usize> = parts.concat();
        all.sort_unstable();
        assert_eq!(all, (0..99_762).collect::<Vec<_>>());
    }

    #[test]
    fn floating_point_does_not_lose_a_row() {
        let sizes: Vec<usize> = split_indices(100, &[0.29, 0.71], 1)
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, vec![29, 71]);
    }

    #[test]
    fn seeded_and_shuffled() {
        let a = split_indices(1000, &[0.8, 0.2], 7);
        assert_eq!(a, split_indices(1000, &[0.8, 0.2], 7));
        assert_ne!(a, split_indices(1000, &[0.8, 0.2], 8));
        assert_ne!(a[0], (0..800).collect::<Vec<_>>());
    }

    #[test]
    fn odd_fractions_never_panic() {
        let parts = split_indices(10, &[0.9, 0.9, f64::NAN, -1.0], 0);
        assert_eq!(parts.iter().map(Vec::len).sum::<usize>(), 10);
        assert!(split_indices(10, &[], 0).is_empty());
        assert_eq!(
            split_indices(0, &[0.5, 0.5], 0),
            vec![Vec::<usize>::new(), Vec::new()]
        );
    }
}
