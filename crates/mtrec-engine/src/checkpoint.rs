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
use mtrec_data::{DataError, Preprocessor};
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
    let config = read_config(&dir.join(CONFIG_FILE))?;
    let preprocessor = read_preprocessor(&dir.join(PREPROCESSOR_FILE))?;
    let metrics: serde_json::Value =
        read_json(&dir.join(METRICS_FILE)).unwrap_or(serde_json::Value::Null);
    check_sizes(&config, dir)?;
    let mut model = blank_predictor(&config, &preprocessor.meta(), device).map_err(|e| {
        ck_err(
            dir,
            format!("the model cannot be rebuilt from {CONFIG_FILE} and {PREPROCESSOR_FILE}: {e}"),
        )
    })?;
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

/// The stored config, parsed and range-checked like a config file, but refused in one line
/// naming the file (a config file being written gets the quoted snippet instead): a hand
/// edit here is checkpoint damage, found by `fuzz/`'s `checkpoint_files`.
fn read_config(path: &Path) -> Result<ExperimentConfig, EngineError> {
    let text = fs::read_to_string(path).map_err(|e| ck_err(path, e))?;
    let config: ExperimentConfig = toml::from_str(&text).map_err(|e| {
        let at = e.span().map_or_else(String::new, |span| {
            let before = &text.as_bytes()[..span.start.min(text.len())];
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            format!("line {line}: ")
        });
        ck_err(path, format!("{at}{}", e.message().trim_end()))
    })?;
    config.validate(path).map_err(|e| match e {
        EngineError::Config { message, .. } => ck_err(path, message),
        e => e,
    })?;
    Ok(config)
}

/// Refuses a config whose model could not possibly fit its weights, before the model is
/// built: building allocates some tensors at once (a Tucker core, AdaTT's fusion masks)
/// and others per level, so `n_levels = 100000000` in a hand-edited `config.toml` would
/// otherwise take the machine's memory before any shape is compared (found by `fuzz/`'s
/// `checkpoint_files`). Every integer of `[model]` and `[embedding]` (a width, a count of
/// experts, levels or ranks, an input index of a searched architecture) stands for at least
/// that many parameters of at least one byte each, so none may exceed the bytes of the
/// weights files. Sizes that each pass but multiply to a huge tensor are not caught here.
fn check_sizes(config: &ExperimentConfig, dir: &Path) -> Result<(), EngineError> {
    let mut bytes = 0u64;
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("model") && name.ends_with(".safetensors") {
                // A cut weights file would otherwise be blamed on the config below.
                check_weights_complete(&entry.path())?;
                bytes += entry.metadata().map_or(0, |m| m.len());
            }
        }
    }
    let sections = [
        ("model", toml::Value::try_from(&config.model)),
        ("embedding", toml::Value::try_from(&config.embedding)),
    ];
    for (name, value) in sections {
        let Ok(value) = value else { continue };
        if let Some((key, size)) = largest_integer(name, &value)
            && size > i128::from(bytes)
        {
            return Err(ck_err(
                &dir.join(CONFIG_FILE),
                format!(
                    "`{key}` asks for {size}, more parameters than the {bytes} bytes of \
                     weights in the folder can hold; {CONFIG_FILE} was likely changed since \
                     training"
                ),
            ));
        }
    }
    Ok(())
}

/// Whether a safetensors file holds what its header declares: the 8-byte header length, the
/// JSON header, and exactly the tensor bytes its `data_offsets` reach. Reads at most the
/// header, which is bounded by the file's size first, so a forged length allocates nothing.
fn check_weights_complete(path: &Path) -> Result<(), EngineError> {
    use std::io::Read;
    let damaged = |what: String| {
        ck_err(
            path,
            format!("{what}; the weights file is likely damaged or truncated"),
        )
    };
    let mut file = fs::File::open(path).map_err(|e| ck_err(path, e))?;
    let size = file.metadata().map_err(|e| ck_err(path, e))?.len();
    let mut len = [0u8; 8];
    if file.read_exact(&mut len).is_err() {
        return Err(damaged(format!(
            "{size} bytes, shorter than a safetensors header"
        )));
    }
    let header_len = u64::from_le_bytes(len);
    if header_len > size.saturating_sub(8) {
        return Err(damaged(format!(
            "the header declares {header_len} bytes but the file has {size}"
        )));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header).map_err(|e| ck_err(path, e))?;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| damaged(format!("its header is not valid JSON ({e})")))?;
    let data_end = header
        .iter()
        .filter(|(name, _)| name.as_str() != "__metadata__")
        .filter_map(|(_, t)| t.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    let expected = 8 + header_len + data_end;
    if expected != size {
        return Err(damaged(format!(
            "the header declares {expected} bytes in all, the file has {size}"
        )));
    }
    Ok(())
}

/// The largest integer under `value` and its dotted key (`model.expert`).
fn largest_integer(key: &str, value: &toml::Value) -> Option<(String, i128)> {
    match value {
        toml::Value::Integer(i) => Some((key.to_string(), i128::from(*i))),
        toml::Value::Array(items) => items
            .iter()
            .filter_map(|v| largest_integer(key, v))
            .max_by_key(|(_, i)| *i),
        toml::Value::Table(table) => table
            .iter()
            .filter_map(|(k, v)| largest_integer(&format!("{key}.{k}"), v))
            .max_by_key(|(_, i)| *i),
        _ => None,
    }
}

/// The stored vocabularies and statistics, with [`Preprocessor::load_json`]'s checks that
/// they match the stored schema (a vocabulary removed by hand would otherwise fail only at
/// prediction time, or build a model of another shape).
fn read_preprocessor(path: &Path) -> Result<Preprocessor, EngineError> {
    Preprocessor::load_json(path).map_err(|e| match e {
        DataError::Json { message, .. } => ck_err(path, message),
        DataError::Io { error, .. } => ck_err(path, error),
        e => ck_err(path, e),
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
