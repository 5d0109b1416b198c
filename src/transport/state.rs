//! What every handler of every transport shares.

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;
use tokio::sync::watch;

use super::limits::Limits;
use super::throttle::Throttle;
use crate::config::Config;
use crate::engine::Engine;
use crate::sessions::Sessions;

#[derive(Clone, FromRef)]
pub struct AppState {
    pub engine: Engine,
    pub sessions: Sessions,
    pub config: Arc<Config>,
    pub leptos_options: LeptosOptions,
    pub limits: Arc<Limits>,
    pub throttle: Arc<Throttle>,
    /// Flips to true when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
}
