//! Files written so that a reader (or a crash) never sees half of one: a temporary file in
//! the same folder, renamed over the target.

use std::path::Path;

use anyhow::{Context, Result};

/// The temporary name is hidden and carries the process id, so two processes writing the
/// same file never share a temporary, and folder scans skip it.
pub fn write_atomically(path: &Path, bytes: impl AsRef<[u8]>) -> Result<()> {
    let name = path
        .file_name()
        .map_or_else(Default::default, |n| n.to_string_lossy());
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("{}: cannot write", path.display()))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.txt"]);
        let e = write_atomically(&dir.path().join("no/such/b.txt"), b"x").unwrap_err();
        assert!(format!("{e:#}").contains("b.txt: cannot write"), "{e:#}");
    }
}
