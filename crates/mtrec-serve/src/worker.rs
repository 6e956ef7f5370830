//! Inference on a thread of its own, fed by a queue.
//!
//! A forward pass is CPU work of up to milliseconds; run on the async threads it would stall
//! every connection they serve. The inference thread takes a job, then every job already
//! queued for the same model (up to `max_batch_rows` rows in all), and runs them as one
//! forward pass: under load, concurrent small requests share a batch instead of queueing
//! one pass each. A row's outputs do not depend on the other rows of its batch, so batching
//! changes no prediction (the tests check it against `mtrec predict`). The queue is bounded:
//! when it is full, handlers wait, which slows clients down instead of growing memory.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::JoinHandle;

use burn::prelude::Device;
use mtrec_data::EncodedTable;
use tokio::sync::{mpsc, oneshot};

use crate::model::LoadedModel;

/// Outputs `[task][row]`, or why there are none.
pub type Outputs = Result<Vec<Vec<f32>>, String>;

struct Job {
    model: Arc<LoadedModel>,
    table: EncodedTable,
    reply: oneshot::Sender<Outputs>,
}

/// The handle requests submit work through; cloned into every handler.
#[derive(Clone)]
pub struct Inference {
    queue: mpsc::Sender<Job>,
}

/// Starts the inference thread; it ends once every [`Inference`] handle is dropped and the
/// queue is drained.
pub fn spawn(
    device: Device,
    max_batch_rows: usize,
    queue: usize,
) -> std::io::Result<(Inference, JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel(queue.max(1));
    let handle = std::thread::Builder::new()
        .name("mtrec-inference".into())
        .spawn(move || run(rx, &device, max_batch_rows.max(1)))?;
    Ok((Inference { queue: tx }, handle))
}

impl Inference {
    /// Predicts `table` (encoded by `model`'s preprocessor) with `model`.
    pub async fn predict(&self, model: Arc<LoadedModel>, table: EncodedTable) -> Outputs {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            model,
            table,
            reply,
        };
        if self.queue.send(job).await.is_err() {
            return Err("the inference thread has stopped".into());
        }
        answer
            .await
            .unwrap_or_else(|_| Err("the inference thread has stopped".into()))
    }
}

fn run(mut rx: mpsc::Receiver<Job>, device: &Device, max_rows: usize) {
    let mut next: Option<Job> = None;
    loop {
        let Some(first) = next.take().or_else(|| rx.blocking_recv()) else {
            return;
        };
        let mut rows = first.table.n_rows;
        let mut group = vec![first];
        while rows < max_rows {
            let Ok(job) = rx.try_recv() else { break };
            if !Arc::ptr_eq(&job.model, &group[0].model) || rows + job.table.n_rows > max_rows {
                next = Some(job);
                break;
            }
            rows += job.table.n_rows;
            group.push(job);
        }
        answer(group, device);
    }
}

/// Answers a group of jobs (one model) with one forward pass.
fn answer(group: Vec<Job>, device: &Device) {
    let model = group[0].model.clone();
    let (tables, replies): (Vec<EncodedTable>, Vec<oneshot::Sender<Outputs>>) =
        group.into_iter().map(|j| (j.table, j.reply)).unzip();
    for (outputs, reply) in predict_together(&model, tables, device)
        .into_iter()
        .zip(replies)
    {
        // A client that hung up no longer waits for its answer.
        let _ = reply.send(outputs);
    }
}

/// The outputs of several requests' tables (encoded by `model`) from one forward pass over
/// all their rows, each table's share apart, in order.
pub fn predict_together(
    model: &LoadedModel,
    tables: Vec<EncodedTable>,
    device: &Device,
) -> Vec<Outputs> {
    let counts: Vec<usize> = tables.iter().map(|t| t.n_rows).collect();
    let table = match tables.len() {
        1 => tables.into_iter().next().unwrap_or_default(),
        _ => concat(tables),
    };
    let n_rows = table.n_rows;
    let outputs = catch_unwind(AssertUnwindSafe(|| {
        mtrec_engine::predict(
            &model.model,
            &table,
            &model.task_kinds,
            n_rows.max(1),
            device,
        )
    }))
    .map_err(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        format!("inference failed: {what}")
    });
    let mut start = 0;
    counts
        .into_iter()
        .map(|n| {
            let share = outputs.as_ref().map_err(Clone::clone).and_then(|all| {
                let mine: Vec<Vec<f32>> = all
                    .iter()
                    .map(|task| task.get(start..start + n).unwrap_or_default().to_vec())
                    .collect();
                check_finite(model, &mine)?;
                Ok(mine)
            });
            start += n;
            share
        })
        .collect()
}

/// The tables as one, rows in order.
fn concat(tables: Vec<EncodedTable>) -> EncodedTable {
    let rows: usize = tables.iter().map(|t| t.n_rows).sum();
    let Some(first) = tables.first() else {
        return EncodedTable::default();
    };
    let mut table = EncodedTable::with_widths(first.n_sparse, first.n_dense, 0);
    table.label_scales = first.label_scales.clone();
    table.sparse.reserve(rows * first.n_sparse);
    table.dense.reserve(rows * first.n_dense);
    for t in &tables {
        table.sparse.extend_from_slice(&t.sparse);
        table.dense.extend_from_slice(&t.dense);
        table.n_rows += t.n_rows;
    }
    table
}

/// Inputs are finite by the time they are encoded, so a non-finite output means the
/// checkpoint's weights are: an error for the operator, never a silent `null` to a client.
fn check_finite(model: &LoadedModel, outputs: &[Vec<f32>]) -> Result<(), String> {
    for (task, values) in model.task_names.iter().zip(outputs) {
        if let Some(row) = values.iter().position(|v| !v.is_finite()) {
            return Err(format!(
                "the prediction for task `{task}` is {} on row {row}: the inputs are finite, \
                 so the checkpoint's weights are not (training diverged)",
                values[row]
            ));
        }
    }
    Ok(())
}
