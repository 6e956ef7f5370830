//! Binding, serving, reloading and stopping.
//!
//! [`Server::bind`] loads the checkpoint and listens; [`Server::run`] serves until its
//! shutdown future resolves, then stops accepting connections, lets every request already
//! received finish (up to `shutdown_timeout`), drains the inference queue and returns. A
//! reload is asked for by SIGHUP, by [`ServerHandle::reload`], or with `watch` set, by a new
//! checkpoint appearing in the folder (its manifest's modification time changes).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::http::{AppState, Counters, Limits, router};
use crate::model::{ModelSlot, Reloaded, checkpoint_stamp};
use crate::{ServeError, worker};

/// Everything `mtrec serve` can be told.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub checkpoint: PathBuf,
    pub addr: SocketAddr,
    pub limits: Limits,
    /// Poll the checkpoint folder this often and reload when a new checkpoint is saved
    /// there; `None`: reload on SIGHUP (or [`ServerHandle::reload`]) only.
    pub watch: Option<Duration>,
    /// Rows of queued requests joined into one forward pass at most.
    pub max_batch_rows: usize,
    /// Requests waiting for the inference thread before handlers wait to queue theirs.
    pub queue: usize,
    /// After a shutdown signal, how long requests in flight may take to finish.
    pub shutdown_timeout: Duration,
}

impl ServeOptions {
    pub fn new(checkpoint: impl Into<PathBuf>, addr: SocketAddr) -> Self {
        ServeOptions {
            checkpoint: checkpoint.into(),
            addr,
            limits: Limits::default(),
            watch: None,
            max_batch_rows: 1024,
            queue: 256,
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// A loaded model on a bound socket, not yet serving.
pub struct Server {
    listener: TcpListener,
    state: AppState,
    inference_thread: std::thread::JoinHandle<()>,
    options: ServeOptions,
}

/// Controls a server from the outside (tests, the CLI's signal handling).
#[derive(Clone)]
pub struct ServerHandle {
    models: Arc<ModelSlot>,
    addr: SocketAddr,
}

impl ServerHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Reloads the checkpoint now (on a blocking thread), as SIGHUP does.
    pub async fn reload(&self) -> Result<Reloaded, ServeError> {
        let models = self.models.clone();
        tokio::task::spawn_blocking(move || models.reload())
            .await
            .map_err(|e| ServeError::Io(std::io::Error::other(e)))?
    }

    /// The generation being served (1 at start).
    pub fn generation(&self) -> u64 {
        self.models.current().generation
    }
}

impl Server {
    /// Loads the checkpoint (blocking: call it from a blocking context or before serving)
    /// and binds the address.
    pub async fn bind(options: ServeOptions) -> Result<Server, ServeError> {
        let device = mtrec_engine::default_device();
        let checkpoint = options.checkpoint.clone();
        let slot_device = device.clone();
        let models = tokio::task::spawn_blocking(move || ModelSlot::load(&checkpoint, slot_device))
            .await
            .map_err(|e| ServeError::Io(std::io::Error::other(e)))??;
        let listener =
            TcpListener::bind(options.addr)
                .await
                .map_err(|source| ServeError::Bind {
                    addr: options.addr,
                    source,
                })?;
        let (inference, inference_thread) =
            worker::spawn(device, options.max_batch_rows, options.queue)?;
        let state = AppState {
            models: Arc::new(models),
            inference,
            limits: options.limits,
            counters: Arc::new(Counters::default()),
            started: Instant::now(),
        };
        Ok(Server {
            listener,
            state,
            inference_thread,
            options,
        })
    }

    pub fn handle(&self) -> Result<ServerHandle, ServeError> {
        Ok(ServerHandle {
            models: self.state.models.clone(),
            addr: self.listener.local_addr()?,
        })
    }

    /// Serves until `shutdown` resolves, then finishes the requests in flight (at most
    /// `shutdown_timeout`) and the queued inference work.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Server {
            listener,
            state,
            inference_thread,
            options,
        } = self;
        let models = state.models.clone();
        let stop = Arc::new(Notify::new());
        let mut background = vec![tokio::spawn(reload_on_sighup(models.clone()))];
        if let Some(every) = options.watch {
            background.push(tokio::spawn(watch_checkpoint(models.clone(), every)));
        }
        let listener = listener.tap_io(|tcp| {
            // Small answers go out at once instead of waiting for Nagle's timer.
            let _ = tcp.set_nodelay(true);
        });
        let notified = stop.clone();
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: finishing the requests in flight");
            notified.notify_waiters();
        };
        let serving = axum::serve(listener, router(state)).with_graceful_shutdown(signal);
        let deadline = async {
            stop.notified().await;
            tokio::time::sleep(options.shutdown_timeout).await;
        };
        let finished = tokio::select! {
            served = serving => Some(served),
            () = deadline => None,
        };
        for task in background {
            task.abort();
        }
        match finished {
            Some(served) => {
                // Every connection, and with it every queue sender, is gone: the inference
                // thread drains the queue and ends.
                let _ = tokio::task::spawn_blocking(move || inference_thread.join()).await;
                served.map_err(ServeError::Io)
            }
            None => {
                tracing::warn!(
                    "requests still running {:?} after the shutdown signal were cut off",
                    options.shutdown_timeout
                );
                Ok(())
            }
        }
    }
}

/// SIGTERM or Ctrl-C (SIGINT): what stops `mtrec serve`.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn reload_on_sighup(models: Arc<ModelSlot>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP: reloads only with --reload");
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading {}", models.checkpoint().display());
            reload(&models).await;
        }
    }
    #[cfg(not(unix))]
    let _ = models;
}

/// Polls the manifest's modification time; a checkpoint that fails to load is retried only
/// once it changes again, so a broken save is reported once, not every tick.
async fn watch_checkpoint(models: Arc<ModelSlot>, every: Duration) {
    let mut tried = models.current().stamp;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = checkpoint_stamp(models.checkpoint());
        if now.is_none() || now == tried {
            continue;
        }
        match reload(&models).await {
            // Caught mid-save: the next tick sees the finished checkpoint.
            Some(Reloaded::Changing) => {}
            _ => tried = now,
        }
    }
}

async fn reload(models: &Arc<ModelSlot>) -> Option<Reloaded> {
    let slot = models.clone();
    match tokio::task::spawn_blocking(move || slot.reload()).await {
        Ok(Ok(Reloaded::Swapped(generation))) => {
            tracing::info!(
                "serving {} (generation {generation})",
                models.checkpoint().display()
            );
            Some(Reloaded::Swapped(generation))
        }
        Ok(Ok(Reloaded::Changing)) => Some(Reloaded::Changing),
        Ok(Err(e)) => {
            tracing::error!("reload failed, the previous model keeps serving: {e}");
            None
        }
        Err(e) => {
            tracing::error!("reload failed: {e}");
            None
        }
    }
}
