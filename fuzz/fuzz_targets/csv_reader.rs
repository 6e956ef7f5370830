//! Delimited text as `mtrec` reads it (plain or gzip): row by row, through `mtrec data
//! inspect`, and loaded with `fixtures/rich.schema.toml` as `[data] kind = "files"` does.
//!
//! Byte 0 chooses how the file is read (bit 0 set: no header line; bits 1-2: the separator
//! `,` tab `;` `|`); the rest is the file.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mtrec_data::{DataConfig, FilesConfig, SourceSpec};
use mtrec_fuzz::{assert_one_line, fixture, read_all, write_scratch};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, file)) = data.split_first() else {
        return;
    };
    let header = flags & 1 == 0;
    let separator = [b',', b'\t', b';', b'|'][usize::from((flags >> 1) & 3)];
    let path = write_scratch("input.csv", file);
    let spec = SourceSpec::new(&path)
        .with_header(header)
        .with_separator(separator);
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
    // The schema names columns, so only a file with a header can match it.
    let mut files = FilesConfig::new(fixture("rich.schema.toml"), &path);
    files.separator = Some(char::from(separator));
    files.format = Some(mtrec_data::Format::Csv);
    if let Err(e) = mtrec_data::load(&DataConfig::Files(files), Path::new(".")) {
        assert_one_line(&e.to_string());
    }
});
