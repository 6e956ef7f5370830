//! Progressive discretisation (PD-DARTS, spec §4 step 4): blocks are fixed to their argmax op
//! in order of increasing normalised entropy, gates to `p > 0.5`, until nothing is left open.

use serde::{Deserialize, Serialize};

use super::block::{Block, Op, normalised_entropy};
use super::genotype::OpKind;
use super::network::{AutoMtl, BlockAt, GateAt};

/// One fixed choice, as the search log records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// `block` or `gate`.
    pub kind: String,
    /// What was fixed, e.g. `layer 0 expert 2 block 1` or `tower `income` <- layer 1 expert 3`.
    pub target: String,
    /// The op chosen, or `kept` / `dropped`.
    pub choice: String,
    /// The figure the choice was ranked by: normalised entropy for a block, keep-probability
    /// for a gate.
    pub score: f64,
}

/// A still-mixed block with its op distribution.
#[derive(Debug, Clone)]
pub struct OpenBlock {
    pub at: BlockAt,
    pub probabilities: Vec<f64>,
    pub entropy: f64,
}

/// Every choice fixed so far, position by position: what a resumed search replays on a
/// freshly built super-network so that its parameters line up with the saved ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choices {
    /// Per block position (see [`AutoMtl::block_positions`]), the op it was fixed to.
    pub blocks: Vec<Option<String>>,
    /// Per gate position (see [`AutoMtl::gate_positions`]), each element's fixed value.
    pub gates: Vec<Vec<Option<bool>>>,
}

impl Op {
    /// The candidate this op was made from.
    pub fn kind(&self) -> OpKind {
        match self {
            Op::Identity(_) => OpKind::Identity,
            Op::Mlp(m) => OpKind::Mlp(m.hidden.weight.dims()[1]),
        }
    }
}

impl AutoMtl {
    /// The choices fixed so far.
    pub fn choices(&self) -> Choices {
        Choices {
            blocks: self
                .block_positions()
                .into_iter()
                .map(|at| match self.block(at) {
                    Block::Mixed(_) => None,
                    Block::Fixed(op) => Some(op.kind().to_string()),
                })
                .collect(),
            gates: self
                .gate_positions()
                .into_iter()
                .map(|at| self.gate(at).state().to_vec())
                .collect(),
        }
    }

    /// Fixes what `choices` records on a network with nothing fixed yet, built from the same
    /// search space; refuses choices of another space.
    pub fn apply_choices(&mut self, choices: &Choices) -> Result<(), String> {
        let blocks = self.block_positions();
        let gates = self.gate_positions();
        if blocks.len() != choices.blocks.len() || gates.len() != choices.gates.len() {
            return Err(format!(
                "the saved choices are for {} blocks and {} gates, this network has {} and {}",
                choices.blocks.len(),
                choices.gates.len(),
                blocks.len(),
                gates.len()
            ));
        }
        for (at, choice) in blocks.into_iter().zip(&choices.blocks) {
            let Some(name) = choice else { continue };
            let Block::Mixed(m) = self.block(at) else {
                return Err(format!("block {at} is already fixed"));
            };
            let index = m
                .candidates()
                .iter()
                .position(|c| c.to_string() == *name)
                .ok_or_else(|| format!("block {at} has no candidate `{name}`"))?;
            self.block_mut(at).fix(index);
        }
        for (at, state) in gates.into_iter().zip(&choices.gates) {
            if state.len() != self.gate(at).len() {
                return Err(format!("gate {at:?} has another number of elements"));
            }
            for (i, keep) in state.iter().enumerate() {
                if let Some(keep) = keep {
                    self.gate_mut(at).fix(i, *keep);
                }
            }
        }
        Ok(())
    }

    /// Every mixed block with `softmax(beta)` and its normalised entropy, input side first.
    pub fn open_blocks(&self) -> Vec<OpenBlock> {
        self.block_positions()
            .into_iter()
            .filter_map(|at| match self.block(at) {
                Block::Mixed(m) => {
                    let probabilities = m.probabilities();
                    let entropy = normalised_entropy(&probabilities);
                    Some(OpenBlock {
                        at,
                        probabilities,
                        entropy,
                    })
                }
                Block::Fixed(_) => None,
            })
            .collect()
    }

