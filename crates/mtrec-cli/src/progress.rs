//! Turns engine events into a progress bar on a terminal, or log lines when stderr is not one.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use mtrec_engine::{Event, Observer};

pub struct Progress {
    bar: Option<ProgressBar>,
    epochs: usize,
    interactive: bool,
    /// The search phase under way, shown before the epoch.
    phase: Option<String>,
}

impl Progress {
    pub fn new() -> Self {
        Self {
            bar: None,
            epochs: 0,
            interactive: std::io::stderr().is_terminal(),
            phase: None,
        }
    }

    fn start_bar(&mut self, batches_per_epoch: usize) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if self.interactive {
            let bar = ProgressBar::new(batches_per_epoch as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>12} [{bar:30}] {pos}/{len} batches {per_sec} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            self.bar = Some(bar);
        }
    }

    fn println(&self, line: String) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => tracing::info!("{line}"),
        }
    }

    /// A spinner for work without a known length (loading data), finished by the caller.
    pub fn spinner(message: &str) -> ProgressBar {
        if !std::io::stderr().is_terminal() {
            tracing::info!("{message}");
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new_spinner();
        bar.set_message(message.to_string());
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    }
}

impl Observer for Progress {
    fn on_event(&mut self, event: &Event<'_>) {
        match event {
            Event::TrainStart {
                epochs,
                batches_per_epoch,
                n_train,
            } => {
                self.epochs = *epochs;
                tracing::info!(
                    "training on {n_train} rows, {batches_per_epoch} batches per epoch, up to {epochs} epochs"
                );
                self.start_bar(*batches_per_epoch);
            }
            Event::Phase {
                name,
                epochs,
                batches_per_epoch,
            } => {
                self.phase = Some(name.to_string());
                self.println(format!("phase `{name}`: {epochs} epochs"));
                self.start_bar(*batches_per_epoch);
            }
            Event::Discretised {
                epoch,
                decisions,
                open_blocks,
                open_gates,
            } => {
                let blocks = decisions.iter().filter(|d| d.kind == "block").count();
                let gates = decisions.len() - blocks;
                self.println(format!(
                    "after epoch {epoch}: fixed {blocks} blocks and {gates} gates; {open_blocks} blocks and {open_gates} gates still open"
                ));
            }
            Event::EpochStart { epoch } => {
                if let Some(bar) = &self.bar {
                    bar.reset();
                    bar.set_prefix(match &self.phase {
                        Some(phase) => format!("{phase} epoch {epoch}"),
                        None => format!("epoch {epoch}/{}", self.epochs),
                    });
                }
            }
            Event::Batch { batch, loss, .. } => {
                if let Some(bar) = &self.bar {
                    bar.set_position(*batch as u64);
                    if batch % 10 == 0 {
                        bar.set_message(format!("loss {loss:.4}"));
                    }
                }
            }
            Event::EpochEnd {
                epoch,
                train_loss,
                valid,
                improved,
                seconds,
            } => {
                let figures: Vec<String> = valid
                    .tasks
                    .iter()
                    .map(|t| match (t.metrics.auc, t.metrics.mse) {
                        (Some(auc), _) => format!("{} auc {auc:.4}", t.name),
                        (None, Some(mse)) => format!("{} mse {mse:.4}", t.name),
                        _ => t.name.clone(),
                    })
                    .collect();
                let line = format!(
                    "epoch {epoch}: train loss {train_loss:.4}, valid loss {:.4}, {} ({seconds:.1}s){}",
                    valid.loss,
                    figures.join(", "),
                    if *improved { " *" } else { "" }
                );
                self.println(line);
            }
            Event::EarlyStop { epoch, best_epoch } => {
                self.println(format!(
                    "early stop after epoch {epoch}; best epoch {best_epoch}"
                ));
            }
            Event::Evaluating { split } => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
                tracing::info!("evaluating on the {split} split");
            }
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
