//! Assembles the server: storage, engine, sessions, the router of every
//! transport, and graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS};
use axum::routing::get;
use leptos::prelude::LeptosOptions;
use leptos_axum::{LeptosRoutes, generate_route_list};
use tokio::sync::{mpsc, watch};
use tower_http::compression::CompressionLayer;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::config::Config;
use crate::engine;
use crate::engine::broker::{Broker, Inbound, LocalBroker};
use crate::engine::storage::Storage;
use crate::sessions::Sessions;
use crate::sqlite::SqliteStorage;
use crate::transport::limits::{ConnectionCaps, Limits};
use crate::transport::listen::{self, ListenOptions};
use crate::transport::state::AppState;
use crate::transport::throttle::{Buckets, Throttle};
use crate::transport::{admission, assets, forms, pages, rest, ws};

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

fn connection_caps(config: &Config) -> ConnectionCaps {
    ConnectionCaps {
        total: config.max_connections.max(1),
        per_address: config.max_connections_per_address.max(1),
        sockets_per_user: config.max_sockets_per_user.max(1),
    }
}

fn throttle_settings(config: &Config) -> Throttle {
    Throttle {
        rest: Buckets::new(config.rest_rate_per_second, config.rest_rate_burst),
        sessions: Buckets::new(config.session_rate_per_minute / 60.0, config.session_rate_burst),
        trusted_proxies: config.trusted_proxies.clone(),
        request_timeout: config.request_timeout(),
    }
}

/// Builds the router and its state.
pub async fn build(config: Config, shutdown: watch::Receiver<bool>) -> Result<(Router, AppState), BoxError> {
    let (storage, broker, inbox) = backends(&config).await?;
    let engine = engine::start(storage.clone(), broker, inbox, config.engine_settings()).await?;
    let sessions = Sessions::new(storage, config.session_ttl());
    sessions.start_sweeping();
    let leptos_options = LeptosOptions::builder()
        .output_name(assets::output_name(&config.site_root))
        .site_root(config.site_root.to_string_lossy().to_string())
        .site_pkg_dir("pkg")
        .site_addr(config.addr)
        .build();
    let limits = Limits::new(connection_caps(&config), config.trusted_proxies.clone());
    let throttle = Arc::new(throttle_settings(&config));
    let state = AppState {
        engine: engine.clone(),
        sessions,
        config: Arc::new(config),
        leptos_options,
        limits,
        throttle,
        shutdown,
    };

    let routes = generate_route_list(app::App);
    let data = pages::server_data(&engine);
    let options = state.leptos_options.clone();
    let router = Router::new()
        .merge(rest::routes())
        .merge(forms::routes())
        .leptos_routes_with_context(
            &state,
            routes,
            move || leptos::prelude::provide_context(data.clone()),
            move || app::shell(options.clone()),
        )
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(app::shell))
        // Everything but the socket upgrade goes out compressed.
        .layer(CompressionLayer::new())
        .route("/ws", get(ws::upgrade))
        .layer(axum::middleware::from_fn(assets::cache_hashed))
        .layer(axum::middleware::from_fn_with_state(state.clone(), pages::page_session))
        // Every answer: no MIME sniffing, no full referrer to other sites,
        // never framed (pages also get a CSP from the shell), revalidated
        // before reuse (but hashed assets, cached for a year).
        .layer(SetResponseHeaderLayer::if_not_present(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::if_not_present(
            REFERRER_POLICY,
            HeaderValue::from_static("strict-origin-when-cross-origin"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::if_not_present(CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .layer(axum::middleware::from_fn_with_state(state.clone(), admission::admit))
        .with_state(state.clone());
    Ok((router, state))
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(config: Config) -> Result<(), BoxError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let addr = config.addr;
    let options = ListenOptions {
        header_timeout: config.header_timeout(),
        tcp_send_buffer: config.tcp_send_buffer,
        drain: Duration::from_secs(5),
    };
    let (router, state) = build(config, stop_rx).await?;
    let listener = listen::bind(addr)?;
    tracing::info!(addr = %listener.local_addr()?, "roomcast listening");
    let stopping = async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    };
    listen::serve(listener, router, state.limits.clone(), options, stopping).await;
    // Upgraded WebSocket connections outlive the HTTP server: give them
    // time to send `server:shutdown` and close with 1012.
    let engine = state.engine;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while engine.metrics().connections.load(std::sync::atomic::Ordering::Relaxed) > 0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
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
