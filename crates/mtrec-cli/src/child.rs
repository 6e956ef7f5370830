//! Running another command of this executable (`mtrec train`, `search`, `tune`) as a child
//! process: `mtrec run`, `mtrec tune` and `mtrec repro census` dispatch their work this way,
//! so each piece is one self-contained command line (loggable, re-runnable by hand) and a
//! crash fails that piece instead of the whole study.
//!
//! The child's log goes beside its run folder, not inside it: the checkpoint save replaces
//! that folder, and a failed run may never create it.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use crate::atomic::write_atomically;

/// Lines of a failed child's stderr kept by [`error_tail`] (the whole stderr is in its log).
pub const ERROR_TAIL_LINES: usize = 20;
pub const ERROR_TAIL_BYTES: usize = 4000;

/// What the log file of a child holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transcript {
    /// Its stderr; stdout is discarded (`train` and `search` leave their results in the run
    /// folder).
    Stderr,
    /// `$ <command line>`, then its stdout, then its stderr (`tune` prints its table on
    /// stdout).
    CommandAndOutput,
}

/// A child that ran to its end.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stderr: String,
    /// `None` when the log could not be written (a warning says why).
    pub log: Option<PathBuf>,
}

/// `<dir>.log`: the log file beside a run folder.
pub fn log_beside(dir: &Path) -> PathBuf {
    let mut name = dir.as_os_str().to_owned();
    name.push(".log");
    PathBuf::from(name)
}

/// Runs `exe args`, waits for it and writes its log to `log`. A log that cannot be written
/// is a warning, not a failure: the run matters more than its log. `Err` says why the child
/// could not be started.
pub fn run(
    exe: &Path,
    args: &[String],
    log: &Path,
    transcript: Transcript,
) -> Result<Finished, String> {
    let stdout = match transcript {
        Transcript::Stderr => Stdio::null(),
        Transcript::CommandAndOutput => Stdio::piped(),
    };
    let mut command = Command::new(exe);
    die_with_parent(&mut command);
    let output = command
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let text = match transcript {
        Transcript::Stderr => stderr.clone(),
        Transcript::CommandAndOutput => format!(
            "$ {}\n{}{stderr}",
            shell_line("mtrec", args),
            String::from_utf8_lossy(&output.stdout)
        ),
    };
    let log = match write_atomically(log, text.as_bytes()) {
        Ok(()) => Some(log.to_path_buf()),
        Err(e) => {
            tracing::warn!("{e:#}");
            None
        }
    };
    Ok(Finished {
        status: output.status,
        stderr,
        log,
    })
}

/// On Linux, the child is killed when this process dies, however it dies: a runner killed
/// by SIGKILL must not leave its runs going on unowned, or the runner started again to resume
/// them would run each one twice at once on the same folder and run state.
fn die_with_parent(command: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: between fork and exec only async-signal-safe calls: prctl, getppid, _exit.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before prctl took effect.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = command;
}

/// What a failed child reported: its stderr from the last `error: ` line on (the line
/// `main` prints; an error's message may go on over more lines), without that prefix.
pub fn reported_error(stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let i = lines.iter().rposition(|l| l.starts_with("error: "))?;
    let text = lines[i..].join("\n");
    Some(text.strip_prefix("error: ").unwrap_or(&text).to_string())
}

/// The last lines of a failed child's stderr (at most [`ERROR_TAIL_LINES`] lines and about
/// [`ERROR_TAIL_BYTES`] bytes, cut at the front), or how it ended when stderr is empty.
pub fn error_tail(stderr: &str, status: &ExitStatus) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut text = lines[lines.len().saturating_sub(ERROR_TAIL_LINES)..].join("\n");
    if text.len() > ERROR_TAIL_BYTES {
        let mut cut = text.len() - ERROR_TAIL_BYTES;
        while !text.is_char_boundary(cut) {
            cut += 1;
        }
        text = format!("...{}", &text[cut..]);
    }
    if text.is_empty() {
        return silent_end(status);
    }
    text
}

/// How a child that wrote nothing on stderr ended.
pub fn silent_end(status: &ExitStatus) -> String {
    match status.code() {
        Some(c) => format!("exit code {c}, nothing on stderr"),
        None => describe_signal(status),
    }
}

