//! What one level of a stacked expert model reads (PLE's extraction levels, AdaTT's fusion
//! levels): the first level sees the model input everywhere, later levels one row per unit.

use burn::prelude::*;

#[derive(Debug, Clone)]
pub enum LevelInput {
    /// `[B, in]`, read by every expert and gate.
    Same(Tensor<2>),
    /// `[B, U, in]`: row `u` for unit `u`'s experts and gate (the tasks' units first, then the
    /// shared one, if any).
    PerUnit(Tensor<3>),
}

/// Runs stacked levels: the first reads `x` everywhere, each later one the previous level's
/// per-unit rows. Returns the last level's task rows `[B, T, H]` (the towers' inputs).
pub fn run_levels<L>(
    x: Tensor<2>,
    levels: &[L],
    n_tasks: usize,
    forward: impl Fn(&L, LevelInput) -> Tensor<3>,
) -> Tensor<3> {
    let mut input = LevelInput::Same(x);
    for level in levels {
        input = LevelInput::PerUnit(forward(level, input));
    }
    match input {
        LevelInput::PerUnit(h) => h,
        // Only without any level (a built model has at least one): every task then sees x.
        LevelInput::Same(x) => {
            let [b, d] = x.dims();
            x.unsqueeze_dim::<3>(1).expand([b, n_tasks, d])
        }
    }
}
