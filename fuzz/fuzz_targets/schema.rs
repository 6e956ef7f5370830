//! The schema file: parsed and validated, written back and re-read (the round trip every
//! `mtrec data inspect --schema-out` and every checkpoint relies on), then used to load
//! `fixtures/rich.csv`, so that odd but valid values (a huge `max_values` or `buckets`, a
//! `fill` at the edge of f32) meet the loader.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mtrec_data::{DataConfig, FilesConfig, Schema};
use mtrec_fuzz::{assert_one_line, fixture, write_scratch};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let origin = "fuzz.schema.toml";
    let schema = match Schema::from_toml_str(text, origin) {
        Ok(schema) => schema,
        Err(e) => {
            let message = e.to_string();
            assert_one_line(&message);
            assert!(message.contains(origin), "names no file: {message}");
            return;
        }
    };
    let written = schema.to_toml_string();
    match Schema::from_toml_str(&written, "written") {
        Ok(again) => assert_eq!(again, schema, "round trip through\n{written}"),
        Err(e) => panic!("a valid schema was written as an invalid one: {e}\n{written}"),
    }
    let path = write_scratch("schema.toml", data);
    let files = FilesConfig::new(&path, fixture("rich.csv"));
    if let Err(e) = mtrec_data::load(&DataConfig::Files(files), Path::new(".")) {
        assert_one_line(&e.to_string());
    }
});
