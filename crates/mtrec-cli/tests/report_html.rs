//! `mtrec report`: a folder of tiny trained runs gives the comparison table with its
//! statistics and Δm, MMoE gate diagnostics that are probabilities, and a page that renders in
//! headless Chromium without console errors and with every image loaded; a folder without
//! runs is a clear error.
//!
//! The browser check needs Chromium: `apt-get install -y chromium` (Debian; or set
//! `MTREC_CHROMIUM` to a Chrome/Chromium binary). Without one the test fails saying so,
//! unless `MTREC_SKIP_BROWSER_TEST=1` is set, which skips it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{assert_clean_failure, mtrec, stderr};

/// A tiny Census group-1 run: 2,000 rows per split, 2 epochs of at most 3 batches, 1 thread.
fn train(config: &str, out: &Path, seed: u64) {
    let out = out.display().to_string();
    let seed = seed.to_string();
    let o = mtrec(&[
        "--threads",
        "1",
        "train",
        "--config",
        config,
        "--out",
        &out,
        "--seed",
        &seed,
        "--epochs",
        "2",
        "--set",
        "data.subsample=2000",
        "--set",
        "train.max_batches_per_epoch=3",
        "--json",
    ]);
    assert!(o.status.success(), "training {config}: {}", stderr(&o));
}

fn report(dir: &Path, extra: &[&str]) -> std::process::Output {
    let dir = dir.display().to_string();
    let mut args = vec!["--threads", "1", "report", dir.as_str()];
    args.extend_from_slice(extra);
    mtrec(&args)
}

