//! A tiny checkpoint to serve, trained in the test, and a server running it on loopback.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mtrec_data::SourceSpec;
use mtrec_engine::{
    ExperimentConfig, NullObserver, default_device, load_checkpoint, predict, save_checkpoint,
};
use mtrec_serve::{Client, ServeOptions, Server, ServerHandle};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// `user` (categorical, rare values unknown), `tags` (multi-valued), `age` (numeric with a
/// fill), `score` (bucketised), a binary task and a standardised regression task.
pub const SCHEMA: &str = r#"
[[sparse]]
name = "user"
min_count = 2
[[sparse]]
name = "tags"
separator = "|"
max_values = 3
[[dense]]
name = "age"
fill = 35.0
[[dense]]
name = "score"
boundaries = [0.0, 5.0]
[[tasks]]
name = "click"
kind = "binary"
[[tasks]]
name = "minutes"
kind = "regression"
column = "watch"
"#;

const TAGS: [&str; 5] = ["news", "sport", "tech", "music", "food"];

/// `n` training rows of `user,tags,age,score,click,watch`.
pub fn train_rows(n: usize) -> String {
    let mut s = String::from("user,tags,age,score,click,watch\n");
    for i in 0..n {
        let tags: Vec<&str> = (0..i % 4).map(|j| TAGS[(i + 2 * j) % TAGS.len()]).collect();
        let age = 20 + (i * 7) % 50;
        let score = (i % 11) as f64 - 2.5;
        let click = u8::from(tags.contains(&"sport") || age > 50);
        let watch = (i % 13) as f64 * 1.5 + f64::from(click) * 4.0;
        s.push_str(&format!(
            "u{},{},{age},{score},{click},{watch}\n",
            i % 17,
            tags.join("|")
        ));
    }
    s
}

/// Rows to predict, as a CSV (with the label columns, which prediction ignores) and as the
/// same values in JSON rows: unknown users and tags, empty and missing values, `NA`.
pub const NEW_CSV: &str = "user,tags,age,score,click,watch\n\
u1,sport,44,3.5,1,2\n\
zzz,news|zzz|tech,,NA,0,1\n\
u3,,61.25,-7,1,0\n\
u16,music|food|news|sport,0.1,5,0,3\n\
,sport,NA,,1,1\n\
u2,tech,1e3,0.30000001,0,0\n";

pub fn new_rows_json() -> Value {
    json!({"rows": [
        {"user": "u1", "tags": "sport", "age": "44", "score": "3.5", "click": "1", "watch": "2"},
        {"user": "zzz", "tags": "news|zzz|tech", "age": "", "score": "NA"},
        {"user": "u3", "tags": "", "age": "61.25", "score": "-7"},
        {"user": "u16", "tags": "music|food|news|sport", "age": "0.1", "score": "5"},
        {"user": "", "tags": "sport", "age": "NA", "score": ""},
        {"user": "u2", "tags": "tech", "age": "1e3", "score": "0.30000001"},
    ]})
}

/// The same rows with JSON numbers, nulls and a tag array where a client would use them.
pub fn new_rows_typed_json() -> Value {
    json!({"rows": [
        {"user": "u1", "tags": ["sport"], "age": 44, "score": 3.5},
        {"user": "zzz", "tags": ["news", "zzz", "tech"], "age": null, "score": null},
        {"user": "u3", "tags": [], "age": 61.25, "score": -7},
        {"user": "u16", "tags": "music|food|news|sport", "age": 0.1, "score": 5},
        {"user": null, "tags": "sport", "age": null, "score": null},
        {"user": "u2", "tags": "tech", "age": 1e3, "score": 0.30000001},
    ]})
}

/// Trains 1 epoch of a small shared-bottom model (seeded by `seed`) and saves it at `out`.
pub fn train_checkpoint(dir: &Path, out: &Path, seed: u64) {
    std::fs::write(dir.join("schema.toml"), SCHEMA).unwrap();
    let data = dir.join("train.csv");
    if !data.exists() {
        std::fs::write(&data, train_rows(600)).unwrap();
    }
    let text = format!(
        "name = \"serve-test\"\n[data]\nkind = \"files\"\nschema = \"schema.toml\"\n\
         train = \"train.csv\"\n[embedding]\ndim = 4\n[model]\nkind = \"shared-bottom\"\n\
         bottom = [8]\ntower = [4]\n[train]\nepochs = 1\nbatch_size = 64\npatience = 0\n\
         learning_rate = 0.01\nseed = {seed}\n"
    );
    let cfg = ExperimentConfig::from_toml_str(&text, Path::new("inline.toml")).unwrap();
    let data = mtrec_data::load(&cfg.data, dir).unwrap();
    let device = default_device();
    let outcome = mtrec_engine::train(&cfg, &data, &device, &mut NullObserver).unwrap();
    let metrics = json!({ "test": outcome.test.to_json(), "seed": seed });
    save_checkpoint(out, &cfg, &data.preprocessor, &outcome.model, &metrics).unwrap();
}

/// What `mtrec predict` computes for `csv`: the checkpoint loaded, the file encoded without
/// labels, predicted in batches of the config's `eval_batch_size`; `[task][row]`.
pub fn predict_file(checkpoint: &Path, csv: &Path) -> Vec<Vec<f32>> {
    let device = default_device();
    let ck = load_checkpoint(checkpoint, &device).unwrap();
    let table = ck
        .preprocessor
        .encode_file_unlabelled(&SourceSpec::new(csv))
        .unwrap();
    let meta = ck.preprocessor.meta();
    predict(
        &ck.model,
        &table,
        &meta.task_kinds,
        ck.config.train.eval_batch_size,
        &device,
    )
}

/// A server on an ephemeral loopback port, stopped by sending on the returned channel.
pub struct Running {
    pub handle: ServerHandle,
    pub stop: Option<oneshot::Sender<()>>,
    pub served: tokio::task::JoinHandle<Result<(), mtrec_serve::ServeError>>,
}

impl Running {
    pub fn addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    pub fn client(&self) -> Client {
        Client::new(self.addr())
    }

    /// Signals shutdown and waits for the server to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.served.await.unwrap().unwrap();
    }
}

pub fn options(checkpoint: &Path) -> ServeOptions {
    ServeOptions::new(checkpoint, "127.0.0.1:0".parse().unwrap())
}

pub async fn start(options: ServeOptions) -> Running {
    let server = Server::bind(options).await.unwrap();
    let handle = server.handle().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    Running {
        handle,
        stop: Some(stop),
        served,
    }
}

/// A temporary folder with one trained checkpoint in `ck`.
pub fn checkpoint_dir(seed: u64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck");
    train_checkpoint(dir.path(), &ck, seed);
    (dir, ck)
}

/// Polls `done` every 10 ms, for at most a minute: for effects of other threads (a reload)
/// whose time is not ours to assert.
pub async fn eventually(mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..6000 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the condition did not come true within a minute");
}
