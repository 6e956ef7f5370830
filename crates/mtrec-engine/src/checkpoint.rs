//! Checkpoints: a folder with the weights in safetensors and, as JSON/TOML, everything needed
//! to rebuild and use the model without the training data (resolved config, vocabularies and
//! dense statistics, metrics).
//!
//! A checkpoint is written into a temporary sibling folder and renamed into place, so an
//! interrupted save never leaves a half-written checkpoint where a complete one is expected.

use std::fs;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::store::{
    ApplyError, ApplyResult, ModuleSnapshot, SafetensorsStore, SafetensorsStoreError,
};
use burn::tensor::DType;
use mtrec_data::Preprocessor;
use serde::{Deserialize, Serialize};

use crate::scheme::{Predictor, blank_predictor};
use crate::{EngineError, ExperimentConfig};

pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const CONFIG_FILE: &str = "config.toml";
pub const PREPROCESSOR_FILE: &str = "preprocessor.json";
pub const METRICS_FILE: &str = "metrics.json";
pub const MANIFEST_FILE: &str = "mtrec.json";

/// The weights file of model `index` of `count` (a per-task scheme stores one per task).
pub fn weights_file(index: usize, count: usize) -> String {
    if count == 1 {
        WEIGHTS_FILE.to_string()
    } else {
        format!("model.task{index}.safetensors")
    }
}

/// Identifies the folder as an mtrec checkpoint and its layout version.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    mtrec_version: String,
    kind: String,
}

const FORMAT: u32 = 1;

/// A loaded checkpoint, ready to predict.
#[derive(Debug)]
pub struct Checkpoint {
    pub config: ExperimentConfig,
    pub preprocessor: Preprocessor,
    pub model: Predictor,
    pub metrics: serde_json::Value,
}

fn ck_err(path: &Path, message: impl std::fmt::Display) -> EngineError {
    EngineError::Checkpoint {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), EngineError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| EngineError::io(path, e))?;
    fs::write(path, text).map_err(|e| EngineError::io(path, e))
}

/// Writes a checkpoint to `dir`, replacing an existing one only once the new one is complete.
pub fn save_checkpoint(
    dir: &Path,
    config: &ExperimentConfig,
    preprocessor: &Preprocessor,
    model: &Predictor,
    metrics: &serde_json::Value,
) -> Result<(), EngineError> {
    save_checkpoint_with(dir, config, preprocessor, model, metrics, &[])
}

/// [`save_checkpoint`] plus `extra` files (name, contents) that must appear together with the
/// checkpoint or not at all, such as a search's architecture and log.
pub fn save_checkpoint_with(
    dir: &Path,
    config: &ExperimentConfig,
    preprocessor: &Preprocessor,
    model: &Predictor,
    metrics: &serde_json::Value,
    extra: &[(&str, String)],
) -> Result<(), EngineError> {
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(|e| EngineError::io(&parent, e))?;
    let name = dir
        .file_name()
        .ok_or_else(|| ck_err(dir, "not a folder name"))?
        .to_string_lossy()
        .to_string();
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| EngineError::io(&tmp, e))?;
    }
    fs::create_dir_all(&tmp).map_err(|e| EngineError::io(&tmp, e))?;
    let result = (|| {
        let models = model.models();
        for (i, m) in models.iter().enumerate() {
            let path = tmp.join(weights_file(i, models.len()));
            let mut store = SafetensorsStore::from_file(&path);
            m.save_into(&mut store).map_err(|e| ck_err(&path, e))?;
        }
        let cfg_path = tmp.join(CONFIG_FILE);
        fs::write(&cfg_path, config.to_toml_string()).map_err(|e| EngineError::io(&cfg_path, e))?;
        write_json(&tmp.join(PREPROCESSOR_FILE), preprocessor)?;
        write_json(&tmp.join(METRICS_FILE), metrics)?;
        for (file, contents) in extra {
            let path = tmp.join(file);
            fs::write(&path, contents).map_err(|e| EngineError::io(&path, e))?;
        }
        write_json(
            &tmp.join(MANIFEST_FILE),
            &Manifest {
                format: FORMAT,
                mtrec_version: env!("CARGO_PKG_VERSION").to_string(),
                kind: config.model.kind().to_string(),
            },
        )
    })();
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    // Swap in: move an old checkpoint aside, rename the new one, then drop the old one.
    let old = parent.join(format!(".{name}.old-{}", std::process::id()));
    if dir.exists() {
        fs::rename(dir, &old).map_err(|e| EngineError::io(dir, e))?;
    }
    if let Err(e) = fs::rename(&tmp, dir) {
        if old.exists() {
            let _ = fs::rename(&old, dir);
        }
        return Err(EngineError::io(dir, e));
    }
    if old.exists() {
        let _ = fs::remove_dir_all(&old);
    }
    Ok(())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, EngineError> {
    let text = fs::read_to_string(path).map_err(|e| ck_err(path, e))?;
    serde_json::from_str(&text).map_err(|e| ck_err(path, e))
}

