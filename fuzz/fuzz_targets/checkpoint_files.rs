//! The text files of a checkpoint: `mtrec.json`, `config.toml`, `preprocessor.json` and
//! `metrics.json`, edited by hand or by accident. Whatever loads must predict without a
//! panic; whatever does not must be refused with one line naming the file.
//!
//! Byte 0 (modulo 4) chooses the file, in that order; the rest replaces it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mtrec_fuzz::{CHECKPOINT_FILES, checkpoint_with, load_and_predict};

fuzz_target!(|data: &[u8]| {
    let Some((&which, file)) = data.split_first() else {
        return;
    };
    let name = CHECKPOINT_FILES[usize::from(which % 4)];
    load_and_predict(&checkpoint_with(name, file));
});
