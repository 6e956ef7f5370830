//! Checkpoints cut short or tampered with (issue 15): every one is refused with one line
//! naming the file and what is wrong, and none makes the loader allocate what a damaged
//! header claims. The fuzz targets `checkpoint_weights` and `checkpoint_files` search the
//! same surface for longer (see fuzz/README.md).

use std::path::{Path, PathBuf};

use mtrec_engine::scheme::blank_predictor;
use mtrec_engine::{ExperimentConfig, default_device, load_checkpoint, save_checkpoint};
use proptest::prelude::*;

#[path = "../../mtrec-data/tests/support/largest_alloc.rs"]
mod largest_alloc;

/// Far above anything these tiny checkpoints need (a few kB), far below a forged length.
const ALLOCATION_LIMIT: usize = 64 << 20;

fn assert_no_huge_allocation() {
    let largest = largest_alloc::largest();
    assert!(
        largest < ALLOCATION_LIMIT,
        "an allocation of {largest} bytes at once"
    );
}

const SCHEMA: &str = r#"
[[sparse]]
name = "user"
[[dense]]
name = "price"
[[tasks]]
name = "click"
kind = "binary"
[[tasks]]
name = "buy"
kind = "binary"
"#;

const CONFIG: &str = r#"
name = "hostile"
[data]
kind = "files"
schema = "s.toml"
train = "d.csv"
[embedding]
dim = 2
[model]
kind = "mmoe"
n_experts = 2
expert = [3]
tower = [2]
"#;

/// A freshly initialised checkpoint of a tiny MMoE in `dir/ck` (training adds nothing to
/// what is checked here), and its path.
fn checkpoint(dir: &Path) -> PathBuf {
    std::fs::write(dir.join("s.toml"), SCHEMA).unwrap();
    let rows: String = (0..20)
        .map(|i| format!("u{},{}.5,{},{}\n", i % 4, i, i % 2, i % 3 % 2))
        .collect();
    std::fs::write(dir.join("d.csv"), format!("user,price,click,buy\n{rows}")).unwrap();
    let cfg = ExperimentConfig::from_toml_str(CONFIG, Path::new("inline.toml")).unwrap();
    let data = mtrec_data::load(&cfg.data, dir).unwrap();
    let device = default_device();
    let model = blank_predictor(&cfg, &data.meta(), &device).unwrap();
    let ck = dir.join("ck");
    save_checkpoint(
        &ck,
        &cfg,
        &data.preprocessor,
        &model,
        &serde_json::json!({}),
    )
    .unwrap();
    ck
}

/// The error loading `ck` gives, after checking it is one line naming `file` of it.
fn refusal(ck: &Path, file: &str) -> String {
    let e = load_checkpoint(ck, &default_device()).expect_err("a damaged checkpoint loaded");
    let message = e.to_string();
    assert!(!message.contains('\n'), "several lines: {message}");
    let path = ck.join(file);
    assert!(
        message.contains(&*path.to_string_lossy()),
        "does not name {}: {message}",
        path.display()
    );
    assert_no_huge_allocation();
    message
}

/// The safetensors header of `bytes`: its JSON and where the data starts.
fn header(bytes: &[u8]) -> (serde_json::Map<String, serde_json::Value>, usize) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    (serde_json::from_slice(&bytes[8..8 + n]).unwrap(), 8 + n)
}

/// `bytes` with its header replaced by `json`, padded with spaces to the old length so the
/// data offsets stay right.
fn with_header(bytes: &[u8], json: &serde_json::Map<String, serde_json::Value>) -> Vec<u8> {
    let (_, start) = header(bytes);
    let mut text = serde_json::to_string(json).unwrap();
    assert!(text.len() <= start - 8, "the new header is longer");
    text.extend(std::iter::repeat_n(' ', start - 8 - text.len()));
    let mut out = ((start - 8) as u64).to_le_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&bytes[start..]);
    out
}

