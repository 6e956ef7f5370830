//! The `[data]` sections of the shipped experiment configs parse as `DataConfig`.

use std::path::Path;

use mtrec_data::DataConfig;

#[test]
fn every_shipped_data_section_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable");
        let table: toml::Table = toml::from_str(&text).expect("valid TOML");
        if let Some(data) = table.get("data") {
            let parsed: Result<DataConfig, _> = data.clone().try_into();
            assert!(parsed.is_ok(), "{}: {:?}", path.display(), parsed.err());
        }
    }
}