#[cfg(unix)]
fn describe_signal(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(s) => format!("killed by signal {s}"),
        None => format!("ended abnormally ({status})"),
    }
}

#[cfg(not(unix))]
fn describe_signal(status: &ExitStatus) -> String {
    format!("ended abnormally ({status})")
}

/// The last non-empty line, where a child's `error: ...` line is.
pub fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
}

/// Quotes one word for a POSIX shell: as-is when it holds only safe characters, otherwise in
/// single quotes (inside which only `'` itself needs care: `'\''`).
pub fn shell_quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-+=./:,@%".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A command line as one shell line.
pub fn shell_line(program: &str, args: &[String]) -> String {
    std::iter::once(program)
        .chain(args.iter().map(String::as_str))
        .map(shell_quote)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_keeps_plain_words_and_escapes_quotes() {
        assert_eq!(
            shell_quote("train.learning_rate=3e-3"),
            "train.learning_rate=3e-3"
        );
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(
            shell_quote("train.monitor={task-auc=\"x\"}"),
            "'train.monitor={task-auc=\"x\"}'"
        );
        assert_eq!(
            shell_line("/bin/mtrec", &["--set".into(), "a=$HOME".into()]),
            "/bin/mtrec --set 'a=$HOME'"
        );
    }

    #[test]
    fn the_log_goes_beside_the_folder_even_when_its_name_has_a_dot() {
        assert_eq!(
            log_beside(Path::new("runs/g/a-lr0.5-s1")),
            Path::new("runs/g/a-lr0.5-s1.log")
        );
        assert_eq!(
            log_beside(Path::new("t/trials/3")),
            Path::new("t/trials/3.log")
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_error_tail_keeps_the_last_lines() {
        use std::os::unix::process::ExitStatusExt;
        let status = ExitStatus::from_raw(256);
        let many: String = (1..=30).map(|i| format!("line {i}\n\n")).collect();
        let t = error_tail(&many, &status);
        assert_eq!(t.lines().count(), ERROR_TAIL_LINES);
        assert!(t.starts_with("line 11\n") && t.ends_with("line 30"), "{t}");
        assert_eq!(last_line("a\nerror: b\n\n"), "error: b");
        let long = "é".repeat(ERROR_TAIL_BYTES);
        let t = error_tail(&long, &status);
        assert!(t.starts_with("...") && t.len() <= ERROR_TAIL_BYTES + 4);
        assert_eq!(
            error_tail("\n \n", &status),
            "exit code 1, nothing on stderr"
        );
        assert_eq!(
            error_tail("", &ExitStatus::from_raw(9)),
            "killed by signal 9"
        );
    }

    #[test]
    fn the_reported_error_runs_from_the_last_error_line_to_the_end() {
        let stderr = "WARN x\nerror: old\nerror: the splits must not be empty\n  more\n\n";
        assert_eq!(
            reported_error(stderr).as_deref(),
            Some("the splits must not be empty\n  more")
        );
        assert_eq!(reported_error("WARN x\n"), None);
    }

    #[cfg(unix)]
    #[test]
    fn a_child_is_run_and_logged_beside_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_beside(&dir.path().join("run"));
        let args = [
            "-c".to_string(),
            "echo out; echo 'error: bad' >&2; exit 3".into(),
        ];
        let f = run(Path::new("/bin/sh"), &args, &log, Transcript::Stderr).unwrap();
        assert_eq!(f.status.code(), Some(3));
        assert_eq!(f.log.as_deref(), Some(log.as_path()));
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "error: bad\n");
        let f = run(
            Path::new("/bin/sh"),
            &args,
            &log,
            Transcript::CommandAndOutput,
        )
        .unwrap();
        assert_eq!(reported_error(&f.stderr).as_deref(), Some("bad"));
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "$ mtrec -c 'echo out; echo '\\''error: bad'\\'' >&2; exit 3'\nout\nerror: bad\n"
        );
        let e = run(Path::new("/no/such/mtrec"), &args, &log, Transcript::Stderr).unwrap_err();
        assert!(e.starts_with("cannot start /no/such/mtrec: "), "{e}");
    }
}
