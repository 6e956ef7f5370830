//! The experiment config with `--set` overrides, as `mtrec train --config F --set K=V`
//! reads it, and its round trip through the `config.toml` every checkpoint stores.
//!
//! The input is the config file, then optionally a line `%%` and one override per line.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mtrec_engine::ExperimentConfig;
use mtrec_engine::config::Override;
use mtrec_fuzz::{assert_one_line, write_scratch};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (file, sets) = text.split_once("\n%%\n").unwrap_or((text, ""));
    let mut overrides = Vec::new();
    for line in sets.lines() {
        match line.parse::<Override>() {
            Ok(o) => overrides.push(o),
            Err(message) => assert_one_line(&message),
        }
    }
    let path = write_scratch("experiment.toml", file.as_bytes());
    let cfg = match ExperimentConfig::from_toml_file_with(&path, &overrides) {
        Ok(cfg) => cfg,
        Err(e) => {
            // A syntax error quotes the offending line under its position: several lines
            // by design, but always headed by the file.
            let message = e.to_string();
            assert!(
                message.contains(&*path.to_string_lossy()),
                "names no file: {message}"
            );
            return;
        }
    };
    let written = cfg.to_toml_string();
    match ExperimentConfig::from_toml_str(&written, &path) {
        Ok(again) => assert_eq!(again.to_toml_string(), written, "round trip"),
        Err(e) => panic!("a valid config was written as an invalid one: {e}\n{written}"),
    }
});
