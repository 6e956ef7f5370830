//! Parquet as `mtrec` reads it: row by row, through `mtrec data inspect`, and loaded with
//! `fixtures/rich.schema.toml` as `[data] kind = "files"` does.
//!
//! Byte 0 even: the rest damages the valid file of [`mtrec_fuzz::rich_parquet`] (a cut and
//! byte flips, see [`mtrec_fuzz::damage`]), which is how a fuzzer gets past Parquet's
//! footer and into its pages; odd: the rest is the file itself.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mtrec_data::{DataConfig, FilesConfig, Format, SourceSpec};
use mtrec_fuzz::{assert_one_line, damage, fixture, read_all, rich_parquet, write_scratch};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let file = if mode % 2 == 0 {
        damage(rich_parquet(), rest)
    } else {
        rest.to_vec()
    };
    let path = write_scratch("input.parquet", &file);
    let spec = SourceSpec::new(&path).with_format(Format::Parquet);
    if let Err(e) = read_all(&spec) {
        assert_one_line(&e.to_string());
    }
    match mtrec_data::inspect(&spec, Some(1000)) {
        Ok(ins) => {
            let schema = mtrec_data::guess_schema(&ins);
            let _ = mtrec_data::schema_toml(&ins, &schema);
        }
        Err(e) => assert_one_line(&e.to_string()),
    }
    let mut files = FilesConfig::new(fixture("rich.schema.toml"), &path);
    files.format = Some(Format::Parquet);
    if let Err(e) = mtrec_data::load(&DataConfig::Files(files), Path::new(".")) {
        assert_one_line(&e.to_string());
    }
});
