//! The served checkpoint and its hot swap.
//!
//! A [`LoadedModel`] is everything one checkpoint needs to answer: the model, its
//! preprocessor and the row decoder built from it. The [`ModelSlot`] holds the current one
//! behind an `Arc`: a request takes the `Arc` once and is encoded and predicted with that
//! one model, so a reload in the middle of a request cannot pair one checkpoint's
//! vocabularies with another's weights. A reload loads and checks the new checkpoint
//! completely before swapping; on failure the old model keeps serving and the error is
//! kept for `/health`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use burn::prelude::Device;
use mtrec_data::{Preprocessor, TaskKind};
use mtrec_engine::checkpoint::MANIFEST_FILE;
use mtrec_engine::{Predictor, load_checkpoint};
use serde_json::{Value, json};

use crate::ServeError;
use crate::decode::RowDecoder;

/// One loaded checkpoint, ready to answer.
#[derive(Debug)]
pub struct LoadedModel {
    /// 1 for the model loaded at start, +1 per successful reload.
    pub generation: u64,
    pub checkpoint: PathBuf,
    /// The experiment's name (its config's `name`).
    pub name: String,
    pub task_names: Vec<String>,
    pub task_kinds: Vec<TaskKind>,
    pub preprocessor: Preprocessor,
    pub decoder: RowDecoder,
    pub model: Predictor,
    /// What `/model` answers, built once.
    pub info: Value,
    /// The modification time of the checkpoint's manifest when it was read: `--reload`
    /// reloads when it changes.
    pub stamp: Option<SystemTime>,
}

/// When the checkpoint in `dir` was last written: its manifest is written last and the
/// folder is swapped in whole, so a new checkpoint means a new manifest time.
pub fn checkpoint_stamp(dir: &Path) -> Option<SystemTime> {
    std::fs::metadata(dir.join(MANIFEST_FILE))
        .and_then(|m| m.modified())
        .ok()
}

impl LoadedModel {
    /// Loads the checkpoint in `dir` as generation `generation`.
    pub fn load(dir: &Path, generation: u64, device: &Device) -> Result<LoadedModel, ServeError> {
        let stamp = checkpoint_stamp(dir);
        let ck = load_checkpoint(dir, device)?;
        let meta = ck.preprocessor.meta();
        let decoder = RowDecoder::new(&ck.preprocessor);
        let loaded_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let tasks: Vec<Value> = meta
            .task_names
            .iter()
            .zip(&meta.task_kinds)
            .map(|(name, kind)| {
                let output = match kind {
                    TaskKind::Binary => "probability",
                    TaskKind::Regression => "value on the label's scale",
                };
                json!({ "name": name, "kind": kind, "output": output })
            })
            .collect();
        let info = json!({
            "name": ck.config.name,
            "checkpoint": dir.display().to_string(),
            "generation": generation,
            "loaded_at_unix": loaded_at,
            "tasks": tasks,
            "inputs": decoder.fields(),
            "ignored_columns": decoder.ignored(),
            "schema": ck.preprocessor.schema,
            "architecture": {
                "kind": ck.config.model.kind(),
                "model": ck.config.model,
                "embedding": ck.config.embedding,
                "scheme": ck.config.scheme,
            },
            "metrics": ck.metrics,
        });
        Ok(LoadedModel {
            generation,
            checkpoint: dir.to_path_buf(),
            name: ck.config.name.clone(),
            task_names: meta.task_names,
            task_kinds: meta.task_kinds,
            decoder,
            preprocessor: ck.preprocessor,
            model: ck.model,
            info,
            stamp,
        })
    }
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq)]
pub enum Reloaded {
    /// The new model's generation.
    Swapped(u64),
    /// The checkpoint changed while it was read (a save in progress): try again later.
    Changing,
}

/// The current model, swapped whole by reloads.
pub struct ModelSlot {
    dir: PathBuf,
    device: Device,
    current: RwLock<Arc<LoadedModel>>,
    generations: AtomicU64,
    /// One reload at a time; a second waits and then loads the newest checkpoint.
    reloading: Mutex<()>,
    last_error: Mutex<Option<String>>,
}

impl ModelSlot {
    /// Loads the checkpoint in `dir` (generation 1).
    pub fn load(dir: &Path, device: Device) -> Result<ModelSlot, ServeError> {
        let model = LoadedModel::load(dir, 1, &device)?;
        Ok(ModelSlot {
            dir: dir.to_path_buf(),
            device,
            current: RwLock::new(Arc::new(model)),
            generations: AtomicU64::new(1),
            reloading: Mutex::new(()),
            last_error: Mutex::new(None),
        })
    }

    /// The model to answer the next request with.
    pub fn current(&self) -> Arc<LoadedModel> {
        // A poisoned lock still holds a complete Arc: the swap is one assignment.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn checkpoint(&self) -> &Path {
        &self.dir
    }

    /// The last failed reload's error, cleared by a successful one.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether the checkpoint on disk differs from the served one (`--reload`'s check).
    pub fn changed_on_disk(&self) -> bool {
        let now = checkpoint_stamp(&self.dir);
        now.is_some() && now != self.current().stamp
    }

    /// Loads the checkpoint folder again and swaps it in; blocking (seconds for a large
    /// model): call it off the async threads. Requests keep being answered by the old model
    /// until the swap, and those already holding it finish with it.
    pub fn reload(&self) -> Result<Reloaded, ServeError> {
        let _one = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let before = checkpoint_stamp(&self.dir);
        let generation = self.generations.load(Ordering::SeqCst) + 1;
        let result = LoadedModel::load(&self.dir, generation, &self.device);
        let mut last_error = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
        let model = match result {
            Ok(model) => model,
            Err(e) => {
                *last_error = Some(e.to_string());
                return Err(e);
            }
        };
        // A save that swapped folders while we read may have mixed two checkpoints.
        if checkpoint_stamp(&self.dir) != before || model.stamp != before {
            return Ok(Reloaded::Changing);
        }
        self.generations.store(generation, Ordering::SeqCst);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(model);
        *last_error = None;
        Ok(Reloaded::Swapped(generation))
    }
}