#[test]
fn report_of_trained_runs_has_the_statistics_table_and_mmoe_gate_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path();
    train("configs/census-g1-single-task.toml", &runs.join("st-s1"), 1);
    train("configs/census-g1-mmoe.toml", &runs.join("mmoe-s1"), 1);
    train("configs/census-g1-mmoe.toml", &runs.join("mmoe-s2"), 2);
    let o = report(runs, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = common::stdout(&o);
    assert!(
        table.contains("census-g1-mmoe") && table.contains("Δm"),
        "{table}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(runs.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["n_runs"], 3);
    let comparison = &json["comparisons"][0];
    assert_eq!(comparison["baseline"], "census-g1-single-task");
    let rows = comparison["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["name"], "census-g1-single-task");
    assert_eq!(rows[0]["delta_m"], 0.0, "Single-Task against itself");
    let mmoe = &rows[1];
    assert_eq!(mmoe["runs"], 2);
    // Two seeds: n, a sample std and a 95 % interval around the mean.
    let income = &mmoe["tasks"][0];
    assert_eq!(income["n"], 2);
    let mean = income["mean"].as_f64().unwrap();
    let (lo, hi) = (
        income["ci95"][0].as_f64().unwrap(),
        income["ci95"][1].as_f64().unwrap(),
    );
    assert!(lo <= mean && mean <= hi, "{income}");
    assert!(mmoe["delta_m"].is_number());

    // Gate diagnostics of both MMoE runs: one level, a gate per task over 8 experts, each
    // mean gate distribution sums to 1 and its share of experts lies in [1/8, 1].
    let groups = json["groups"].as_array().unwrap();
    let mmoe_group = groups
        .iter()
        .find(|g| g["name"] == "census-g1-mmoe")
        .unwrap();
    for run in mmoe_group["runs"].as_array().unwrap() {
        let gates = run["gates"].as_array().unwrap();
        assert_eq!(gates.len(), 1, "{run}");
        let level = &gates[0];
        assert_eq!(level["gates"], serde_json::json!(["income", "marital"]));
        assert_eq!(level["experts"].as_array().unwrap().len(), 8);
        assert_eq!(level["rows"], 2000, "the subsampled test split");
        for (g, row) in level["mean"].as_array().unwrap().iter().enumerate() {
            let sum: f64 = row
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .sum();
            assert!((sum - 1.0).abs() < 1e-4, "gate {g} sums to {sum}");
            let share = level["share"][g].as_f64().unwrap();
            assert!((0.125 - 1e-9..=1.0 + 1e-9).contains(&share), "{share}");
        }
    }
    assert_eq!(mmoe_group["gate_usage"].as_array().unwrap().len(), 2);
    assert_eq!(mmoe_group["gate_usage"][0]["share"]["n"], 2);
    let st_group = groups
        .iter()
        .find(|g| g["name"] == "census-g1-single-task")
        .unwrap();
    assert!(st_group["gate_usage"].as_array().unwrap().is_empty());

    let html = std::fs::read_to_string(runs.join("report.html")).unwrap();
    for needle in [
        "<table>",
        "census-g1-mmoe",
        "Δm %",
        "class=\"heatmap\"",
        "mmoe-s1: mean gate weight per expert",
        "effective experts (share)",
        "data:image/svg+xml;base64,",
        "How to read this page",
    ] {
        assert!(html.contains(needle), "report.html lacks {needle:?}");
    }
    let md = std::fs::read_to_string(runs.join("report.md")).unwrap();
    assert!(md.contains("| census-g1-mmoe | mmoe | 2 |"), "{md}");
    assert!(md.contains("Mean gate weights, mmoe-s1"), "{md}");
    assert!(md.contains("| gate | e1 | e2 |"), "{md}");

    // --out elsewhere, without gates: the page, its markdown and JSON land there.
    let out = dir.path().join("elsewhere/page.html");
    let o = report(
        runs,
        &["--no-gates", "--out", &out.display().to_string(), "--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let printed: serde_json::Value = serde_json::from_str(&common::stdout(&o)).unwrap();
    assert_eq!(printed["n_runs"], 3);
    assert!(out.with_extension("md").is_file() && out.with_extension("json").is_file());
    let plain = std::fs::read_to_string(&out).unwrap();
    assert!(!plain.contains("class=\"heatmap\""));
}

#[test]
fn a_folder_without_runs_is_a_clear_error() {
    let o = mtrec(&["report", "--help"]);
    assert!(o.status.success());
    assert!(common::stdout(&o).contains("Examples:\n  mtrec report "));
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("empty/sub")).unwrap();
    let o = report(dir.path(), &[]);
    assert_clean_failure(&o, &["no runs found", "metrics.json"]);
    assert!(!dir.path().join("report.html").exists());
    let o = report(&dir.path().join("missing"), &[]);
    assert_clean_failure(&o, &["missing", "no such folder"]);
    let file = dir.path().join("metrics.json");
    std::fs::write(&file, "{}").unwrap();
    let o = report(&file, &[]);
    assert_clean_failure(&o, &["metrics.json", "expected a folder of runs"]);
    std::fs::remove_file(&file).unwrap();
    // A broken metrics.json is named.
    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("metrics.json"), "{ not json").unwrap();
    let o = report(dir.path(), &[]);
    assert_clean_failure(
        &o,
        &[
            "none of the 1 run folder(s) could be read",
            "bad/metrics.json",
        ],
    );
}

/// Records window errors (scripts and failed resources), console errors and CSP violations,
/// and after `load` writes whether every image loaded and every inline SVG has a size into
/// `#mtrec-check`, for `--dump-dom` to show.
const CHECK_SCRIPT: &str = r#"<script>
window.__problems = [];
window.addEventListener('error', function (e) {
  var t = e.target;
  if (t && t !== window && (t.src || t.href)) {
    window.__problems.push('resource failed: ' + String(t.src || t.href).slice(0, 60));
  } else {
    window.__problems.push('error: ' + e.message);
  }
}, true);
window.addEventListener('securitypolicyviolation', function (e) {
  window.__problems.push('blocked: ' + e.blockedURI);
});
var __consoleError = console.error;
console.error = function () {
  window.__problems.push('console.error: ' + Array.prototype.join.call(arguments, ' '));
  __consoleError.apply(console, arguments);
};
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (i) { return !i.complete || i.naturalWidth === 0; })
    .map(function (i) { return i.alt; });
  var svgs = Array.prototype.slice.call(document.querySelectorAll('body > figure > svg, figure.gates > svg'));
  var empty = svgs.filter(function (s) {
    var r = s.getBoundingClientRect(); return r.width === 0 || r.height === 0;
  }).length;
  var out = document.createElement('pre');
  out.id = 'mtrec-check';
  out.textContent = 'MTREC-CHECK ' + JSON.stringify({ images: images.length, broken: broken,
    svgs: svgs.length, empty_svgs: empty, tables: document.querySelectorAll('table').length,
    problems: window.__problems }) + ' END';
  document.body.appendChild(out);
});
</script>"#;

fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("MTREC_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ]
    .iter()
    .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
    .find(|p| p.is_file())
}

#[test]
fn the_page_renders_in_headless_chromium_without_errors_and_its_images_load() {
    let Some(browser) = chromium() else {
        if std::env::var("MTREC_SKIP_BROWSER_TEST").is_ok_and(|v| v == "1") {
            eprintln!("skipped: no Chromium and MTREC_SKIP_BROWSER_TEST=1");
            return;
        }
        panic!(
            "headless Chromium not found (looked for MTREC_CHROMIUM, chromium, chromium-browser, \
             google-chrome on PATH): install it with `apt-get install -y chromium` (Debian), \
             or set MTREC_SKIP_BROWSER_TEST=1 to skip this test"
        );
    };
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    train("configs/census-g1-mmoe.toml", &runs.join("mmoe-s1"), 1);
    let o = report(&runs, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let html = std::fs::read_to_string(runs.join("report.html")).unwrap();
    // The page forbids scripts (its CSP has `default-src 'none'`); the test copy allows its
    // own inline check script and nothing else.
    let csp = "default-src 'none'";
    assert!(html.contains(csp), "the page should carry its CSP");
    let page = html
        .replacen(csp, "default-src 'none'; script-src 'unsafe-inline'", 1)
        .replacen("<head>", &format!("<head>\n{CHECK_SCRIPT}"), 1);
    let checked = dir.path().join("checked.html");
    std::fs::write(&checked, page).unwrap();

    let profile = dir.path().join("profile");
    let child = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=10000",
            "--window-size=1280,2000",
            &format!("--user-data-dir={}", profile.display()),
            "--dump-dom",
            &format!("file://{}", checked.display()),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", browser.display()));
    // A hung browser must not hang the suite: kill it after two minutes.
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if rx
            .recv_timeout(std::time::Duration::from_secs(120))
            .is_err()
        {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = tx.send(());
    let _ = watchdog.join();
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium failed: {log}");
    // The marker in the element the script appended (the script's own source has it too).
    let start = dom
        .find("<pre id=\"mtrec-check\">MTREC-CHECK ")
        .map(|i| i + "<pre id=\"mtrec-check\">".len())
        .unwrap_or_else(|| panic!("no check marker in the dumped DOM (page did not load?)\n{log}"));
    let end = dom[start..].find(" END").unwrap() + start;
    let check: serde_json::Value = serde_json::from_str(
        &dom[start + "MTREC-CHECK ".len()..end]
            .replace("&quot;", "\"")
            .replace("&amp;", "&"),
    )
    .unwrap();
    assert_eq!(check["problems"], serde_json::json!([]), "{check}\n{log}");
    assert_eq!(check["broken"], serde_json::json!([]), "{check}");
    assert!(check["images"].as_u64().unwrap() >= 2, "curves: {check}");
    assert!(check["svgs"].as_u64().unwrap() >= 1, "heat map: {check}");
    assert_eq!(check["empty_svgs"], 0, "{check}");
    assert!(check["tables"].as_u64().unwrap() >= 3, "{check}");
    // Console messages also reach Chromium's log; the page is the only thing it loaded, so
    // none may appear (CSP violations are logged without the page's address).
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console output: {console:?}");
}

/// A run folder as `mtrec train` leaves it, as far as the report reads it: metrics with a
/// one-epoch history and the saved config.
fn hand_run(root: &Path, sub: &str, name: &str, seed: u64, auc: f64, model: &str) {
    let d = root.join(sub);
    std::fs::create_dir_all(&d).unwrap();
    let valid = serde_json::json!({"loss": 0.5, "tasks": [{"name": "income", "kind": "binary",
        "metrics": {"auc": auc}}]});
    let metrics = serde_json::json!({"name": name, "model": "mmoe", "seed": seed,
        "wall_seconds": 1.0, "tasks": {"income": {"auc": auc, "n": 10}},
        "history": [{"epoch": 1, "train_loss": 0.7, "valid": valid}]});
    std::fs::write(d.join("metrics.json"), metrics.to_string()).unwrap();
    let config = format!(
        "name = \"{name}\"\n[data]\nkind = \"census\"\ngroup = 1\n[train]\nseed = {seed}\n[model]\n{model}\n"
    );
    std::fs::write(d.join("config.toml"), config).unwrap();
}

/// A grid folder as `mtrec run` leaves it: runs of one name with two expert counts (as the
/// trials of a tuning were before they were named apart), one run failed in results.jsonl,
/// one epoch each. The report keeps the settings apart, lists the failure and draws the
/// single-epoch curves as dots on a whole-number axis.
#[test]
fn a_grid_report_keeps_settings_apart_lists_failures_and_draws_one_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let grid = dir.path();
    for (sub, seed, n, auc) in [
        ("a-s1", 1, 2, 0.9),
        ("a-s2", 2, 2, 0.92),
        ("b-s1", 1, 8, 0.8),
    ] {
        hand_run(
            grid,
            sub,
            "m",
            seed,
            auc,
            &format!("kind = \"mmoe\"\nn_experts = {n}"),
        );
        std::fs::write(grid.join(format!("{sub}.log")), "INFO\n").unwrap();
    }
    let record = |id: &str, status: &str, error: Option<&str>| {
        serde_json::json!({"id": id, "config": "c.toml", "command": "train", "overrides": [],
            "seed": 2, "status": status, "error": error})
        .to_string()
    };
    let results = [
        record("a-s1", "ok", None),
        record(
            "b-s2",
            "failed",
            Some("INFO loading\nerror: data/x.csv: no such file\n\nCaused by:\n  y"),
        ),
    ];
    std::fs::write(grid.join("results.jsonl"), results.join("\n")).unwrap();
    let o = report(grid, &["--no-gates"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = common::stdout(&o);
    assert!(
        out.contains("m [model.n_experts=2]") && out.contains("m [model.n_experts=8]"),
        "{out}"
    );
    assert!(
        out.contains("note: `m`: its runs have 2 different settings"),
        "{out}"
    );
    assert!(
        out.contains("b-s2") && out.contains("data/x.csv: no such file"),
        "{out}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(grid.join("report.json")).unwrap()).unwrap();
    let rows = json["comparisons"][0]["rows"].as_array().unwrap();
    let runs: Vec<u64> = rows.iter().map(|r| r["runs"].as_u64().unwrap()).collect();
    assert_eq!(runs, [2, 1], "{rows:?}");
    assert_eq!(json["failed_runs"][0]["id"], "b-s2");
    assert_eq!(json["failed_runs"][0]["error"], "data/x.csv: no such file");
    let md = std::fs::read_to_string(grid.join("report.md")).unwrap();
    assert!(md.contains("## Failed runs (1)"), "{md}");
    assert!(
        md.contains("| b-s2 | data/x.csv: no such file | results.jsonl |"),
        "{md}"
    );
    let html = std::fs::read_to_string(grid.join("report.html")).unwrap();
    assert!(html.contains("Failed runs (1)") && html.contains("m [model.n_experts=8]"));
    // One epoch: each curve is a dot (plotters writes `<circle`), inside the page's base64
    // images; decode one and look.
    let start =
        html.find("data:image/svg+xml;base64,").unwrap() + "data:image/svg+xml;base64,".len();
    let end = start + html[start..].find('"').unwrap();
    let svg = decode_base64(&html[start..end]);
    assert!(
        svg.contains("<circle"),
        "a one-epoch curve is drawn as a dot"
    );
    assert!(
        !svg.contains(">0.5<") && !svg.contains(">1.5<") && !svg.contains(">0.50<"),
        "{svg}"
    );
}

fn decode_base64(text: &str) -> String {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bytes: Vec<u8> = text.bytes().filter(|c| *c != b'=').map(value).collect();
    let mut out = Vec::new();
    for chunk in bytes.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, v)| n | (u32::from(*v) << (18 - 6 * i)));
        for k in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * k)) as u8);
        }
    }
    String::from_utf8(out).unwrap()
}
