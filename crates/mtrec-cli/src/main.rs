//! `mtrec`: train, evaluate and use multi-task recommendation models from the terminal.
//!
//! A thin dispatcher: each subcommand lives in its own module under `commands/`; the libraries
//! do the work and report through events, this binary owns the terminal (progress bars,
//! tables, JSON on stdout, errors on stderr and a non-zero exit code).

mod atomic;
mod child;
mod cli;
mod commands;
mod folder_settings;
mod grid;
mod lock;
mod progress;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    restore_sigpipe();
    let mut cli = cli::Cli::parse();
    init_tracing(cli.verbose);
    if let Err(e) = choose_device(cli.device.as_deref()) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    // `mtrec run` does no tensor work itself: a global --threads means the threads of each run.
    if let (Some(n), cli::Command::Run(run)) = (cli.threads, &mut cli.command) {
        run.threads_per_run = run.threads_per_run.or(std::num::NonZeroUsize::new(n));
    }
    if let Some(n) = cli.threads {
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
        {
            eprintln!("error: cannot set {n} threads: {e}");
            return ExitCode::FAILURE;
        }
    }
    match commands::run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--device`, else `MTREC_DEVICE`, checked before any work: a typo or a GPU this build
/// cannot drive is an error now rather than a silent CPU run.
fn choose_device(flag: Option<&str>) -> Result<(), String> {
    let (value, source) = match (flag, std::env::var("MTREC_DEVICE")) {
        (Some(v), _) => (v.to_string(), "--device"),
        (None, Ok(v)) if !v.is_empty() => (v, "MTREC_DEVICE"),
        _ => return Ok(()),
    };
    let choice: mtrec_engine::DeviceChoice = value.parse().map_err(|e| format!("{source}: {e}"))?;
    mtrec_engine::select_device(choice).map_err(|e| format!("{source} {value}: {e}"))?;
    if flag.is_some() {
        // SAFETY: called from `main` before any thread is started; child processes (`mtrec
        // run`'s runs) read the choice from the environment.
        unsafe { std::env::set_var("MTREC_DEVICE", &value) };
    }
    Ok(())
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MTREC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(use_colour(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
        ))
        .with_target(false)
        .init();
}

/// Colour escapes belong on a terminal only: in a redirected log (`2> log.txt`) they are
/// noise. `NO_COLOR` set to any non-empty value turns colour off (<https://no-color.org>).
fn use_colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Rust ignores SIGPIPE, so `mtrec models | head` would panic on the closed pipe; restoring
/// the default makes the binary end quietly, as Unix tools do.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(test)]
mod tests {
    use super::use_colour;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some(OsStr::new(""))));
        assert!(!use_colour(true, Some(OsStr::new("1"))));
        assert!(!use_colour(false, None));
        assert!(!use_colour(false, Some(OsStr::new(""))));
    }
}
