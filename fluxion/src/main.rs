//! fluxion-main: loads the configuration, then runs the control loop and the web server until
//! SIGTERM or SIGINT.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use clap::Parser;
use fluxion::config::{Config, Sources};
use fluxion::control::{Controller, Shared, STOP_HAND_BACK, STOP_TICK_GRACE};
use tokio::signal::unix::{signal, SignalKind};

/// Schedules a home battery against spot electricity prices through Home Assistant.
#[derive(Parser, Debug)]
#[command(name = "fluxion-main", version = fluxion::VERSION)]
struct Cli {
    /// Configuration file for local runs (TOML); environment variables override it.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Add-on options written by the Supervisor; read only when present.
    #[arg(long, value_name = "PATH", default_value = "/data/options.json")]
    options: PathBuf,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // The Supervisor's log view shows escape codes verbatim: colour only for a terminal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let sources = Sources {
        toml: cli.config.as_deref(),
        options_json: Some(&cli.options),
    };
    let config = match Config::load(&sources, std::env::vars()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("fluxion-main: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime starts");
    let result = runtime.block_on(run(config));
    // Dropping the runtime would wait for blocking work (a hung DNS lookup); stop is bounded.
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fluxion-main: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    // As PID 1 the kernel gives us no default signal actions: without these handlers
    // SIGTERM from `docker stop` would be ignored until SIGKILL.
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let ip = config
        .web
        .bind
        .parse()
        .context("web.bind is not an IP address")?;
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(ip, config.web.port))
        .await
        .with_context(|| format!("listening on {}:{}", config.web.bind, config.web.port))?;
    tracing::info!(version = fluxion::VERSION, addr = %listener.local_addr()?, "listening");
    if config.control.debug_mode {
        tracing::info!("debug mode: computing and showing the plan, sending no commands");
    } else {
        tracing::info!(
            stop_mode = ?config.control.stop_mode,
            "control mode: FluxION drives the inverter"
        );
    }
    let shared = Shared::new(config.control.debug_mode);
    let stop_rx = shared.shutdown.subscribe();
    let config = Arc::new(config);
    let app = fluxion::web::router(shared.clone(), config.clone())
        .into_make_service_with_connect_info::<SocketAddr>();
    let server = axum::serve(listener, app).with_graceful_shutdown({
        let mut stop_rx = stop_rx.clone();
        async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        }
    });
    let server = tokio::spawn(async move { server.await });
    let control = tokio::spawn(Controller::new((*config).clone(), shared.clone()).run(stop_rx));
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received, stopping"),
        _ = int.recv() => tracing::info!("SIGINT received, stopping"),
    }
    shared.shutdown.send_replace(true);
    // Both bounded and in parallel, so the stop stays under 5 s (Supervisor kills after 10 s):
    // event streams end on the shutdown signal and other connections are cut after 1 s; the
    // control loop hands the inverter back (`control.stop_mode`) within its own budget.
    let server = async {
        if tokio::time::timeout(Duration::from_secs(1), server)
            .await
            .is_err()
        {
            tracing::warn!("connections still open after 1 s, closing them");
        }
    };
    let limit = STOP_TICK_GRACE + STOP_HAND_BACK + Duration::from_millis(300);
    let control = async {
        match tokio::time::timeout(limit, control).await {
            Ok(Ok(outcome)) => tracing::debug!(?outcome, "hand-back"),
            Ok(Err(e)) => tracing::error!("control loop ended abnormally: {e}"),
            Err(_) => tracing::error!("control loop did not stop within {limit:?}"),
        }
    };
    tokio::join!(server, control);
    tracing::info!("stopped");
    Ok(())
}
