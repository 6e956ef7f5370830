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