/// The name of a two-dimensional tensor of the file, and its shape.
fn a_matrix(json: &serde_json::Map<String, serde_json::Value>) -> (String, Vec<u64>) {
    json.iter()
        .filter(|(name, _)| *name != "__metadata__")
        .find_map(|(name, t)| {
            let shape: Vec<u64> = t["shape"]
                .as_array()?
                .iter()
                .map(|d| d.as_u64().unwrap())
                .collect();
            (shape.len() == 2 && shape[0] != shape[1]).then(|| (name.clone(), shape))
        })
        .expect("a non-square matrix")
}

fn weights(ck: &Path) -> PathBuf {
    ck.join("model.safetensors")
}

#[test]
fn an_intact_checkpoint_loads() {
    let dir = tempfile::tempdir().unwrap();
    let ck = checkpoint(dir.path());
    load_checkpoint(&ck, &default_device()).expect("loads");
}

#[test]
fn a_header_length_of_2_gb_or_u64_max_is_refused_without_allocating_it() {
    let dir = tempfile::tempdir().unwrap();
    let ck = checkpoint(dir.path());
    let original = std::fs::read(weights(&ck)).unwrap();
    for declared in [2u64 << 30, u64::MAX, (original.len() as u64) + 1] {
        let mut forged = declared.to_le_bytes().to_vec();
        forged.extend_from_slice(&original[8..]);
        std::fs::write(weights(&ck), &forged).unwrap();
        let m = refusal(&ck, "model.safetensors");
        assert!(m.contains("damaged or truncated"), "{m}");
    }
}

#[test]
fn a_tensor_of_another_shape_is_named_with_both_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let ck = checkpoint(dir.path());
    let original = std::fs::read(weights(&ck)).unwrap();
    let (mut json, _) = header(&original);
    let (name, shape) = a_matrix(&json);
    // Transposed: the same number of values, so only the shape check can catch it.
    json[&name]["shape"] = serde_json::json!([shape[1], shape[0]]);
    std::fs::write(weights(&ck), with_header(&original, &json)).unwrap();
    let m = refusal(&ck, "model.safetensors");
    assert!(
        m.contains(&format!(
            "expected shape [{}, {}], found [{}, {}]",
            shape[0], shape[1], shape[1], shape[0]
        )),
        "{m}"
    );
}

#[test]
fn a_tensor_of_another_type_or_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ck = checkpoint(dir.path());
    let original = std::fs::read(weights(&ck)).unwrap();
    let (json, _) = header(&original);
    let (name, _) = a_matrix(&json);

    let mut retyped = json.clone();
    retyped[&name]["dtype"] = serde_json::json!("I32");
    std::fs::write(weights(&ck), with_header(&original, &retyped)).unwrap();
    let m = refusal(&ck, "model.safetensors");
    assert!(m.contains("expected f32 values, found i32"), "{m}");

    let mut renamed = json.clone();
    let tensor = renamed.remove(&name).unwrap();
    let other = format!("{}x", &name[..name.len() - 1]);
    renamed.insert(other.clone(), tensor);
    std::fs::write(weights(&ck), with_header(&original, &renamed)).unwrap();
    let m = refusal(&ck, "model.safetensors");
    assert!(
        m.contains(&format!("`{name}` is missing from the file")),
        "{m}"
    );
    assert!(m.contains("(and 1 more tensor)"), "{m}");
}

#[test]
fn an_edited_preprocessor_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let ck = checkpoint(dir.path());
    let path = ck.join("preprocessor.json");
    let original: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();

    let mut no_vocab = original.clone();
    no_vocab["vocabs"].as_array_mut().unwrap().clear();
    std::fs::write(&path, no_vocab.to_string()).unwrap();
    let m = refusal(&ck, "preprocessor.json");
    assert!(m.contains("do not match the schema"), "{m}");

    let mut wrong_type = original.clone();
    wrong_type["dense_stats"][0]["std"] = serde_json::json!("one");
    std::fs::write(&path, wrong_type.to_string()).unwrap();
    let m = refusal(&ck, "preprocessor.json");
    assert!(m.contains("invalid type"), "{m}");

    std::fs::write(&path, "{").unwrap();
    refusal(&ck, "preprocessor.json");
}

