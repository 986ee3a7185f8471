//! The stop signal: SIGINT (Ctrl-C) or SIGTERM (what Kubernetes sends
//! before it kills a pod). The first starts a graceful stop; a second one
//! ends the process at once, for an operator who will not wait.

/// Exit code after a second signal (128 + SIGINT, as shells report it).
const FORCED_EXIT: i32 = 130;

/// Completes when the process is asked to stop, and from then on watches
/// for a second signal that exits immediately.
pub async fn signal() {
    first().await;
    tokio::spawn(async {
        first().await;
        tracing::warn!("second stop signal: exiting now, without waiting for in-flight work");
        std::process::exit(FORCED_EXIT);
    });
}

async fn first() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(term) => term,
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM; only Ctrl-C stops the service");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, stopping"),
            _ = term.recv() => tracing::info!("SIGTERM received, stopping"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("Ctrl-C received, stopping");
    }
}