/// Loads a checkpoint folder: rebuilds the model from its config and fills in the weights.
pub fn load_checkpoint(dir: &Path, device: &Device) -> Result<Checkpoint, EngineError> {
    if !dir.is_dir() {
        return Err(ck_err(dir, "no such checkpoint folder"));
    }
    let manifest: Manifest = read_json(&dir.join(MANIFEST_FILE))?;
    if manifest.format != FORMAT {
        return Err(ck_err(
            dir,
            format!(
                "checkpoint format {} is not supported (this mtrec reads format {FORMAT})",
                manifest.format
            ),
        ));
    }
    let cfg_path = dir.join(CONFIG_FILE);
    let text = fs::read_to_string(&cfg_path).map_err(|e| ck_err(&cfg_path, e))?;
    let config = ExperimentConfig::from_toml_str(&text, &cfg_path)?;
    let preprocessor: Preprocessor = read_json(&dir.join(PREPROCESSOR_FILE))?;
    let metrics: serde_json::Value =
        read_json(&dir.join(METRICS_FILE)).unwrap_or(serde_json::Value::Null);
    let mut model = blank_predictor(&config, &preprocessor.meta(), device)?;
    let count = model.models().len();
    for (i, m) in model.models_mut().into_iter().enumerate() {
        load_weights(m, &dir.join(weights_file(i, count)))?;
    }
    Ok(Checkpoint {
        config,
        preprocessor,
        model,
        metrics,
    })
}

/// Fills `model` from a safetensors file that must hold every one of its parameters, and
/// nothing else.
fn load_weights(model: &mut mtrec_arch::Model, weights: &Path) -> Result<(), EngineError> {
    if !weights.is_file() {
        return Err(ck_err(weights, "missing weights file"));
    }
    // Unvalidated, partial loading hands every disagreement back as data in the `ApplyResult`
    // rather than as an error whose text is burn's debug output; `mismatch` words it.
    let mut store = SafetensorsStore::from_file(weights)
        .validate(false)
        .allow_partial(true);
    let applied = model.load_from(&mut store).map_err(|e| match e {
        SafetensorsStoreError::Safetensors(e) => ck_err(
            weights,
            format!("not a readable safetensors file ({e}); it is likely damaged or truncated"),
        ),
        e => ck_err(weights, e),
    })?;
    match mismatch(&applied) {
        Some(message) => Err(ck_err(weights, message)),
        None => Ok(()),
    }
}

/// One line on how a weights file and the model rebuilt from the checkpoint's config and
/// vocabularies disagree, or `None` when every tensor loaded. The first disagreement is
/// spelt out and the rest counted: one names the cause, and a changed embedding dimension
/// alone moves the shape of every layer it feeds.
fn mismatch(applied: &ApplyResult) -> Option<String> {
    let changed = format!(
        "{CONFIG_FILE} (e.g. the embedding dim or layer sizes) or a vocabulary in \
         {PREPROCESSOR_FILE} was likely changed since training"
    );
    let (what, cause) = if let Some(error) = applied.errors.first() {
        match error {
            ApplyError::ShapeMismatch {
                path,
                expected,
                found,
            } => (
                format!(
                    "tensor `{path}` expected shape {:?}, found {:?}",
                    expected.as_slice(),
                    found.as_slice()
                ),
                changed,
            ),
            ApplyError::DTypeMismatch {
                path,
                expected,
                found,
            } => (
                format!(
                    "tensor `{path}` expected {} values, found {}",
                    dtype_name(expected),
                    dtype_name(found)
                ),
                "the file was likely written by another program, or modified".to_string(),
            ),
            ApplyError::AdapterError { path, .. } | ApplyError::LoadError { path, .. } => (
                format!("tensor `{path}` cannot be read"),
                "the file is likely damaged or truncated".to_string(),
            ),
        }
    } else if let Some((path, _)) = applied.missing.first() {
        (format!("tensor `{path}` is missing from the file"), changed)
    } else if let Some(path) = applied.unused.first() {
        (
            format!("tensor `{path}` in the file has no place in the model"),
            changed,
        )
    } else {
        return None;
    };
    let others = applied.errors.len() + applied.missing.len() + applied.unused.len() - 1;
    let more = match others {
        0 => String::new(),
        1 => " (and 1 more tensor)".to_string(),
        n => format!(" (and {n} more tensors)"),
    };
    Some(format!(
        "the weights do not fit the model rebuilt from {CONFIG_FILE} and {PREPROCESSOR_FILE}: \
         {what}{more}; {cause}"
    ))
}

