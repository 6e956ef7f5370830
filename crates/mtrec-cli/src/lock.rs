//! One process at a time on an output folder: two runners, tunings or studies on the same
//! folder would do the same work twice and interleave their records.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use anyhow::{Context, Result, anyhow};

/// Opens (creating) the lock file `name` in `dir` and locks it; keep the returned file open
/// for as long as the work runs.
pub fn lock_folder(dir: &Path, name: &str, busy: impl FnOnce() -> String) -> Result<File> {
    let path = dir.join(name);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("{}: cannot open", path.display()))?;
    lock_exclusively(&file, &path, busy)?;
    Ok(file)
}

/// Locks `file` (at `path`) for as long as it stays open; the lock goes with the process, so
/// a crash leaves none behind. `busy` is the error when another process holds it. Where the
/// file system has no locks (some network ones), the work runs unlocked rather than not at
/// all.
pub fn lock_exclusively(file: &File, path: &Path, busy: impl FnOnce() -> String) -> Result<()> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => Err(anyhow!(busy())),
        Err(TryLockError::Error(e)) => {
            tracing::debug!("{}: no lock ({e})", path.display());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_file_is_refused_until_the_first_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let first = File::create(&path).unwrap();
        lock_exclusively(&first, &path, || "busy".into()).unwrap();
        let second = File::open(&path).unwrap();
        let e = lock_exclusively(&second, &path, || "busy".into()).unwrap_err();
        assert_eq!(e.to_string(), "busy");
        drop(first);
        lock_exclusively(&second, &path, || "busy".into()).unwrap();
    }
}
