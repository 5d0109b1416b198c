//! Assembles the server: storage, engine, sessions, the router of every
//! transport, and graceful shutdown.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use axum::serve::ListenerExt;
use leptos::prelude::LeptosOptions;
use leptos_axum::{LeptosRoutes, generate_route_list};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::engine::broker::{Broker, Inbound, LocalBroker};
use crate::engine::storage::Storage;
use crate::engine::{self, Engine};
use crate::sessions::Sessions;
use crate::sqlite::SqliteStorage;
use crate::transport::state::AppState;
use crate::transport::{pages, rest, ws};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

type Backends = (Arc<dyn Storage>, Arc<dyn Broker>, mpsc::UnboundedReceiver<Inbound>);

/// The two assemblies: `(RedisStorage, RedisBroker)` with other servers
/// when `--redis-url` is given, else `(SqliteStorage, LocalBroker)` alone.
async fn backends(config: &Config) -> Result<Backends, BoxError> {
    match &config.redis_url {
        Some(url) => {
            let (storage, broker, inbox) =
                crate::redis::connect(url, &config.redis_prefix, config.redis_settings()).await?;
            Ok((Arc::new(storage), Arc::new(broker), inbox))
        }
        None => {
            let (broker, inbox) = LocalBroker::new();
            let storage = SqliteStorage::open_with(&config.db, config.write_batch)?;
            Ok((Arc::new(storage), Arc::new(broker), inbox))
        }
    }
}

/// Builds the router and its state.
pub async fn build(config: Config, shutdown: watch::Receiver<bool>) -> Result<(Router, Engine), BoxError> {
    let (storage, broker, inbox) = backends(&config).await?;
    let engine = engine::start(storage.clone(), broker, inbox, config.engine_settings()).await?;
    let sessions = Sessions::new(storage);
    let leptos_options = LeptosOptions::builder()
        .output_name("roomcast")
        .site_root(config.site_root.to_string_lossy().to_string())
        .site_pkg_dir("pkg")
        .site_addr(config.addr)
        .build();
    let state = AppState { engine: engine.clone(), sessions, config: Arc::new(config), leptos_options, shutdown };

    let routes = generate_route_list(app::App);
    let data = pages::server_data(&engine);
    let options = state.leptos_options.clone();
    let router = Router::new()
        .merge(rest::routes())
        .route("/ws", get(ws::upgrade))
        .leptos_routes_with_context(
            &state,
            routes,
            move || leptos::prelude::provide_context(data.clone()),
            move || app::shell(options.clone()),
        )
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(app::shell))
        .layer(axum::middleware::from_fn_with_state(state.clone(), pages::ensure_session))
        .with_state(state);
    Ok((router, engine))
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(config: Config) -> Result<(), BoxError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let addr = config.addr;
    let config_send_buffer = config.tcp_send_buffer;
    let (router, engine) = build(config, stop_rx).await?;
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "roomcast listening");
    let send_buffer = config_send_buffer;
    let listener = listener.tap_io(move |tcp| {
        let _ = tcp.set_nodelay(true);
        if let Some(size) = send_buffer {
            let _ = socket2::SockRef::from(&*tcp).set_send_buffer_size(size);
        }
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            tracing::info!("shutting down");
            let _ = stop_tx.send(true);
        })
        .await?;
    // Upgraded WebSocket connections outlive the HTTP server: give them
    // time to send `server:shutdown` and close with 1012.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while engine.metrics().connections.load(std::sync::atomic::Ordering::Relaxed) > 0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    engine.leave_cluster().await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
