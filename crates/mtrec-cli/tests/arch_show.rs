//! `mtrec arch show`: a hand-written architecture file is printed and drawn; a broken one
//! ends in one line naming the file.

mod common;

use common::{assert_clean_failure, mtrec, stderr, stdout};

/// Two layers: layer 0 expert 2 feeds nothing (unused); two tasks.
const ARCH: &str = r#"{
  "block_width": 16,
  "tower": [32, 8],
  "dropout": 0.1,
  "layers": [
    {"experts": [
      {"features": {"single": ["age", "city"], "interaction": ["device"]},
       "blocks": ["mlp-256", "identity", "mlp-64"]},
      {"features": {"single": ["city"], "interaction": []}, "blocks": ["mlp-32"]},
      {"features": {"single": ["age"], "interaction": []}, "blocks": ["mlp-1024"]}
    ]},
    {"experts": [
      {"inputs": [0, 1], "blocks": ["mlp-128"]},
      {"inputs": [1], "blocks": ["identity", "mlp-16"]}
    ]}
  ],
  "towers": [
    {"task": "click", "inputs": [0, 1]},
    {"task": "like", "inputs": [1]}
  ]
}"#;

#[test]
fn prints_the_architecture_and_writes_the_diagram() {
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch.json");
    std::fs::write(&arch, ARCH).unwrap();
    let dot = dir.path().join("arch.dot");
    let o = mtrec(&[
        "arch",
        "show",
        arch.to_str().unwrap(),
        "--dot",
        dot.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for needle in [
        "mlp-256 -> identity -> mlp-64",
        "identity -> mlp-16",
        "mlp-1024  [unused]",
        "click",
        "like",
    ] {
        assert!(text.contains(needle), "stdout lacks {needle:?}:\n{text}");
    }
    let svg = std::fs::read_to_string(dir.path().join("arch.svg")).expect("default SVG path");
    assert!(svg.starts_with("<?xml") || svg.starts_with("<svg"));
    assert!(
        std::fs::read_to_string(&dot)
            .unwrap()
            .starts_with("digraph")
    );
}

#[test]
fn json_output_names_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch.json");
    std::fs::write(&arch, ARCH).unwrap();
    let svg = dir.path().join("pic.svg");
    let o = mtrec(&[
        "arch",
        "show",
        arch.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v["text"].as_str().unwrap().contains("mlp-128"));
    assert_eq!(v["svg"].as_str().unwrap(), svg.to_str().unwrap());
    assert!(v["dot"].is_null());
    assert!(svg.exists());
}

#[test]
fn malformed_json_is_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("broken.json");
    std::fs::write(&arch, r#"{"block_width": 16, "tower": [32], "#).unwrap();
    let o = mtrec(&["arch", "show", arch.to_str().unwrap()]);
    assert_clean_failure(&o, &["broken.json", "line 1"]);
    assert_eq!(stderr(&o).trim_end().lines().count(), 1, "{}", stderr(&o));
    assert!(!dir.path().join("broken.svg").exists());
}

#[test]
fn unknown_op_names_the_file_and_the_op() {
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch.json");
    std::fs::write(&arch, ARCH.replace("mlp-32", "conv-3")).unwrap();
    let o = mtrec(&["arch", "show", arch.to_str().unwrap()]);
    assert_clean_failure(&o, &["arch.json", "conv-3"]);
}

#[test]
fn missing_file_is_named() {
    let o = mtrec(&["arch", "show", "/nonexistent/arch.json"]);
    assert_clean_failure(&o, &["/nonexistent/arch.json"]);
}

#[test]
fn an_expert_index_out_of_range_is_refused_before_drawing() {
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("arch.json");
    std::fs::write(
        &arch,
        ARCH.replace(
            r#""inputs": [0, 1], "blocks": ["mlp-128"]"#,
            r#""inputs": [0, 7], "blocks": ["mlp-128"]"#,
        ),
    )
    .unwrap();
    let o = mtrec(&["arch", "show", arch.to_str().unwrap()]);
    assert_clean_failure(&o, &["arch.json", "expert 7"]);
    assert!(!dir.path().join("arch.svg").exists());
}
