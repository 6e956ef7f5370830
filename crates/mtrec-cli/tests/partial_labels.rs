//! Partial labels from the schema to the commands' output: a conditional task with missing
//! labels, a weighted regression target in milliseconds, and the refusals (issue 12).

mod common;

use std::path::Path;

use common::{assert_clean_failure, mtrec, stderr, stdout};

/// `n` rows of `user,x,click,conv,watch_ms,w`: clicks by user, conversions only after a
/// click, every fifth conversion cell empty, watch time around 1e6 ms by user.
fn rows(n: usize) -> String {
    let mut s = String::from("user,x,click,conv,watch_ms,w\n");
    for i in 0..n {
        let u = (i * 7) % 13;
        let click = (u + i % 3) % 4 == 0;
        let conv = click && i % 2 == 0;
        let conv = if i % 5 == 0 {
            String::new()
        } else {
            u8::from(conv).to_string()
        };
        let watch = 1_000_000 + 20_000 * u + (i * 37) % 5000;
        let w = 1 + u % 3;
        s.push_str(&format!(
            "u{u},{}.5,{},{conv},{watch},{w}\n",
            i % 10,
            u8::from(click)
        ));
    }
    s
}

const SCHEMA: &str = r#"
[[sparse]]
name = "user"
[[dense]]
name = "x"
[[tasks]]
name = "click"
kind = "binary"
[[tasks]]
name = "conv"
kind = "binary"
given = "click"
missing = "mask"
[[tasks]]
name = "watch"
kind = "regression"
column = "watch_ms"
weight = "w"
"#;

/// Writes the schema, `d.csv` and a config (with `extra` appended); returns the config path.
fn setup(dir: &Path, data: &str, extra: &str) -> String {
    std::fs::write(dir.join("s.toml"), SCHEMA).unwrap();
    std::fs::write(dir.join("d.csv"), data).unwrap();
    let cfg = format!(
        "name = \"p\"\n[data]\nkind = \"files\"\nschema = \"{}\"\ntrain = \"{}\"\n\
         [model]\nkind = \"shared-bottom\"\nbottom = [8]\ntower = [4]\n\
         [train]\nepochs = 8\nbatch_size = 64\nlearning_rate = 0.01\npatience = 0\n{extra}",
        dir.join("s.toml").display(),
        dir.join("d.csv").display()
    );
    let path = dir.join("c.toml");
    std::fs::write(&path, cfg).unwrap();
    path.display().to_string()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn train_eval_and_predict_report_labelled_rows_and_the_original_scale() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path(), &rows(1500), "");
    let run = dir.path().join("run");
    let o = mtrec(&["train", "--config", &cfg, "--out", &s(&run), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let tasks = &json["tasks"];
    let n = |t: &str| tasks[t]["n"].as_u64().unwrap();
    // The test split is 10 % of 1500 rows; conv counts only its clicked, labelled rows.
    assert_eq!(n("click"), 150);
    assert!(n("conv") > 0 && n("conv") < 100, "{tasks}");
    assert!(
        tasks["watch"]["weight_sum"].as_f64().unwrap() > 150.0,
        "{tasks}"
    );
    assert!(tasks["conv"].get("weight_sum").is_none(), "{tasks}");

    // eval on a labelled file: the same kind of figures.
    let eval_file = dir.path().join("e.csv");
    std::fs::write(&eval_file, rows(300)).unwrap();
    let o = mtrec(&[
        "eval",
        "--checkpoint",
        &s(&run),
        "--data",
        &s(&eval_file),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let clicked_labelled = rows(300)
        .lines()
        .skip(1)
        .filter(|l| {
            let c: Vec<&str> = l.split(',').collect();
            c[2] == "1" && !c[3].is_empty()
        })
        .count() as u64;
    assert_eq!(json["tasks"]["conv"]["n"].as_u64(), Some(clicked_labelled));
    // MSE on the millisecond scale: the labels spread over 240,000 ms.
    let mse = json["tasks"]["watch"]["mse"].as_f64().unwrap();
    assert!(mse > 1.0 && mse < 1e10, "{mse}");

    // predict: watch time back in milliseconds.
    let out = dir.path().join("p.csv");
    let o = mtrec(&[
        "predict",
        "--checkpoint",
        &s(&run),
        "--data",
        &s(&eval_file),
        "--out",
        &s(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&out).unwrap();
    let watch: Vec<f64> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(2).unwrap().parse().unwrap())
        .collect();
    let mean = watch.iter().sum::<f64>() / watch.len() as f64;
    // Labels: 1e6 + 20,000 u + up to 5,000, u spread over 0..12: mean about 1.12e6.
    assert!(
        (1.0e6..1.3e6).contains(&mean),
        "mean predicted watch time {mean}"
    );
}

#[test]
fn a_bad_weight_and_an_unhonoured_scheme_are_clean_failures() {
    let dir = tempfile::tempdir().unwrap();
    let data = rows(200).replacen(",1\n", ",-2\n", 1);
    let bad_line = data
        .lines()
        .position(|l| l.ends_with(",-2"))
        .map(|i| i + 1)
        .unwrap();
    let cfg = setup(dir.path(), &data, "");
    let o = mtrec(&[
        "train",
        "--config",
        &cfg,
        "--out",
        &s(&dir.path().join("r")),
    ]);
    assert_clean_failure(
        &o,
        &[
            &format!("d.csv:{bad_line}: field `w`"),
            "the weight of task `watch` must be a finite number >= 0, got \"-2\"",
        ],
    );

    let cfg = setup(
        dir.path(),
        &rows(200),
        "[scheme]\nkind = \"cross-distil\"\n",
    );
    let o = mtrec(&[
        "train",
        "--config",
        &cfg,
        "--out",
        &s(&dir.path().join("r")),
    ]);
    assert_clean_failure(
        &o,
        &[
            "s.toml:",
            "[scheme] kind = \"cross-distil\" needs every task labelled on every row with \
             weight 1, but task `conv` has `given = \"click\"`",
        ],
    );
}
