//! The operator's HTTP endpoints: `/healthz` (the process is alive),
//! `/readyz` (caches are synced and controllers run) and `/metrics`.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Router, extract::State, http::StatusCode, http::header, response::IntoResponse, routing::get,
};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::health::Health;

#[derive(Clone)]
struct AppState {
    health: Health,
    registry: Arc<Registry>,
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    health: Health,
    registry: Registry,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let state = AppState {
        health,
        registry: Arc::new(registry),
    };
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let blind = state.health.blind_watches();
    if !blind.is_empty() {
        let text = format!("cannot watch the cluster: {} failing", blind.join(", "));
        (StatusCode::SERVICE_UNAVAILABLE, text)
    } else if state.health.is_ready() {
        (StatusCode::OK, "ok".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "caches not synced yet".to_string(),
        )
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "metrics encoding failed".to_string(),
        ),
    }
}

/// Alertmanager's webhooks are this large at most (a batch of a few
/// hundred alerts); larger is refused with 413.
pub const MAX_ALERTS_BODY: usize = 1024 * 1024;

/// Batches worked on at once; more wait for [`IN_FLIGHT_WAIT`], then are
/// told to retry.
pub const ALERTS_IN_FLIGHT: usize = 8;
/// How long a batch waits for its turn: well within the 10 s Alertmanager
/// waits for an answer.
const IN_FLIGHT_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

#[derive(Clone)]
struct AlertsState {
    health: Health,
    intake: Arc<std::sync::OnceLock<crate::controllers::alerts::Intake>>,
    metrics: crate::metrics::Metrics,
    /// `--alerts-rate`: authenticated requests per second.
    rate: Arc<governor::DefaultDirectRateLimiter>,
    in_flight: Arc<tokio::sync::Semaphore>,
}

/// `POST /alertmanager` on its own address (`--alerts-address`), at most
/// `rate` requests a second.
pub async fn serve_alerts(
    listener: tokio::net::TcpListener,
    health: Health,
    intake: Arc<std::sync::OnceLock<crate::controllers::alerts::Intake>>,
    metrics: crate::metrics::Metrics,
    rate: std::num::NonZeroU32,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let state = AlertsState {
        health,
        intake,
        metrics,
        rate: Arc::new(governor::RateLimiter::direct(governor::Quota::per_second(
            rate,
        ))),
        in_flight: Arc::new(tokio::sync::Semaphore::new(ALERTS_IN_FLIGHT)),
    };
    let app = Router::new()
        .route("/alertmanager", axum::routing::post(alertmanager))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_ALERTS_BODY))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

async fn alertmanager(
    State(state): State<AlertsState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use subtle::ConstantTimeEq;
    let refuse = |outcome: &'static str, code: StatusCode, text: String| {
        state
            .metrics
            .alerts
            .get_or_create(&crate::metrics::AlertLabels { outcome })
            .inc();
        (code, text).into_response()
    };
    // Not the leader, or not synced: 503, and the connection is closed so
    // that Alertmanager's retry opens a new one, which the Service may
    // send to the leader (a kept-alive connection would stay here).
    let unavailable = |outcome: &'static str, text: &str| {
        state
            .metrics
            .alerts
            .get_or_create(&crate::metrics::AlertLabels { outcome })
            .inc();
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONNECTION, "close")],
            text.to_string(),
        )
            .into_response()
    };
    let Some(intake) = state.intake.get() else {
        return unavailable(
            "standby",
            "standing by: another instance holds the Lease; retry",
        );
    };
    if !state.health.is_ready() {
        return unavailable("standby", "caches not synced yet; retry");
    }
    let token = match intake.token().await {
        Ok(token) if !token.is_empty() => token,
        Ok(_) => {
            tracing::warn!(secret = %intake.token_secret, "the alerts token Secret holds an empty token; refusing Alertmanager's requests");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "no token configured: key token of Secret {}/{} is empty",
                    intake.namespace, intake.token_secret
                ),
            )
                .into_response();
        }
        Err(error) => {
            tracing::warn!(%error, "cannot check Alertmanager's token");
            return (StatusCode::SERVICE_UNAVAILABLE, error.to_string()).into_response();
        }
    };
    // The scheme is case-insensitive (RFC 7235).
    let sent = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .unwrap_or_default();
    if sent.is_empty() || !bool::from(sent.as_bytes().ct_eq(&token)) {
        // A rotated token is picked up within seconds, not at the cache's
        // next refresh.
        intake.suspect_token();
        return refuse(
            "unauthorized",
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Alertmanager: http_config.authorization)".into(),
        );
    }
    // Past the rate, or with too much in flight: 429, and when to retry
    // (Alertmanager retries a failed notification with backoff).
    let throttled = |retry_after: u64, text: String| {
        state
            .metrics
            .alerts
            .get_or_create(&crate::metrics::AlertLabels {
                outcome: "throttled",
            })
            .inc();
        (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry_after.max(1).to_string())],
            text,
        )
            .into_response()
    };
    if let Err(not_until) = state.rate.check() {
        use governor::clock::Clock;
        let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
        return throttled(
            wait.as_secs_f64().ceil() as u64,
            "more requests than --alerts-rate allows; retry".into(),
        );
    }
    let Ok(Ok(_turn)) =
        tokio::time::timeout(IN_FLIGHT_WAIT, state.in_flight.clone().acquire_owned()).await
    else {
        return throttled(1, "too many batches in flight; retry".into());
    };
    // Alertmanager sends JSON; anything else declared is not a batch.
    if let Some(kind) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|kind| kind != "application/json")
    {
        return refuse(
            "malformed",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content type {kind:?}; Alertmanager's webhook sends application/json"),
        );
    }
    let payload = match crate::domain::alerts::parse(&body) {
        Ok(payload) => payload,
        Err(error) => {
            return refuse("malformed", StatusCode::BAD_REQUEST, error.to_string());
        }
    };
    match intake.accept(payload).await {
        Ok(outcome) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_string(&outcome).unwrap_or_default(),
        )
            .into_response(),
        Err(error) => {
            tracing::warn!(%error, "could not record Alertmanager's batch; it will retry");
            (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response()
        }
    }
}
