#![recursion_limit = "512"]
use clap::Parser;
use roomcast::config::Config;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc's malloc: server rendering allocates and frees
/// many short strings, where glibc spent a third of the time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let config = Config::parse();
    // One descriptor per connection: allow as many as the system does.
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!(error = %e, "could not raise the open-file limit");
    }
    match roomcast::server::run(config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "roomcast stopped");
            std::process::ExitCode::FAILURE
        }
    }
}
