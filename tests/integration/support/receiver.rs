//! A real HTTP notification receiver on loopback: it records every request
//! (path, `Idempotency-Key`, JSON body) and answers with a scripted status.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, Uri},
};
use tokio::sync::Notify;

#[derive(Clone, Debug)]
pub struct Request {
    pub path: String,
    pub key: Option<String>,
    pub user_agent: Option<String>,
    pub body: serde_json::Value,
}

#[derive(Default)]
struct Inner {
    requests: Mutex<Vec<Request>>,
    /// Status codes for the next answers, in order; then 200.
    script: Mutex<VecDeque<u16>>,
    /// When set, the first request waits for `release` before answering.
    hold_first: Mutex<bool>,
    arrived: Notify,
    release: Notify,
}

#[derive(Clone)]
pub struct Receiver {
    inner: Arc<Inner>,
    pub port: u16,
}

async fn handle(
    State(inner): State<Arc<Inner>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let request = Request {
        path: uri.path().to_string(),
        key: header("idempotency-key"),
        user_agent: header("user-agent"),
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    };
    inner.requests.lock().expect("lock").push(request);
    let hold = std::mem::take(&mut *inner.hold_first.lock().expect("lock"));
    if hold {
        inner.arrived.notify_one();
        inner.release.notified().await;
    }
    let code = inner
        .script
        .lock()
        .expect("lock")
        .pop_front()
        .unwrap_or(200);
    StatusCode::from_u16(code).unwrap_or(StatusCode::OK)
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let port = listener.local_addr().expect("address").port();
        let inner = Arc::new(Inner::default());
        let app = Router::new().fallback(handle).with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { inner, port }
    }

    /// A URL with a secret-looking token, as real webhook URLs have.
    pub fn url(&self, token: &str) -> String {
        format!("http://127.0.0.1:{}/hooks/{token}", self.port)
    }

    /// Answers the next requests with these status codes.
    pub fn script(&self, codes: &[u16]) {
        self.inner
            .script
            .lock()
            .expect("lock")
            .extend(codes.iter().copied());
    }

    /// Makes the first request wait for [`Receiver::release`].
    pub fn hold_first(&self) {
        *self.inner.hold_first.lock().expect("lock") = true;
    }

    pub async fn wait_arrived(&self, timeout: Duration) {
        tokio::time::timeout(timeout, self.inner.arrived.notified())
            .await
            .expect("no request arrived at the receiver");
    }

    pub fn release(&self) {
        self.inner.release.notify_one();
    }

    pub fn requests(&self) -> Vec<Request> {
        self.inner.requests.lock().expect("lock").clone()
    }

    /// Requests whose path ends with `/<token>`.
    pub fn requests_to(&self, token: &str) -> Vec<Request> {
        let suffix = format!("/{token}");
        self.requests()
            .into_iter()
            .filter(|r| r.path.ends_with(&suffix))
            .collect()
    }

    /// Waits until `f` holds for the recorded requests.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        f: impl Fn(&[Request]) -> bool,
    ) -> Vec<Request> {
        let found = super::eventually(timeout, || async {
            let requests = self.requests();
            f(&requests).then_some(requests)
        })
        .await;
        found.unwrap_or_else(|| panic!("{what}: not seen; requests: {:#?}", self.requests()))
    }
}
