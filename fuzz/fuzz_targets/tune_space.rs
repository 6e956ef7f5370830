//! The search space of `mtrec tune --space S.toml`: parsed, then sampled, decoded into
//! `--set` overrides and encoded back, as the tuner does with every trial.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mtrec_fuzz::assert_one_line;
use mtrec_tune::Space;
use rand::SeedableRng;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let origin = Path::new("fuzz.space.toml");
    let space = match Space::from_toml_str(text, origin) {
        Ok(space) => space,
        Err(e) => {
            let message = e.to_string();
            assert_one_line(&message);
            assert!(message.contains("fuzz.space.toml"), "names no file: {message}");
            return;
        }
    };
    // The tuner's first step: the initial design, whatever size the file asks for.
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let design = space.latin_hypercube(space.initial, &mut rng);
    assert_eq!(design.len(), space.initial);
    let sample = space.sample(&mut rng);
    for x in design.into_iter().take(8).chain([sample]) {
        assert_eq!(x.len(), space.dims());
        let values = space.decode(&space.snap(&x));
        let _ = space.overrides(&values);
        if let Err(message) = space.encode(&values) {
            panic!("a decoded point does not encode back: {message}");
        }
    }
    for p in &space.params {
        let _ = p.extremes();
    }
});