/// A data type as written in safetensors headers and numpy (`f32`, `i64`).
fn dtype_name(dtype: &DType) -> String {
    match dtype {
        DType::Bool(_) => "bool".to_string(),
        DType::QFloat(_) => "quantized".to_string(),
        other => format!("{other:?}").to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Shape;

    use super::*;

    fn result(errors: Vec<ApplyError>, missing: &[&str], unused: &[&str]) -> ApplyResult {
        ApplyResult {
            applied: vec!["Moe.towers.weight".into()],
            skipped: Vec::new(),
            missing: missing
                .iter()
                .map(|p| (p.to_string(), "Struct:Moe".to_string()))
                .collect(),
            unused: unused.iter().map(|p| p.to_string()).collect(),
            errors,
        }
    }

    fn assert_one_clean_line(message: &str) {
        assert!(!message.contains('\n'), "{message}");
        assert!(
            !message.contains('{') && !message.contains("Shape") && !message.contains("dims"),
            "debug output in: {message}"
        );
    }

    #[test]
    fn a_complete_load_is_no_mismatch() {
        assert_eq!(mismatch(&result(Vec::new(), &[], &[])), None);
    }

    #[test]
    fn shape_mismatch_names_the_tensor_both_shapes_and_the_cause() {
        let errors = (0..3)
            .map(|i| ApplyError::ShapeMismatch {
                path: format!("Moe.layer{i}.weight"),
                expected: Shape::new([10, 24]),
                found: Shape::new([10, 16]),
            })
            .collect();
        let m = mismatch(&result(errors, &[], &[])).unwrap();
        assert_eq!(
            m,
            "the weights do not fit the model rebuilt from config.toml and preprocessor.json: \
             tensor `Moe.layer0.weight` expected shape [10, 24], found [10, 16] (and 2 more \
             tensors); config.toml (e.g. the embedding dim or layer sizes) or a vocabulary in \
             preprocessor.json was likely changed since training"
        );
        assert_one_clean_line(&m);
    }

    #[test]
    fn missing_and_unused_tensors_are_named() {
        let m = mismatch(&result(
            Vec::new(),
            &["Moe.towers.1.weight", "Moe.towers.1.bias"],
            &[],
        ))
        .unwrap();
        assert!(
            m.contains("tensor `Moe.towers.1.weight` is missing from the file (and 1 more tensor)"),
            "{m}"
        );
        assert!(m.contains("was likely changed since training"), "{m}");
        assert_one_clean_line(&m);
        let m = mismatch(&result(Vec::new(), &[], &["Moe.extra.weight"])).unwrap();
        assert!(
            m.contains("tensor `Moe.extra.weight` in the file has no place in the model;"),
            "{m}"
        );
    }

    #[test]
    fn dtype_and_read_errors_say_the_file_is_at_fault() {
        let m = mismatch(&result(
            vec![ApplyError::DTypeMismatch {
                path: "Moe.gate.bias".into(),
                expected: DType::F32,
                found: DType::I32,
            }],
            &[],
            &[],
        ))
        .unwrap();
        assert!(m.contains("tensor `Moe.gate.bias` expected f32 values, found i32; the file was likely written by another program"), "{m}");
        assert_one_clean_line(&m);
        let m = mismatch(&result(
            vec![ApplyError::LoadError {
                path: "Moe.gate.bias".into(),
                message: "Failed to load tensor data: Io { kind: UnexpectedEof }".into(),
            }],
            &[],
            &[],
        ))
        .unwrap();
        assert!(
            m.contains("tensor `Moe.gate.bias` cannot be read; the file is likely damaged"),
            "{m}"
        );
        assert_one_clean_line(&m);
    }
}
