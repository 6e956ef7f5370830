//! `mtrec predict`: per-task predictions of a checkpoint, as CSV.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mtrec_data::{Preprocessor, SourceSpec};
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
    write_csv(&args.out, &meta.task_names, &preds)
        .with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!("wrote {} rows to {}", table.n_rows, args.out.display());
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
