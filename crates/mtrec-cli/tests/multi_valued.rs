//! A multi-valued field (`tags = "a|b|c"`) from the schema to `predict`: the model learns a
//! label decided by one tag wherever it sits in the cell, the checkpoint keeps the separator,
//! and prediction pools a new file's tags as training did (issue 12).

mod common;

use std::path::Path;

use common::{mtrec, stderr, stdout};

const TAGS: [&str; 7] = ["news", "sport", "tech", "music", "food", "art", "travel"];

/// `n` rows of `user,tags,click,like`: 0 to 4 tags a row, `click` = 1 when `sport` is among
/// them (at any position), `like` when `music` is; `user` says nothing.
fn rows(n: usize) -> String {
    let mut s = String::from("user,tags,click,like\n");
    for i in 0..n {
        let tags: Vec<&str> = (0..i % 5)
            .map(|j| TAGS[(i * 3 + j * 2 + i / 7) % TAGS.len()])
            .collect();
        let has = |t: &str| u8::from(tags.contains(&t));
        s.push_str(&format!(
            "u{},{},{},{}\n",
            i % 13,
            tags.join("|"),
            has("sport"),
            has("music")
        ));
    }
    s
}

const SCHEMA: &str = r#"
[[sparse]]
name = "user"
[[sparse]]
name = "tags"
separator = "|"
max_values = 4
[[tasks]]
name = "click"
kind = "binary"
[[tasks]]
name = "like"
kind = "binary"
"#;

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn train_and_predict_pool_the_tags_of_each_row() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.toml"), SCHEMA).unwrap();
    std::fs::write(dir.path().join("d.csv"), rows(1500)).unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "name = \"tags\"\n[data]\nkind = \"files\"\nschema = \"{}\"\ntrain = \"{}\"\n\
             [model]\nkind = \"shared-bottom\"\nbottom = [16]\ntower = [8]\n\
             [train]\nepochs = 10\nbatch_size = 64\nlearning_rate = 0.02\npatience = 0\n",
            s(&dir.path().join("s.toml")),
            s(&dir.path().join("d.csv"))
        ),
    )
    .unwrap();
    let run = dir.path().join("run");
    let o = mtrec(&["train", "--config", &s(&cfg), "--out", &s(&run), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    // Each label is decided by one tag: pooled tag embeddings separate the classes.
    for task in ["click", "like"] {
        let auc = json["tasks"][task]["auc"].as_f64().unwrap();
        assert!(auc > 0.95, "{task}: AUC {auc} ({json})");
    }
    let pre = std::fs::read_to_string(run.join("preprocessor.json")).unwrap();
    assert!(pre.contains("\"separator\": \"|\""), "{pre}");

    // A file without label columns. Rows 0 to 3 hold sport alone, then with an unknown tag
    // before and after it, then twice: unknown tags are left out of the mean and a mean of
    // one tag twice is that tag, so all four pool to the same vector and predict the same.
    let data = dir.path().join("new.csv");
    std::fs::write(
        &data,
        "user,tags\nu1,sport\nu1,zzz|sport\nu1,sport| yyy |\nu1,sport|sport\n\
         u1,news|tech\nu1,\nu1,zzz\nu1,music\n",
    )
    .unwrap();
    let out = dir.path().join("p.csv");
    let o = mtrec(&[
        "predict",
        "--checkpoint",
        &s(&run),
        "--data",
        &s(&data),
        "--out",
        &s(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&out).unwrap();
    let preds: Vec<Vec<f64>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(preds.len(), 8, "{text}");
    assert!(preds.iter().flatten().all(|p| p.is_finite()), "{text}");
    for r in 1..4 {
        assert_eq!(preds[r], preds[0], "row {r}: {text}");
    }
    // No known tag, empty or unknown: the zero vector both.
    assert_eq!(preds[6], preds[5], "{text}");
    let (click, like) = (|r: usize| preds[r][0], |r: usize| preds[r][1]);
    assert!(click(0) > 0.8, "{text}");
    for r in 4..7 {
        assert!(click(r) < 0.2, "row {r}: {text}");
    }
    assert!(click(7) < 0.5, "{text}");
    assert!(like(7) > 0.8 && like(4) < 0.5 && like(0) < 0.5, "{text}");
}
