//! Assembles the server: storage, engine, sessions, the router of every
//! transport, and graceful shutdown.

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::get;
use axum::serve::ListenerExt;
use leptos::prelude::LeptosOptions;
use leptos_axum::{LeptosRoutes, generate_route_list};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cluster::Cluster;
use crate::config::Config;
use crate::engine::Engine;
use crate::sessions::Sessions;
use crate::storage::Storage;
use crate::storage::sqlite::SqliteStorage;
use crate::transport::{pages, rest, ws};

#[derive(Clone, FromRef)]
pub struct AppState {
    pub engine: Engine,
    pub sessions: Sessions,
    pub config: Arc<Config>,
    pub leptos_options: LeptosOptions,
    /// Flips to true when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
}

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Builds the router and its state: on Redis with other servers when
/// `--redis-url` is given, else alone on the SQLite file.
pub async fn build(config: Config, shutdown: watch::Receiver<bool>) -> Result<(Router, Engine), BoxError> {
    let (storage, cluster): (Arc<dyn Storage>, _) = match &config.redis_url {
        Some(url) => {
            let (cluster, inbox) = Cluster::connect(url, &config.redis_prefix, config.cluster_settings()).await?;
            (Arc::new(cluster.storage()), Some((cluster, inbox)))
        }
        None => (Arc::new(SqliteStorage::open(&config.db)?), None),
    };
    let engine = Engine::start(storage.clone(), config.engine_settings(), cluster).await?;
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
