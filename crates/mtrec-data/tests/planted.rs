//! The planted-structure generator: positive rates, planted task correlations, irrelevant
//! fields, reproducibility, the written files and config errors.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::Path;
use std::sync::OnceLock;

use mtrec_data::planted::{self, DEFAULT_CHUNK_ROWS, schema_path, truth_path};
use mtrec_data::{
    BetweenGroups, DataConfig, FilesConfig, GroundTruth, Planted, PlantedConfig, PlantedRows,
    Schema, SourceReader, SourceSpec, load,
};

const N: usize = 200_000;

fn cfg(seed: u64) -> PlantedConfig {
    PlantedConfig {
        seed,
        ..PlantedConfig::default()
    }
}

/// The default generator (seed 7) and its first `N` rows, built once for the tests that read them.
fn default_rows() -> &'static (Planted, PlantedRows) {
    static ROWS: OnceLock<(Planted, PlantedRows)> = OnceLock::new();
    ROWS.get_or_init(|| {
        let p = Planted::new(&cfg(7)).expect("default config builds");
        let rows = p.generate(N);
        (p, rows)
    })
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    sab / (saa * sbb).sqrt()
}

fn std_dev(a: &[f64]) -> f64 {
    let n = a.len() as f64;
    let m = a.iter().sum::<f64>() / n;
    (a.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n).sqrt()
}

/// Plug-in mutual information (nats) of a categorical `x` and a binary `y`, and the number
/// of categories seen.
fn mutual_information(x: &[u32], y: &[u8]) -> (f64, usize) {
    let n = x.len() as f64;
    let mut joint: HashMap<(u32, u8), f64> = HashMap::new();
    let mut px: HashMap<u32, f64> = HashMap::new();
    let mut py = [0.0f64; 2];
    for (&a, &b) in x.iter().zip(y) {
        *joint.entry((a, b)).or_default() += 1.0;
        *px.entry(a).or_default() += 1.0;
        py[b as usize] += 1.0;
    }
    let mi = joint
        .iter()
        .map(|(&(a, b), &c)| c / n * (c * n / (px[&a] * py[b as usize])).ln())
        .sum();
    (mi, px.len())
}

/// Under independence `2 N MI ~ chi^2(K - 1)`: mean plus five standard deviations.
fn independence_bound(k: usize, n: usize) -> f64 {
    let df = (k - 1) as f64;
    (df + 5.0 * (2.0 * df).sqrt()) / (2.0 * n as f64)
}

fn task_index(p: &Planted, name: &str) -> usize {
    p.task_names()
        .iter()
        .position(|t| t == name)
        .expect("task exists")
}

#[test]
fn positive_rates_match_their_targets() {
    let (p, rows) = default_rows();
    let targets = [0.3, 0.05, 0.01, 0.2, 0.05];
    assert_eq!(p.task_names(), ["click", "like", "buy", "share", "follow"]);
    for (t, &target) in targets.iter().enumerate() {
        let labels = rows.labels_of_task(t);
        let obs = labels.iter().map(|&y| f64::from(y)).sum::<f64>() / N as f64;
        assert!(
            (obs - target).abs() < 0.1 * target + 0.003,
            "task {t}: observed {obs}, target {target}"
        );
    }
}

#[test]
fn logits_have_the_signal_scale_as_standard_deviation() {
    let (p, rows) = default_rows();
    for t in 0..p.task_names().len() {
        let s = std_dev(&rows.logits_of_task(t));
        assert!((s - 2.0).abs() < 0.1, "task {t}: logit std {s}");
    }
}

#[test]
fn same_group_logits_correlate_at_rho_and_conflicting_groups_negatively() {
    let (p, rows) = default_rows();
    let z = |name: &str| rows.logits_of_task(task_index(p, name));
    for (a, b) in [
        ("click", "like"),
        ("click", "buy"),
        ("like", "buy"),
        ("share", "follow"),
    ] {
        let r = pearson(&z(a), &z(b));
        assert!((r - 0.8).abs() < 0.05, "{a}/{b}: {r}");
    }
    for (a, b) in [("click", "share"), ("buy", "follow")] {
        let r = pearson(&z(a), &z(b));
        assert!(r < -0.05, "conflict {a}/{b}: {r}");
    }
}

