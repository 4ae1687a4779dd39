use std::process::ExitCode;

use api::{Config, Db};
use tokio::signal::unix::{signal, SignalKind};

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("api: configuration error: {e}");
            return ExitCode::FAILURE;
        }
    };

    let listener = match tokio::net::TcpListener::bind(config.listen_addr).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("api: cannot listen on {}: {e}", config.listen_addr);
            return ExitCode::FAILURE;
        }
    };
    println!(
        "api: listening on {} (commit {}, tree {})",
        config.listen_addr,
        api::GIT_COMMIT,
        api::GIT_TREE
    );

    let app = api::router(Db::new(config.database));
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await;
    match served {
        Ok(()) => {
            println!("api: stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("api: server error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM (docker stop; as PID 1 nothing else would handle it) or
/// SIGINT, letting in-flight requests finish.
async fn shutdown_signal() {
    let mut term = signal(SignalKind::terminate()).expect("cannot install SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    println!("api: shutting down");
}
