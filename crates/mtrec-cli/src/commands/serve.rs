//! `mtrec serve`: a checkpoint's predictions over HTTP (the server is `mtrec-serve`).

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use mtrec_serve::{Limits, ServeOptions, Server, shutdown_signal};

use crate::cli::ServeArgs;
use crate::progress::Progress;

pub fn run(args: ServeArgs) -> Result<()> {
    let options = options(&args)?;
    // Two async threads parse and encode requests while the inference thread computes;
    // more would only compete with it and the tensor threads for the cores.
    let io_threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 2);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(io_threads)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let spinner = Progress::spinner("loading the checkpoint");
        let server = Server::bind(options).await;
        spinner.finish_and_clear();
        let server = server?;
        let handle = server.handle()?;
        // The address on stdout (port 0 picks one): scripts and tests read it there.
        println!("listening on http://{}", handle.local_addr());
        std::io::stdout().flush()?;
        eprintln!(
            "serving {}: POST /predict, GET /health, GET /model; SIGHUP reloads, SIGTERM or \
             Ctrl-C stops",
            args.checkpoint.display()
        );
        server.run(shutdown_signal()).await?;
        eprintln!("stopped");
        Ok(())
    })
}

fn options(args: &ServeArgs) -> Result<ServeOptions> {
    let seconds = |name: &str, v: f64| -> Result<Duration> {
        if !(v.is_finite() && v > 0.0) {
            bail!("--{name} must be a positive number of seconds, got {v}");
        }
        Ok(Duration::from_secs_f64(v))
    };
    if args.max_rows == 0 || args.max_body_bytes == 0 || args.max_batch_rows == 0 {
        bail!("--max-rows, --max-body-bytes and --max-batch-rows must be at least 1");
    }
    let mut options = ServeOptions::new(&args.checkpoint, args.addr);
    options.limits = Limits {
        max_body_bytes: args.max_body_bytes,
        max_rows: args.max_rows,
    };
    options.watch = match args.reload {
        true => Some(seconds("reload-interval", args.reload_interval)?),
        false => None,
    };
    options.max_batch_rows = args.max_batch_rows;
    options.shutdown_timeout = seconds("shutdown-timeout", args.shutdown_timeout)?;
    Ok(options)
}