#[test]
fn an_edited_config_or_manifest_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let ck = checkpoint(dir.path());
    let path = ck.join("config.toml");
    let original = std::fs::read_to_string(&path).unwrap();

    std::fs::write(&path, original.replace("n_experts = 2", "n_expert = 2")).unwrap();
    let m = refusal(&ck, "config.toml");
    assert!(m.contains("n_expert"), "{m}");

    std::fs::write(&path, original.replace("dim = 2", "dim = 3")).unwrap();
    let m = refusal(&ck, "model.safetensors");
    assert!(m.contains("was likely changed since training"), "{m}");

    std::fs::write(&path, &original).unwrap();
    let manifest = ck.join("mtrec.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace("\"format\": 1", "\"format\": \"1\""),
    )
    .unwrap();
    refusal(&ck, "mtrec.json");
}

/// checkpoint_files: sizes edited into `config.toml` made the rebuild allocate before any
/// shape was compared (a 6.4 GB AdaTT mask, a Tucker core of 10^10 values, 10^5 PLE
/// levels); each is now refused from the sizes alone.
#[test]
fn model_sizes_beyond_what_the_weights_hold_are_refused_before_building() {
    let dir = tempfile::tempdir().unwrap();
    let ck = checkpoint(dir.path());
    let path = ck.join("config.toml");
    let original = std::fs::read_to_string(&path).unwrap();
    let model = original
        .split("[model]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .unwrap()
        .to_string();
    for (replacement, key) in [
        (
            "kind = \"mmoe\"\nn_experts = 2\nexpert = [4000000000]\ntower = [2]\n",
            "model.expert",
        ),
        (
            "kind = \"ple\"\nn_levels = 100000000\nexpert = [3]\ntower = [2]\n",
            "model.n_levels",
        ),
        (
            "kind = \"adatt\"\nexperts_per_task = 100000000\nexpert = [3]\ntower = [2]\n",
            "model.experts_per_task",
        ),
        (
            "kind = \"tensor-factorization\"\nhidden = [8]\ntower = [2]\nranks = [100000, 100000, 8]\n",
            "model.ranks",
        ),
    ] {
        std::fs::write(
            &path,
            original.replace(&model, &format!("\n{replacement}\n")),
        )
        .unwrap();
        let m = refusal(&ck, "config.toml");
        assert!(m.contains(&format!("`{key}` asks for")), "{m}");
        assert!(m.contains("bytes of weights in the folder"), "{m}");
    }
    std::fs::write(&path, original.replace("dim = 2", "dim = 100000000")).unwrap();
    let m = refusal(&ck, "config.toml");
    assert!(m.contains("`embedding.dim` asks for 100000000"), "{m}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// A weights file cut anywhere: the header, the JSON or the data.
    #[test]
    fn a_weights_file_cut_anywhere_is_refused(fraction in 0.0f64..1.0) {
        let dir = tempfile::tempdir().unwrap();
        let ck = checkpoint(dir.path());
        let original = std::fs::read(weights(&ck)).unwrap();
        let cut = (fraction * original.len() as f64) as usize;
        std::fs::write(weights(&ck), &original[..cut]).unwrap();
        refusal(&ck, "model.safetensors");
    }

    /// Bytes of the weights file flipped: whatever still parses must load into the model
    /// or be refused with one line naming the file.
    #[test]
    fn flipped_weights_bytes_load_or_are_refused(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let ck = checkpoint(dir.path());
        let mut bytes = std::fs::read(weights(&ck)).unwrap();
        for (at, mask) in &flips {
            let i = at.index(bytes.len());
            bytes[i] ^= mask;
        }
        std::fs::write(weights(&ck), &bytes).unwrap();
        if let Err(e) = load_checkpoint(&ck, &default_device()) {
            let m = e.to_string();
            prop_assert!(!m.contains('\n'), "several lines: {}", m);
            prop_assert!(m.contains(&*ck.to_string_lossy()), "names no file: {}", m);
        }
        assert_no_huge_allocation();
    }
}
