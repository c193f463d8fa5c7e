//! The gateway's admin endpoints on a loopback address: `/healthz` (200 while
//! any mailbox is not in error, 503 when every one is), `/metrics`
//! (Prometheus) and `/status` (JSON, read by `gateway status`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::sync::watch;

use crate::sync::worker::plan::MailboxState;

use super::Gateway;

async fn healthz(State(g): State<Arc<Gateway>>) -> impl IntoResponse {
    let reports = g.reports();
    if !reports.is_empty() && reports.iter().all(|r| r.state == MailboxState::Error) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "every mailbox is in error\n",
        )
    } else {
        (StatusCode::OK, "ok\n")
    }
}

async fn metrics(State(g): State<Arc<Gateway>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        super::metrics::render(&g.reports()),
    )
}

async fn status(State(g): State<Arc<Gateway>>) -> impl IntoResponse {
    axum::Json(g.reports())
}

/// Bind `addr` and serve until `stop` turns true. Returns the bound address.
pub async fn serve(
    g: Arc<Gateway>,
    addr: SocketAddr,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "the admin address must be loopback"
    );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on the admin address {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .with_state(g);
    let task = tokio::spawn(async move {
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::warn!(error = %e, "admin endpoints stopped");
        }
    });
    Ok((bound, task))
}