#[test]
fn other_correlations_and_independent_groups() {
    let mut c = cfg(11);
    c.between_groups = BetweenGroups::Independent;
    c.groups[0].correlation = 0.3;
    c.groups[1].correlation = -0.5;
    let p = Planted::new(&c).expect("builds");
    let rows = p.generate(N);
    let z = |t: usize| rows.logits_of_task(t);
    for (a, b, rho) in [(0, 1, 0.3), (0, 2, 0.3), (1, 2, 0.3), (3, 4, -0.5)] {
        let r = pearson(&z(a), &z(b));
        assert!((r - rho).abs() < 0.05, "tasks {a}/{b}: {r}, planted {rho}");
    }
    for a in 0..3 {
        for b in 3..5 {
            let r = pearson(&z(a), &z(b));
            assert!(r.abs() < 0.02, "independent groups, tasks {a}/{b}: {r}");
        }
    }
    let truth = p.truth(0, &[]);
    let f0: HashSet<_> = truth.tasks[0].relevant_fields.iter().collect();
    let f1: HashSet<_> = truth.tasks[3].relevant_fields.iter().collect();
    assert!(f0.is_disjoint(&f1), "{f0:?} {f1:?}");
}

#[test]
fn irrelevant_fields_carry_no_information_about_any_label() {
    let (p, rows) = default_rows();
    let truth = p.truth(N, &[]);
    let col = |name: &str| {
        let f = truth
            .sparse_fields
            .iter()
            .position(|s| s.name == name)
            .expect("field");
        rows.sparse_of_field(f)
    };
    let irrelevant = truth
        .sparse_fields
        .iter()
        .filter(|f| !f.relevant)
        .min_by_key(|f| f.cardinality)
        .expect("an irrelevant field");
    assert!(irrelevant.cardinality < 1000, "{irrelevant:?}");
    let x = col(&irrelevant.name);
    let mut strongest_irrelevant = 0.0f64;
    for t in 0..truth.tasks.len() {
        let (mi, k) = mutual_information(&x, &rows.labels_of_task(t));
        let bound = independence_bound(k, N);
        assert!(
            mi < bound,
            "{} vs {}: MI {mi} above the independence bound {bound}",
            irrelevant.name,
            truth.tasks[t].name
        );
        strongest_irrelevant = strongest_irrelevant.max(mi);
    }
    // The lowest-cardinality relevant field of each group against the group's first task.
    for g in &truth.groups {
        let t = truth
            .tasks
            .iter()
            .position(|t| t.name == g.tasks[0])
            .expect("task");
        let field = truth.tasks[t]
            .relevant_fields
            .iter()
            .min_by_key(|n| {
                truth
                    .sparse_fields
                    .iter()
                    .find(|s| &s.name == *n)
                    .map(|s| s.cardinality)
            })
            .expect("a relevant field");
        let (mi, k) = mutual_information(&col(field), &rows.labels_of_task(t));
        let bound = independence_bound(k, N);
        assert!(
            mi > 10.0 * bound && mi > 10.0 * strongest_irrelevant,
            "{field} vs {}: MI {mi}, independence bound {bound}, irrelevant {strongest_irrelevant}",
            truth.tasks[t].name
        );
    }
}

#[test]
fn default_structure_is_as_documented() {
    let (p, _) = default_rows();
    let truth = p.truth(N, &[]);
    let n_rel = truth.sparse_fields.iter().filter(|f| f.relevant).count();
    assert_eq!(n_rel, 12, "{truth:#?}");
    let cards: HashMap<&str, usize> = truth
        .sparse_fields
        .iter()
        .map(|f| (f.name.as_str(), f.cardinality))
        .collect();
    let g0 = &truth.tasks[0];
    let g1 = &truth.tasks[3];
    assert_eq!((g0.group.as_str(), g1.group.as_str()), ("g0", "g1"));
    assert_eq!(g0.relevant_fields.len(), 6);
    assert_eq!(g1.relevant_fields.len(), 8, "6 own + 2 conflict fields");
    let shared: Vec<_> = g1
        .relevant_fields
        .iter()
        .filter(|f| g0.relevant_fields.contains(f))
        .collect();
    assert_eq!(shared.len(), 2);
    for t in [g0, g1] {
        assert!(
            t.relevant_fields.iter().any(|f| cards[f.as_str()] < 1000),
            "{t:?}"
        );
        assert!(
            t.relevant_fields.iter().any(|f| cards[f.as_str()] > 5000),
            "{t:?}"
        );
        assert_eq!(t.interactions.len(), 2);
        for [a, b] in &t.interactions {
            assert!(t.relevant_fields.contains(a) && t.relevant_fields.contains(b));
        }
        assert_eq!(t.relevant_dense.len(), 1);
    }
    assert_ne!(g0.relevant_dense, g1.relevant_dense);
    // Tasks of one group share their structure.
    assert_eq!(
        truth.tasks[0].relevant_fields,
        truth.tasks[2].relevant_fields
    );
    assert_eq!(truth.tasks[3].interactions, truth.tasks[4].interactions);
}

