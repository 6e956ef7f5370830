//! Logs redirected to a file carry no colour escapes (issue 12, fault 9).

mod common;

use std::process::Command;

use common::{project_root, stderr};

#[test]
fn redirected_verbose_log_has_no_ansi_escapes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("schema.toml"),
        "[[sparse]]\nname = \"city\"\n[[dense]]\nname = \"age\"\n\
         [[tasks]]\nname = \"click\"\nkind = \"binary\"\ncolumn = \"click\"\n",
    )
    .unwrap();
    let mut csv = String::from("city,age,click\n");
    for i in 0..40 {
        csv.push_str(&format!("c{},{}.5,{}\n", i % 3, i, (i / 2) % 2));
    }
    std::fs::write(dir.path().join("train.csv"), csv).unwrap();
    let cfg = dir.path().join("exp.toml");
    std::fs::write(
        &cfg,
        format!(
            "name = \"t\"\n[data]\nkind = \"files\"\nschema = \"{}\"\ntrain = \"{}\"\n\
             [train]\nepochs = 1\n",
            dir.path().join("schema.toml").display(),
            dir.path().join("train.csv").display()
        ),
    )
    .unwrap();
    // stderr is a pipe here, as in `mtrec -v train ... 2> log.txt`.
    let out = Command::new(env!("CARGO_BIN_EXE_mtrec"))
        .args(["-v", "train", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(dir.path().join("run"))
        .env_remove("NO_COLOR")
        .current_dir(project_root())
        .output()
        .unwrap();
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("INFO"), "expected info lines at -v:\n{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour escapes in a redirected log:\n{log:?}"
    );
}
