//! What the engine reports while it works. The binary turns these into progress bars and log
//! lines; tests and library users can ignore them.

use mtrec_arch::automtl::Decision;

use crate::EvalReport;

#[derive(Debug)]
pub enum Event<'a> {
    TrainStart {
        epochs: usize,
        batches_per_epoch: usize,
        n_train: usize,
    },
    EpochStart {
        epoch: usize,
    },
    Batch {
        epoch: usize,
        batch: usize,
        loss: f64,
    },
    EpochEnd {
        epoch: usize,
        train_loss: f64,
        valid: &'a EvalReport,
        improved: bool,
        seconds: f64,
    },
    EarlyStop {
        epoch: usize,
        best_epoch: usize,
    },
    Evaluating {
        split: &'a str,
    },
    /// A phase of work with its own epochs begins: a search's `warm-up` and `joint` (then
    /// `finetune`, which reports like a training), or a scheme's preparation (LT4Rec's pruning
    /// rounds).
    Phase {
        name: &'a str,
        epochs: usize,
        batches_per_epoch: usize,
    },
    /// Choices fixed by discretisation after `epoch`.
    Discretised {
        epoch: usize,
        decisions: &'a [Decision],
        open_blocks: usize,
        open_gates: usize,
    },
}

pub trait Observer {
    fn on_event(&mut self, event: &Event<'_>);
}

/// Ignores every event.
pub struct NullObserver;

impl Observer for NullObserver {
    fn on_event(&mut self, _event: &Event<'_>) {}
}