fn small(seed: u64) -> PlantedConfig {
    PlantedConfig {
        pilot_rows: 5_000,
        ..cfg(seed)
    }
}

#[test]
fn same_seed_same_bytes_whatever_the_chunk_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |n: &str| dir.path().join(n);
    let p = Planted::new(&small(3)).expect("builds");
    let ta = p
        .write_chunked(5_000, &path("a.csv"), DEFAULT_CHUNK_ROWS)
        .expect("a");
    let tb = p.write_chunked(5_000, &path("b.csv"), 777).expect("b");
    planted::write(&small(3), 5_000, &path("c.csv")).expect("c");
    planted::write(&small(4), 5_000, &path("d.csv")).expect("d");
    let read = |n: &str| fs::read(path(n)).expect("read");
    assert!(
        read("a.csv") == read("b.csv"),
        "chunk size changed the rows"
    );
    assert!(read("a.csv") == read("c.csv"), "same seed, other bytes");
    assert!(read("a.csv") != read("d.csv"), "other seed, same bytes");
    assert_eq!(ta, tb);
    assert_eq!(read("a.schema.toml"), read("c.schema.toml"));
    assert_eq!(read("a.truth.json"), read("c.truth.json"));

    // In memory, chunk by chunk, the stream gives the same rows as in one go.
    let all = p.generate(1_000);
    let mut stream = p.stream();
    let mut chunk = PlantedRows::default();
    let mut sparse = Vec::new();
    let mut logits = Vec::new();
    for n in [1, 299, 700] {
        stream.fill(n, &mut chunk);
        sparse.extend_from_slice(&chunk.sparse);
        logits.extend_from_slice(&chunk.logits);
    }
    assert_eq!(sparse, all.sparse);
    assert_eq!(logits, all.logits);

    // Parquet: one row group per chunk, the same rows for any chunk size, the same data set
    // as the CSV file.
    p.write_chunked(5_000, &path("p1.parquet"), 1_000)
        .expect("p1");
    p.write_chunked(5_000, &path("p2.parquet"), 4_096)
        .expect("p2");
    let groups = |n: &str| {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let f = fs::File::open(path(n)).expect("open");
        SerializedFileReader::new(f)
            .expect("parquet")
            .metadata()
            .num_row_groups()
    };
    assert_eq!((groups("p1.parquet"), groups("p2.parquet")), (5, 2));
    assert_eq!(
        read_cells(&path("p1.parquet")),
        read_cells(&path("p2.parquet"))
    );
    let ds = |data: &str| {
        let c = FilesConfig::new("a.schema.toml", data);
        load(&DataConfig::Files(c), dir.path()).expect("loads")
    };
    assert!(ds("a.csv") == ds("p1.parquet"), "CSV and Parquet differ");
}

/// Every cell of a file as text.
fn read_cells(path: &Path) -> Vec<Vec<String>> {
    let mut r = SourceReader::open(&SourceSpec::new(path)).expect("open");
    let n = r.columns().len();
    let mut out = Vec::new();
    let mut buf = String::new();
    while let Some(row) = r.next_row().expect("row") {
        out.push(
            (0..n)
                .map(|i| row.get(i).to_text(&mut buf).to_string())
                .collect(),
        );
    }
    out
}

