//! `namaskah-edge`: the edge alone, in front of a remote gRPC server.
//!
//! Configuration (environment; unset or empty means the default):
//! `NAMASKAH_EDGE_ADDR` (`0.0.0.0:8080`), `NAMASKAH_UPSTREAM` (`http://127.0.0.1:50051`),
//! `NAMASKAH_EDGE_MAX_BODY` (bytes, `1048576`), `NAMASKAH_CORS_ORIGINS` (comma-separated
//! browser origins allowed across origins; none), `NAMASKAH_TLS_CERT` and `NAMASKAH_TLS_KEY`
//! (PEM files: serve HTTPS instead of HTTP; unset), `RUST_LOG` (`info`).

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use namaskah_edge::{ENV_EDGE_ADDR, Settings, serve_with, upstream_channel};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

/// The same allocator as `namaskah-server`'s (see its `main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// After SIGTERM/SIGINT, how long open connections (say, long server streams) may take to
/// finish before the process exits anyway.
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_ansi(std::io::stdout().is_terminal())
        .init();

    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}`: the whole chain on one line, without a backtrace.
            eprintln!("namaskah-edge: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let listener = TcpListener::bind(settings.addr)
        .await
        .with_context(|| format!("{ENV_EDGE_ADDR}: cannot listen on {}", settings.addr))?;
    tracing::info!(
        addr = %listener.local_addr()?,
        upstream = %settings.upstream,
        max_body_bytes = settings.options.max_body_bytes,
        tls = settings.tls.is_some(),
        "namaskah-edge listening",
    );

    let upstream = upstream_channel(settings.upstream.clone());
    let (stopping_tx, stopping) = watch::channel(false);
    tokio::spawn(async move {
        namaskah_edge::shutdown_signal().await;
        tracing::info!("shutting down: no new connections, finishing open ones");
        let _ = stopping_tx.send(true);
    });

    let shutdown = stopped(stopping.clone());
    let serving = async move {
        match &settings.tls {
            Some(identity) => {
                namaskah_edge::tls::serve_tls_with(
                    listener,
                    identity,
                    upstream,
                    settings.options,
                    shutdown,
                )
                .await
            }
            None => serve_with(listener, upstream, settings.options, shutdown).await,
        }
    };
    tokio::select! {
        result = serving => result.context("serving HTTP")?,
        () = async { stopped(stopping).await; tokio::time::sleep(DRAIN_DEADLINE).await } => {
            tracing::warn!(deadline = ?DRAIN_DEADLINE, "connections still open after the drain deadline; exiting");
        }
    }
    tracing::info!("namaskah-edge stopped");
    Ok(())
}

/// Resolves once the shutdown flag is set (or its sender is gone).
async fn stopped(mut flag: watch::Receiver<bool>) {
    let _ = flag.wait_for(|stopping| *stopping).await;
}
