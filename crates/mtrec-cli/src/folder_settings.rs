//! The settings an output folder's results were made with (`settings.json`), saved by the
//! first command on the folder and checked by every later one, so a resume never mixes results
//! made under other settings. Each command decides what counts as a difference and says it in
//! its own words; reading and first saving are the same everywhere.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::atomic::write_atomically;

/// The settings saved at `path`, or `None` where the folder has none yet.
pub fn read_saved<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .with_context(|| format!("{}: not a settings file", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("{}: cannot read", path.display())),
    }
}

pub fn save<T: Serialize>(path: &Path, settings: &T) -> Result<()> {
    write_atomically(path, serde_json::to_string_pretty(settings)?)
}

/// The saved settings, or `None` after saving `ours` as the folder's first.
pub fn saved_or_save<T: Serialize + DeserializeOwned>(path: &Path, ours: &T) -> Result<Option<T>> {
    let saved = read_saved(path)?;
    if saved.is_none() {
        save(path, ours)?;
    }
    Ok(saved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_call_saves_and_later_ones_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.json");
        assert_eq!(saved_or_save(&path, &vec![1, 2]).unwrap(), None);
        assert_eq!(saved_or_save(&path, &vec![3]).unwrap(), Some(vec![1, 2]));
        std::fs::write(&path, "not json").unwrap();
        let e = read_saved::<Vec<i32>>(&path).unwrap_err();
        assert!(format!("{e:#}").contains("not a settings file"), "{e:#}");
    }
}