#[test]
fn written_files_load_as_a_files_data_set_with_their_truth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("planted.csv");
    let truth = planted::write(&small(5), 5_000, &data).expect("writes");
    assert_eq!(schema_path(&data), dir.path().join("planted.schema.toml"));
    assert_eq!(truth_path(&data), dir.path().join("planted.truth.json"));

    let schema = Schema::from_toml_file(&schema_path(&data)).expect("schema loads");
    let sparse: Vec<String> = schema.sparse.iter().map(|f| f.name.clone()).collect();
    let dense: Vec<String> = schema.dense.iter().map(|f| f.name.clone()).collect();
    assert_eq!(sparse.len(), 20);
    assert_eq!(sparse[0], "f00");
    assert_eq!(dense, ["d0", "d1", "d2", "d3"]);
    assert_eq!(
        schema.task_names(),
        ["click", "like", "buy", "share", "follow"]
    );
    let header: Vec<String> = SourceReader::open(&SourceSpec::new(&data))
        .expect("open")
        .columns()
        .to_vec();
    let expected: Vec<String> = sparse
        .iter()
        .chain(&dense)
        .cloned()
        .chain(schema.task_names())
        .collect();
    assert_eq!(header, expected);

    // One file, split 80/10/10 by the files loader.
    let cfg = FilesConfig::new("planted.schema.toml", "planted.csv");
    let ds = load(&DataConfig::Files(cfg), dir.path()).expect("loads");
    assert_eq!(
        (ds.train.n_rows, ds.valid.n_rows, ds.test.n_rows),
        (4_000, 500, 500)
    );
    let meta = ds.meta();
    assert_eq!(meta.sparse_names, sparse);
    assert_eq!(meta.dense_names, dense);
    assert_eq!(meta.task_names, schema.task_names());
    assert!(
        meta.vocab_sizes[0] <= 11 && meta.vocab_sizes[19] > 500,
        "{meta:?}"
    );
    let train_rate: f32 = ds.train.labels_of_task(0).iter().sum::<f32>() / ds.train.n_rows as f32;
    assert!((train_rate - 0.3).abs() < 0.03, "{train_rate}");

    // The truth file: the documented keys, every field once, observed rates from the file.
    let text = fs::read_to_string(truth_path(&data)).expect("truth");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(&v),
        [
            "between_groups",
            "config",
            "dense_fields",
            "groups",
            "kind",
            "rows",
            "seed",
            "sparse_fields",
            "tasks"
        ]
    );
    assert_eq!(
        keys(&v["tasks"][0]),
        [
            "group",
            "interactions",
            "name",
            "observed_positive_rate",
            "positive_rate",
            "relevant_dense",
            "relevant_fields"
        ]
    );
    assert_eq!(
        keys(&v["sparse_fields"][0]),
        ["cardinality", "name", "relevant"]
    );
    assert_eq!(keys(&v["dense_fields"][0]), ["name", "relevant"]);
    assert_eq!(keys(&v["groups"][0]), ["correlation", "name", "tasks"]);
    assert_eq!(v["kind"], "recsys");
    assert_eq!(v["rows"], 5_000);
    assert_eq!(v["seed"], 5);
    assert_eq!(v["between_groups"], "conflict");
    assert_eq!(v["groups"][0]["tasks"][2], "buy");
    assert_eq!(
        v["tasks"][0]["interactions"][0].as_array().map(Vec::len),
        Some(2)
    );
    let back: GroundTruth = serde_json::from_value(v.clone()).expect("typed");
    assert_eq!(back, truth);
    let back_cfg: PlantedConfig =
        serde_json::from_value(v["config"].clone()).expect("config round trip");
    assert_eq!(back_cfg, small(5));

    let names: Vec<&str> = truth
        .sparse_fields
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(names, sparse);
    let dnames: Vec<&str> = truth.dense_fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(dnames, dense);
    let mut tasks_in_groups: Vec<&str> = truth
        .groups
        .iter()
        .flat_map(|g| g.tasks.iter().map(String::as_str))
        .collect();
    tasks_in_groups.sort_unstable();
    let mut task_names: Vec<&str> = truth.tasks.iter().map(|t| t.name.as_str()).collect();
    task_names.sort_unstable();
    assert_eq!(tasks_in_groups, task_names);
    for t in &truth.tasks {
        assert!(
            t.relevant_fields
                .iter()
                .all(|f| names.contains(&f.as_str()))
        );
        assert!(
            t.relevant_dense
                .iter()
                .all(|f| dnames.contains(&f.as_str()))
        );
    }
    let rel: HashSet<&str> = truth
        .tasks
        .iter()
        .flat_map(|t| t.relevant_fields.iter().map(String::as_str))
        .collect();
    for f in &truth.sparse_fields {
        assert_eq!(f.relevant, rel.contains(f.name.as_str()), "{f:?}");
    }
    let click = ds_label_rate(&data, 0);
    assert!((truth.tasks[0].observed_positive_rate - click).abs() < 1e-12);
}

