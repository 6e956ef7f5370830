//! `mtrec predict`: per-task predictions of a checkpoint, as CSV.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mtrec_data::{EncodedTable, FeatureMeta, Preprocessor, SourceSpec};
use mtrec_engine::{load_checkpoint, predict};

use crate::cli::PredictArgs;
use crate::progress::Progress;

/// How to read a user's file for a checkpoint: the layout (columns of a header-less file) comes
/// from the training schema; format and compression from the file name.
pub fn source_for(path: &Path, pre: &Preprocessor) -> SourceSpec {
    let mut spec = SourceSpec::new(path);
    if let Some(columns) = &pre.schema.columns {
        spec.header = false;
        spec.columns = Some(columns.clone());
    }
    spec
}

pub fn run(args: PredictArgs) -> Result<()> {
    let device = mtrec_engine::default_device();
    let ck = load_checkpoint(&args.checkpoint, &device)?;
    let spinner = Progress::spinner("encoding data");
    let table = ck
        .preprocessor
        .encode_file_unlabelled(&source_for(&args.data, &ck.preprocessor))?;
    spinner.finish_and_clear();
    let meta = ck.preprocessor.meta();
    let preds = predict(
        &ck.model,
        &table,
        &meta.task_kinds,
        ck.config.train.eval_batch_size,
        &device,
    );
    check_finite(&preds, &table, &meta, &args.data)?;
    write_csv(&args.out, &meta.task_names, &preds)
        .with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!("wrote {} rows to {}", table.n_rows, args.out.display());
    Ok(())
}

/// A NaN in a predictions file would pass silently into whatever consumes it, so a
/// non-finite prediction is an error naming the row, the task and the likely cause.
fn check_finite(
    preds: &[Vec<f32>],
    table: &EncodedTable,
    meta: &FeatureMeta,
    data: &Path,
) -> Result<()> {
    for (task, values) in meta.task_names.iter().zip(preds) {
        let Some(row) = values.iter().position(|v| !v.is_finite()) else {
            continue;
        };
        let bad_inputs: Vec<&str> = meta
            .dense_names
            .iter()
            .zip(table.dense_row(row))
            .filter(|(_, v)| !v.is_finite())
            .map(|(name, _)| name.as_str())
            .collect();
        let cause = if bad_inputs.is_empty() {
            "its inputs are finite, so the checkpoint's weights are non-finite (training \
             diverged)"
                .to_string()
        } else {
            format!("non-finite input in column(s) {}", bad_inputs.join(", "))
        };
        let n_bad = values.iter().filter(|v| !v.is_finite()).count();
        anyhow::bail!(
            "{}: the prediction for task `{task}` is {} on data row {} ({n_bad} of {} rows \
             non-finite): {cause}; no predictions written",
            data.display(),
            values[row],
            row + 1,
            values.len()
        );
    }
    Ok(())
}

/// Written to a temporary sibling and renamed, so a failed run leaves no partial file.
fn write_csv(out: &Path, names: &[String], preds: &[Vec<f32>]) -> Result<()> {
    let tmp = PathBuf::from(format!("{}.tmp", out.display()));
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        writeln!(w, "{}", names.join(","))?;
        let n = preds.first().map_or(0, Vec::len);
        for i in 0..n {
            let row: Vec<String> = preds.iter().map(|p| format!("{}", p[i])).collect();
            writeln!(w, "{}", row.join(","))?;
        }
        w.flush()?;
    }
    std::fs::rename(&tmp, out)?;
    Ok(())
}
