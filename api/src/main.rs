use std::convert::Infallible;
use std::pin::pin;
use std::process::ExitCode;
use std::time::Duration;

use api::{App, Config, Db};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
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

    let listener = match TcpListener::bind(config.listen_addr).await {
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

    serve(listener, App::new(Db::new(config.database))).await;
    println!("api: stopped");
    ExitCode::SUCCESS
}

/// Serves HTTP/1.1 connections until SIGTERM or SIGINT, then lets the requests in flight finish.
async fn serve(listener: TcpListener, app: App) {
    let connections = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown_signal());
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    eprintln!("api: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let service = service_fn(move |request| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(app.handle(request).await) }
        });
        let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            // A client that goes away mid-request is its own business.
            let _ = connection.await;
        });
    }
    connections.shutdown().await;
}

/// Resolves on SIGTERM (docker stop; as PID 1 nothing else would handle it) or
/// SIGINT.
async fn shutdown_signal() {
    let mut term = signal(SignalKind::terminate()).expect("cannot install SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    println!("api: shutting down");
}