    fn fix_block_at(&mut self, open: &OpenBlock) -> Decision {
        let best = argmax(&open.probabilities);
        let op = self.block_mut(open.at).fix(best);
        Decision {
            kind: "block".into(),
            target: open.at.to_string(),
            choice: op.to_string(),
            score: open.entropy,
        }
    }

    /// Fixes the `k` open blocks with the lowest normalised entropy (ties: input side first).
    pub fn fix_lowest_entropy_blocks(&mut self, k: usize) -> Vec<Decision> {
        let mut open = self.open_blocks();
        open.sort_by(|a, b| a.entropy.total_cmp(&b.entropy));
        open.iter().take(k).map(|o| self.fix_block_at(o)).collect()
    }

    /// Free gate elements with their keep-probabilities.
    pub fn open_gates(&self) -> Vec<(GateAt, usize, f64)> {
        let mut out = Vec::new();
        for at in self.gate_positions() {
            let gate = self.gate(at);
            let p = gate.probabilities();
            for (i, s) in gate.state().iter().enumerate() {
                if s.is_none() {
                    out.push((at, i, p[i]));
                }
            }
        }
        out
    }

    fn fix_gate_element(&mut self, at: GateAt, i: usize, p: f64, keep: bool) -> Decision {
        self.gate_mut(at).fix(i, keep);
        Decision {
            kind: "gate".into(),
            target: self.gate_element_name(at, i),
            choice: if keep { "kept" } else { "dropped" }.into(),
            score: p,
        }
    }

    /// Fixes the `k` most decided free gate elements (largest `|p - 0.5|`) to `p > 0.5`: the
    /// paper's selection-probability ranking, offered as an alternative to binarising every
    /// gate at the end.
    pub fn fix_most_decided_gates(&mut self, k: usize) -> Vec<Decision> {
        let mut open = self.open_gates();
        open.sort_by(|a, b| (b.2 - 0.5).abs().total_cmp(&(a.2 - 0.5).abs()));
        open.into_iter()
            .take(k)
            .map(|(at, i, p)| self.fix_gate_element(at, i, p, p > 0.5))
            .collect()
    }

    /// Fixes every remaining choice: blocks to their argmax op (lowest entropy first, so the log
    /// reads in the same order as progressive steps), gates to `p > 0.5`.
    ///
    /// Two guards the paper leaves implicit: a consumer that would keep no input keeps its most
    /// probable one (else its tower or expert sees a constant), and on data without dense
    /// fields a first-layer expert that would read no field keeps its most probable single
    /// field.
    pub fn finalise(&mut self) -> Vec<Decision> {
        let mut log = self.fix_lowest_entropy_blocks(usize::MAX);
        for at in self.gate_positions() {
            let gate = self.gate(at);
            let p = gate.probabilities();
            let state: Vec<Option<bool>> = gate.state().to_vec();
            let mut keep: Vec<bool> = state
                .iter()
                .zip(&p)
                .map(|(s, p)| s.unwrap_or(*p > 0.5))
                .collect();
            let needs_one = match at {
                GateAt::Connection { .. } => true,
                GateAt::Single { expert } => {
                    self.n_dense() == 0 && !self.gate_keeps_any(GateAt::Interaction { expert })
                }
                GateAt::Interaction { .. } => false,
            };
            if needs_one && !keep.is_empty() && !keep.iter().any(|k| *k) {
                let free: Vec<f64> = state
                    .iter()
                    .zip(&p)
                    .map(|(s, p)| if s.is_none() { *p } else { f64::NEG_INFINITY })
                    .collect();
                if free.iter().any(|p| p.is_finite()) {
                    keep[argmax(&free)] = true;
                }
            }
            for (i, s) in state.iter().enumerate() {
                if s.is_none() {
                    log.push(self.fix_gate_element(at, i, p[i], keep[i]));
                }
            }
        }
        log
    }

    /// Whether a gate keeps any element under `p > 0.5` (fixed elements as fixed).
    fn gate_keeps_any(&self, at: GateAt) -> bool {
        let gate = self.gate(at);
        gate.state()
            .iter()
            .zip(gate.probabilities())
            .any(|(s, p)| s.unwrap_or(p > 0.5))
    }
}

/// The index of the largest value (the first on ties).
pub(super) fn argmax(values: &[f64]) -> usize {
    values
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
        .map_or(0, |(i, _)| i)
}
