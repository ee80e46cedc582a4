//! The apiserver's audit log (`<cluster dir>/audit.log`, written because
//! [`Cluster::start`](super::Cluster::start) passes `--audit`): one JSON
//! event per line, at the Metadata level. These helpers read what the
//! operator asked for (its requests carry `User-Agent: klaxon/<version>`)
//! so tests can count requests instead of trusting the operator's word.

use std::{
    collections::HashMap,
    path::Path,
    time::{Duration, Instant},
};

use jiff::Timestamp;
use serde_json::Value;

/// The operator's User-Agent prefix (`klaxon::USER_AGENT` is `klaxon/<ver>`).
pub const OPERATOR_AGENT: &str = "klaxon/";

/// One API request as the audit log recorded it.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub audit_id: String,
    /// The last stage seen: `ResponseComplete`, or `ResponseStarted` for a
    /// watch still open.
    pub stage: String,
    pub verb: String,
    /// `None` for the core group.
    pub api_group: Option<String>,
    pub resource: Option<String>,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// `requestReceivedTimestamp`.
    pub time: Timestamp,
    pub code: Option<u16>,
    pub user_agent: String,
    pub user: String,
    pub uri: String,
}

impl Request {
    /// Whether this is `verb` on `resource` (with `subresource`, if any) in
    /// the core group or in `group`.
    pub fn is(&self, verb: &str, group: Option<&str>, resource: &str) -> bool {
        let (resource, subresource) = match resource.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (resource, None),
        };
        self.verb == verb
            && self.api_group.as_deref() == group
            && self.resource.as_deref() == Some(resource)
            && self.subresource.as_deref() == subresource
    }

    pub fn in_namespace(&self, namespace: &str) -> bool {
        self.namespace.as_deref() == Some(namespace)
    }

    /// `verb resource[/sub][.group] ns/name -> code`, for failure messages.
    pub fn describe(&self) -> String {
        let mut resource = self.resource.clone().unwrap_or_else(|| self.uri.clone());
        if let Some(sub) = &self.subresource {
            resource = format!("{resource}/{sub}");
        }
        if let Some(group) = &self.api_group {
            resource = format!("{resource}.{group}");
        }
        format!(
            "{} {} {} {}/{} -> {:?}",
            self.time,
            self.verb,
            resource,
            self.namespace.as_deref().unwrap_or("-"),
            self.name.as_deref().unwrap_or("-"),
            self.code
        )
    }
}

/// One audit event, or `None` for a line that is not one (e.g. a line cut
/// short while the apiserver writes it).
fn parse(line: &str) -> Option<Request> {
    let event: Value = serde_json::from_str(line).ok()?;
    let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    let object = &event["objectRef"];
    Some(Request {
        audit_id: text(&event["auditID"])?,
        stage: text(&event["stage"]).unwrap_or_default(),
        verb: text(&event["verb"]).unwrap_or_default(),
        api_group: text(&object["apiGroup"]),
        resource: text(&object["resource"]),
        subresource: text(&object["subresource"]),
        namespace: text(&object["namespace"]),
        name: text(&object["name"]),
        time: event["requestReceivedTimestamp"].as_str()?.parse().ok()?,
        code: event["responseStatus"]["code"]
            .as_u64()
            .and_then(|c| u16::try_from(c).ok()),
        user_agent: text(&event["userAgent"]).unwrap_or_default(),
        user: text(&event["user"]["username"]).unwrap_or_default(),
        uri: text(&event["requestURI"]).unwrap_or_default(),
    })
}

/// Every request in the audit log at `path`, once each (a watch is logged
/// when its response starts and again when it completes: the last stage
/// wins), in the order they were received.
pub fn requests(path: &Path) -> Vec<Request> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut order: Vec<String> = Vec::new();
    let mut by_id: HashMap<String, Request> = HashMap::new();
    for request in text.lines().filter_map(parse) {
        if !by_id.contains_key(&request.audit_id) {
            order.push(request.audit_id.clone());
        }
        by_id.insert(request.audit_id.clone(), request);
    }
    let mut all: Vec<Request> = order
        .into_iter()
        .filter_map(|id| by_id.remove(&id))
        .collect();
    all.sort_by_key(|r| r.time);
    all
}

/// The operator's requests (User-Agent `klaxon/...`).
pub fn operator_requests(path: &Path) -> Vec<Request> {
    requests(path)
        .into_iter()
        .filter(|r| r.user_agent.starts_with(OPERATOR_AGENT))
        .collect()
}

/// Waits until the audit log at `path` has not grown for `quiet`, or
/// `timeout` passes; returns whether it went quiet. The apiserver writes
/// it in batches, so a request just answered may not be there yet. A log
/// that a running operator keeps growing never goes quiet: stop the
/// operator first, or use [`wait_until_covers`].
pub async fn wait_until_quiet(path: &Path, quiet: Duration, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let len = || std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let (mut last, mut since) = (len(), Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = len();
        if now != last {
            (last, since) = (now, Instant::now());
        } else if now > 0 && since.elapsed() >= quiet {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
    }
}

/// Waits until the audit log at `path` holds a request (by anyone)
/// received at or after `at`: everything received before it was written
/// by then, as far as batching goes. Makes one such request itself when
/// `client` is given, so a quiet cluster does not keep it waiting.
pub async fn wait_until_covers(
    path: &Path,
    at: Timestamp,
    client: Option<&kube::Client>,
    timeout: Duration,
) -> bool {
    if let Some(client) = client {
        let _ = client.apiserver_version().await;
    }
    super::eventually(timeout, || async {
        requests(path)
            .last()
            .is_some_and(|r| r.time >= at)
            .then_some(())
    })
    .await
    .is_some()
}