/// The share of ones in label column `t` of a written CSV file (counted from the file).
fn ds_label_rate(path: &Path, t: usize) -> f64 {
    let cells = read_cells(path);
    let col = 24 + t;
    cells.iter().filter(|r| r[col] == "1").count() as f64 / cells.len() as f64
}

#[test]
fn bad_configs_and_outputs_are_refused_with_a_clear_message() {
    type Tweak = Box<dyn Fn(&mut PlantedConfig)>;
    let cases: Vec<(Tweak, &str)> = vec![
        (
            Box::new(|c| c.groups[0].tasks[1].positive_rate = 1.0),
            "task `like`: positive_rate must be in (0, 1)",
        ),
        (
            Box::new(|c| c.groups[1].tasks[0].positive_rate = 0.0),
            "task `share`: positive_rate must be in (0, 1)",
        ),
        (
            Box::new(|c| c.groups[0].correlation = 1.5),
            "group `g0`: correlation must be in [-1, 1]",
        ),
        (
            Box::new(|c| c.groups[0].correlation = -0.5),
            "negative correlation needs a group of at most 2 tasks",
        ),
        (
            Box::new(|c| c.fields_per_group = 11),
            "more than the 20 sparse fields",
        ),
        (Box::new(|c| c.groups.clear()), "0 tasks"),
        (
            Box::new(|c| c.groups[1].tasks.clear()),
            "group `g1` has 0 tasks",
        ),
        (
            Box::new(|c| c.groups[1].tasks[0].name = "click".into()),
            "used twice",
        ),
        (
            Box::new(|c| c.groups[1].tasks[0].name = "f03".into()),
            "also the name of an input field",
        ),
        (
            Box::new(|c| c.interactions_per_group = 16),
            "more than the 15 pairs",
        ),
        (Box::new(|c| c.dense_per_group = 3), "dense fields"),
        (Box::new(|c| c.min_cardinality = 1), "min_cardinality"),
        (Box::new(|c| c.signal_scale = f64::NAN), "signal_scale"),
    ];
    for (tweak, needle) in cases {
        let mut c = PlantedConfig::default();
        tweak(&mut c);
        let e = match Planted::new(&c) {
            Ok(_) => panic!("accepted a bad config, expected {needle:?}"),
            Err(e) => e.to_string(),
        };
        assert!(e.contains(needle), "{e:?} lacks {needle:?}");
        assert!(e.contains("planted"), "{e}");
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let e = planted::write(&small(1), 10, &dir.path().join("x.csv.gz"))
        .unwrap_err()
        .to_string();
    assert!(e.contains(".csv, .parquet or .pq"), "{e}");
    let e = planted::write(&small(1), 0, &dir.path().join("x.csv"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("rows must be at least 1"), "{e}");

    let e = toml::from_str::<PlantedConfig>("n_sparce = 3\n").unwrap_err();
    assert!(e.to_string().contains("n_sparce"), "{e}");
}

#[test]
fn at_zero_correlation_dense_fields_drop_out_and_the_truth_says_so() {
    let mut c = small(13);
    c.groups[1].correlation = 0.0;
    let p = Planted::new(&c).expect("builds");
    let truth = p.truth(0, &[]);
    assert_eq!(truth.tasks[3].relevant_dense, Vec::<String>::new());
    assert_eq!(truth.tasks[0].relevant_dense.len(), 1);
    assert_eq!(truth.dense_fields.iter().filter(|d| d.relevant).count(), 1);
    let shares = p.variance_shares(3);
    assert!(
        shares.iter().all(|(n, s)| !n.starts_with('d') || *s == 0.0),
        "{shares:?}"
    );
    let rows = p.generate(50_000);
    let r = pearson(&rows.logits_of_task(3), &rows.logits_of_task(4));
    assert!(r.abs() < 0.03, "{r}");
}
