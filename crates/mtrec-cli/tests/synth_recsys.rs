//! `mtrec data synth --kind recsys`: the data file, its schema and its ground truth, options,
//! training on the result, and clear failures.

mod common;

use std::path::Path;

use common::{assert_clean_failure, mtrec, stderr, stdout};

fn synth(args: &[&str]) -> std::process::Output {
    let mut all = vec!["data", "synth"];
    all.extend_from_slice(args);
    mtrec(&all)
}

fn truth(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("truth file");
    serde_json::from_str(&text).expect("truth JSON")
}

#[test]
fn recsys_writes_data_schema_and_truth_that_parse() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("X.csv");
    let o = synth(&[
        "--kind",
        "recsys",
        "--rows",
        "5000",
        "--out",
        &out.display().to_string(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("kind = \"files\""), "{}", stderr(&o));

    let schema_path = dir.path().join("X.schema.toml");
    let truth_path = dir.path().join("X.truth.json");
    for p in [&out, &schema_path, &truth_path] {
        assert!(p.exists(), "{} missing", p.display());
    }
    let schema = mtrec_data::Schema::from_toml_file(&schema_path).expect("schema parses");
    assert_eq!(schema.sparse.len(), 20);
    assert_eq!(schema.dense.len(), 4);
    assert_eq!(
        schema.task_names(),
        ["click", "like", "buy", "share", "follow"]
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header.len(), 29);
    assert_eq!(lines.count(), 5000);

    let v = truth(&truth_path);
    assert_eq!(v["kind"], "recsys");
    assert_eq!(v["rows"], 5000);
    assert_eq!(v["seed"], 2018);
    assert_eq!(v["between_groups"], "conflict");
    assert_eq!(v["sparse_fields"].as_array().map(Vec::len), Some(20));
    assert_eq!(v["tasks"].as_array().map(Vec::len), Some(5));
    assert_eq!(v["groups"][0]["correlation"], 0.8);
    let click = v["tasks"][0]["observed_positive_rate"].as_f64().unwrap();
    assert!((click - 0.3).abs() < 0.03, "{click}");

    let ins = mtrec(&["data", "inspect", &out.display().to_string(), "--json"]);
    let iv: serde_json::Value = serde_json::from_str(stdout(&ins).trim()).unwrap();
    assert_eq!(iv["inspection"]["n_rows"], 5000);
}

#[test]
fn recsys_options_reach_the_truth_and_the_parquet_file_trains() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.parquet");
    let o = synth(&[
        "--kind",
        "recsys",
        "--rows",
        "3000",
        "--out",
        &out.display().to_string(),
        "--seed",
        "3",
        "--tasks",
        "a:0.2,b:0.1",
        "--tasks",
        "c:0.3",
        "--correlation",
        "0.5",
        "--between-groups",
        "independent",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = truth(&dir.path().join("p.truth.json"));
    assert_eq!(v["seed"], 3);
    assert_eq!(v["between_groups"], "independent");
    assert_eq!(v["groups"][0]["tasks"], serde_json::json!(["a", "b"]));
    assert_eq!(v["groups"][1]["tasks"], serde_json::json!(["c"]));
    assert_eq!(v["groups"][1]["correlation"], 0.5);
    assert_eq!(v["config"]["seed"], 3);

    // The files are ready for `[data] kind = "files"`: one file, split by the loader.
    let config = dir.path().join("planted.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"planted\"\n[data]\nkind = \"files\"\nschema = {:?}\ntrain = {:?}\n\
             [model]\nkind = \"shared-bottom\"\n[train]\nepochs = 1\nbatch_size = 256\n",
            dir.path().join("p.schema.toml").display().to_string(),
            out.display().to_string()
        ),
    )
    .unwrap();
    let run = dir.path().join("run");
    let o = mtrec(&[
        "train",
        "--config",
        &config.display().to_string(),
        "--out",
        &run.display().to_string(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    for t in ["a", "b", "c"] {
        assert!(r["tasks"][t]["auc"].is_number(), "{r}");
    }
}

#[test]
fn recsys_config_file_sets_every_parameter() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("g.toml");
    std::fs::write(
        &cfg,
        "n_sparse = 8\nn_dense = 2\nfields_per_group = 3\nseed = 5\n\
         [[groups]]\nname = \"views\"\ntasks = [{ name = \"view\", positive_rate = 0.4 }]\n\
         [[groups]]\nname = \"buys\"\ncorrelation = 0.9\n\
         tasks = [{ name = \"cart\", positive_rate = 0.1 },\n\
                  { name = \"buy\", positive_rate = 0.02 }]\n",
    )
    .unwrap();
    let out = dir.path().join("g.csv");
    let o = synth(&[
        "--kind",
        "recsys",
        "--rows",
        "1000",
        "--out",
        &out.display().to_string(),
        "--recsys-config",
        &cfg.display().to_string(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = truth(&dir.path().join("g.truth.json"));
    assert_eq!(v["seed"], 5);
    assert_eq!(v["sparse_fields"].as_array().map(Vec::len), Some(8));
    assert_eq!(v["groups"][1]["name"], "buys");
    assert_eq!(v["groups"][1]["correlation"], 0.9);

    std::fs::write(&cfg, "n_sparce = 8\n").unwrap();
    let o = synth(&[
        "--kind",
        "recsys",
        "--out",
        &out.display().to_string(),
        "--recsys-config",
        &cfg.display().to_string(),
    ]);
    assert_clean_failure(&o, &["g.toml", "n_sparce"]);
}

#[test]
fn bad_kinds_and_options_fail_clearly() {
    let o = synth(&["--kind", "bogus", "--out", "x.csv"]);
    assert_clean_failure(&o, &["bogus", "mmoe", "recsys"]);

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.csv").display().to_string();
    let cases: [(&[&str], &[&str]); 5] = [
        (&["--tasks", "click:0.3"], &["only apply to --kind recsys"]),
        (
            &["--kind", "recsys", "--tasks", "click=0.3"],
            &["--tasks \"click=0.3\"", "NAME:POSITIVE_RATE"],
        ),
        (
            &["--kind", "recsys", "--tasks", "click:1.5"],
            &["task `click`: positive_rate must be in (0, 1)"],
        ),
        (
            &["--kind", "recsys", "--correlation", "-2"],
            &["--correlation must be in [-1, 1]"],
        ),
        (
            &["--kind", "recsys", "--rows", "0"],
            &["rows must be at least 1"],
        ),
    ];
    for (args, needles) in cases {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--out", &out]);
        let o = synth(&all);
        assert_clean_failure(&o, needles);
    }
    assert!(!Path::new(&out).exists());
}
