//! `mtrec eval`: a checkpoint's metrics on a labelled file.

use anyhow::Result;
use mtrec_engine::{evaluate, load_checkpoint};

use crate::cli::EvalArgs;
use crate::progress::Progress;

pub fn run(args: EvalArgs) -> Result<()> {
    let device = mtrec_engine::default_device();
    let ck = load_checkpoint(&args.checkpoint, &device)?;
    let spinner = Progress::spinner("encoding data");
    let source = super::predict::source_for(&args.data, &ck.preprocessor);
    let table = ck.preprocessor.encode_file(&source)?;
    spinner.finish_and_clear();
    let reqs = mtrec_engine::task_requirements(&ck.config);
    let schema = &ck.preprocessor.schema;
    for warning in mtrec_data::check_eval_rows(&reqs, schema, &source, &table)? {
        tracing::warn!("{warning}");
    }
    let meta = ck.preprocessor.meta();
    // The loss weighted as training's validation and test losses were: fixed weights, never
    // the learnt ones, so the figures compare (see `Monitor::Loss`).
    let weights = ck.config.weighting.selection_weights(&meta.task_names)?;
    let report = evaluate(
        &ck.model,
        &table,
        &meta.task_names,
        &meta.task_kinds,
        &weights,
        ck.config.train.eval_batch_size,
        &device,
    )
    .map_err(|e| e.in_split(&args.data.display().to_string()))?;
    if args.output.json {
        let mut json = report.to_json();
        json["checkpoint"] = args.checkpoint.display().to_string().into();
        json["data"] = args.data.display().to_string().into();
        println!("{}", serde_json::to_string(&json)?);
    } else {
        println!("{}", super::report_table(ck.config.model.kind(), &report));
    }
    Ok(())
}
