//! Real recommendation logs: the KuaiRand config with derived labels and bucketised fields end
//! to end (train, eval, predict), the label-leak check, and `data inspect`'s task proposals.

mod common;

use std::path::Path;

use common::{assert_clean_failure, mtrec, stderr, stdout};

#[test]
fn kuairand_config_trains_evaluates_and_predicts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("kuairand");
    let ck = out.display().to_string();
    let o = mtrec(&[
        "train",
        "--config",
        "configs/kuairand-mtl.toml",
        "--epochs",
        "2",
        "--out",
        &ck,
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let mut tasks: Vec<&str> = v["tasks"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    tasks.sort_unstable();
    assert_eq!(tasks, vec!["effective_view", "is_click", "long_view"]);
    // No input gives a label away once the watch-time columns are labels only.
    assert!(!stderr(&o).contains("nearly determines"), "{}", stderr(&o));
    // The fitted bucket edges travel with the checkpoint.
    let pre = std::fs::read_to_string(out.join("preprocessor.json")).unwrap();
    let pre: serde_json::Value = serde_json::from_str(&pre).unwrap();
    let fields: Vec<&str> = pre["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["fans_user_num", "register_days"]);

    let sample = "data/samples/kuairand/kuairand_sample.csv";
    let o = mtrec(&["eval", "--checkpoint", &ck, "--data", sample, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let preds = dir.path().join("p.csv");
    let o = mtrec(&[
        "predict",
        "--checkpoint",
        &ck,
        "--data",
        sample,
        "--out",
        &preds.display().to_string(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&preds).unwrap();
    assert_eq!(text.lines().count(), 201, "header + 200 rows");
    assert_eq!(
        text.lines().next(),
        Some("is_click,long_view,effective_view")
    );
}

/// 200 rows where `echo` repeats the click label as a category and `noise` does not.
fn write_leaky(dir: &Path) -> String {
    let mut csv = String::from("user,noise,echo,click\n");
    for i in 0..200 {
        let click = u8::from((i * 7 + i / 3) % 5 < 2);
        let echo = if click == 1 { "yes" } else { "no" };
        csv.push_str(&format!("u{},n{},{echo},{click}\n", i % 7, i % 4));
    }
    std::fs::write(dir.join("rows.csv"), csv).unwrap();
    std::fs::write(
        dir.join("schema.toml"),
        "[[sparse]]\nname = \"user\"\n[[sparse]]\nname = \"noise\"\n[[sparse]]\nname = \"echo\"\n\
         [[tasks]]\nname = \"click\"\nkind = \"binary\"\n",
    )
    .unwrap();
    let config = dir.join("leaky.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"leaky\"\n[data]\nkind = \"files\"\nschema = \"{}\"\ntrain = \"{}\"\n\
             [embedding]\ndim = 4\n[model]\nkind = \"shared-bottom\"\nbottom = [8]\ntower = [4]\n\
             [train]\nbatch_size = 32\nepochs = 1\n",
            dir.join("schema.toml").display(),
            dir.join("rows.csv").display()
        ),
    )
    .unwrap();
    config.display().to_string()
}

/// Before: a column copying the label trained silently to a perfect AUC. Now a warning names
/// the field and the task, and `--strict` refuses to train.
#[test]
fn a_planted_leak_is_a_warning_and_strict_makes_it_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_leaky(dir.path());
    let out = dir.path().join("run").display().to_string();
    let o = mtrec(&["train", "--config", &config, "--out", &out, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(
            "input field `echo` nearly determines task `click` (AUC 1.000 alone on the training \
             split)"
        ),
        "{err}"
    );
    assert!(!err.contains("`noise`") && !err.contains("`user`"), "{err}");

    let o = mtrec(&["train", "--config", &config, "--out", &out, "--strict"]);
    assert_clean_failure(
        &o,
        &[
            "--strict: 1 input field(s) nearly determine a label",
            "`echo` nearly determines task `click`",
        ],
    );
}

#[test]
fn inspect_proposes_tasks_and_flags_id_like_columns() {
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("schema.toml");
    let o = mtrec(&[
        "data",
        "inspect",
        "data/samples/kuairand/kuairand_sample.csv",
        "--schema-out",
        &schema.display().to_string(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = stdout(&o);
    // user_id: 145 distinct values in 200 rows; is_video_author: two values, kept an input.
    assert!(table.contains("sparse, id-like"), "{table}");
    assert!(table.contains("sparse, task?"), "{table}");
    let text = std::fs::read_to_string(&schema).unwrap();
    assert!(
        text.contains(
            "# ID-like (mostly distinct values; consider min_count or dropping them): user_id\n"
        ),
        "{text}"
    );
    assert!(text.contains("is_live_streamer, is_video_author"), "{text}");
    let s = mtrec_data::Schema::from_toml_str(&text, "schema.toml").expect("loads");
    assert_eq!(s.task_names(), vec!["is_click"]);
    assert!(s.sparse.iter().any(|f| f.name == "is_video_author"));
}
