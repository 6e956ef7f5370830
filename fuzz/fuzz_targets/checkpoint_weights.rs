//! The weights file of a checkpoint (`model.safetensors`), loaded into the model its
//! `config.toml` rebuilds: a header that declares gigabytes, a file cut short, a tensor of
//! another shape or type must each be one line naming the file, and never an allocation of
//! what the header claims.
//!
//! Byte 0 even: the rest damages `fixtures/checkpoint/model.safetensors` (a cut and byte
//! flips, see [`mtrec_fuzz::damage`]); odd: the rest is the file itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mtrec_fuzz::{checkpoint_with, damage, fixture, load_and_predict};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let file = if mode % 2 == 0 {
        let original = std::fs::read(fixture("checkpoint/model.safetensors")).expect("fixture");
        damage(&original, rest)
    } else {
        rest.to_vec()
    };
    load_and_predict(&checkpoint_with("model.safetensors", &file));
});
