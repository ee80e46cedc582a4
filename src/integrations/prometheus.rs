//! Policy-defined Prometheus queries: `$namespace`, `$deployment` and
//! `$incident` are substituted as escaped PromQL string contents, the query
//! runs as an instant query, and the result becomes one `status.metrics`
//! entry. A failing query is reported, never fatal.

use std::time::Duration;

use serde::Deserialize;

use crate::{api::incident::MetricValue, domain::enrich::truncate, domain::policy::EffectiveQuery};

const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Queries in flight at once across every incident, so a burst of
/// incidents (or a slow Prometheus) cannot open unbounded connections.
pub const MAX_CONCURRENT_QUERIES: usize = 16;

/// Escapes `value` for use inside a double- or single-quoted PromQL string.
pub fn escape(value: &str) -> String {
    crate::domain::promql::escape_for(value, &['"', '\''])
}

/// The query with its variables replaced by escaped values.
pub fn substitute(query: &str, namespace: &str, deployment: &str, incident: &str) -> String {
    query
        .replace("$namespace", &escape(namespace))
        .replace("$deployment", &escape(deployment))
        .replace("$incident", &escape(incident))
}

#[derive(Deserialize)]
struct Response {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    result_type: String,
    result: serde_json::Value,
}

#[derive(Clone)]
pub struct Prometheus {
    http: std::sync::Arc<crate::integrations::egress::Clients>,
    limit: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Default for Prometheus {
    fn default() -> Self {
        Self {
            // The URL is a team's to set: no redirect is followed (the
            // query must not be sent on to wherever that server points),
            // and only what the namespace's egress allows is connected to.
            http: std::sync::Arc::new(crate::integrations::egress::Clients::new(|builder| {
                builder
                    .timeout(QUERY_TIMEOUT)
                    .connect_timeout(CONNECT_TIMEOUT)
                    .user_agent(crate::USER_AGENT)
            })),
            limit: std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_QUERIES)),
        }
    }
}

impl Prometheus {
    /// Runs each query once per affected Deployment when it uses
    /// `$deployment` (named `<query>/<deployment>`), else once.
    pub async fn run_all(
        &self,
        queries: &[EffectiveQuery],
        namespace: &str,
        incident: &str,
        deployments: &[String],
    ) -> Vec<MetricValue> {
        let mut jobs = Vec::new();
        for q in queries {
            if q.query.contains("$deployment") {
                for d in deployments {
                    jobs.push((
                        format!("{}/{d}", q.name),
                        q,
                        substitute(&q.query, namespace, d, incident),
                    ));
                }
            } else {
                jobs.push((
                    q.name.clone(),
                    q,
                    substitute(&q.query, namespace, "", incident),
                ));
            }
        }
        jobs.truncate(crate::api::limits::MAX_METRICS as usize);
        let runs = jobs.into_iter().map(|(name, q, promql)| async move {
            // A team's query reads only its own namespace's series.
            let confined = match &q.namespace_label {
                Some(label) => crate::domain::promql::confine(&promql, label, namespace)
                    .map_err(|e| e.to_string()),
                None => Ok(promql.clone()),
            };
            let result = match &confined {
                Ok(promql) => self.instant(q, promql).await,
                Err(error) => Err(error.clone()),
            };
            let promql = confined.unwrap_or(promql);
            let (value, error) = match result {
                Ok(value) => (Some(value), None),
                Err(error) => (None, Some(truncate(&error, 300))),
            };
            MetricValue {
                name,
                value,
                query: truncate(&promql, 1024),
                error,
            }
        });
        futures::future::join_all(runs).await
    }

    /// One instant query; the value as text, or why there is none.
    async fn instant(&self, query: &EffectiveQuery, promql: &str) -> Result<String, String> {
        let url = format!("{}/api/v1/query", query.url.trim_end_matches('/'));
        let url =
            reqwest::Url::parse(&url).map_err(|_| "the Prometheus URL is not a URL".to_string())?;
        let http = self
            .http
            .for_url(&query.egress, &url)
            .map_err(|denied| format!("{}{denied}", crate::domain::egress::DENIED_PREFIX))?;
        let _permit = self
            .limit
            .acquire()
            .await
            .map_err(|_| "the query limiter is closed".to_string())?;
        let response = http
            .post(url)
            .form(&[("query", promql)])
            .send()
            .await
            .map_err(|e| crate::integrations::notify::describe(e, "Prometheus"))?;
        let code = response.status();
        let body: Response = response
            .json()
            .await
            .map_err(|_| format!("Prometheus answered HTTP {code} without a query result"))?;
        if body.status != "success" {
            return Err(body
                .error
                .unwrap_or_else(|| format!("Prometheus answered HTTP {code}")));
        }
        let data = body.data.ok_or("Prometheus returned no data")?;
        value_of(&data.result_type, &data.result)
    }
}

fn number(pair: &serde_json::Value) -> Option<String> {
    let text = pair.get(1)?.as_str()?;
    Some(match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
        Ok(v) if v.is_finite() => format!("{}", (v * 10_000.0).round() / 10_000.0),
        _ => text.to_string(),
    })
}

fn value_of(result_type: &str, result: &serde_json::Value) -> Result<String, String> {
    match result_type {
        "scalar" => number(result).ok_or_else(|| "unreadable scalar".into()),
        "vector" => {
            let series = result.as_array().map(Vec::as_slice).unwrap_or_default();
            let first = series
                .first()
                .ok_or_else(|| "no data: the query matched no series".to_string())?;
            let value = number(&first["value"]).ok_or("unreadable sample")?;
            Ok(if series.len() > 1 {
                format!("{value} (first of {} series)", series.len())
            } else {
                value
            })
        }
        other => Err(format!(
            "the query returns a {other}; use an instant vector or scalar"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_so_they_cannot_break_out_of_a_label_matcher() {
        let q = r#"up{namespace="$namespace",pod=~"$deployment-.*"}"#;
        assert_eq!(
            substitute(q, "shop", r#"x"} or vector(1) or {a=""#, "inc"),
            r#"up{namespace="shop",pod=~"x\"} or vector(1) or {a=\"-.*"}"#
        );
    }

    #[test]
    fn reads_scalars_and_vectors() {
        let vector = serde_json::json!([{"metric": {}, "value": [1.0, "0.25"]}]);
        assert_eq!(value_of("vector", &vector).as_deref(), Ok("0.25"));
        let many = serde_json::json!([
            {"metric": {"a": "1"}, "value": [1.0, "3"]},
            {"metric": {"a": "2"}, "value": [1.0, "4"]}
        ]);
        assert_eq!(
            value_of("vector", &many).as_deref(),
            Ok("3 (first of 2 series)")
        );
        assert!(value_of("vector", &serde_json::json!([])).is_err());
        assert_eq!(
            value_of("scalar", &serde_json::json!([1.0, "12"])).as_deref(),
            Ok("12")
        );
        assert!(value_of("matrix", &serde_json::json!([])).is_err());
    }

    /// A server that answers every request with `response`, counting them.
    async fn serve(
        response: http::Response<String>,
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::{Arc, atomic::AtomicUsize};
        let hits = Arc::new(AtomicUsize::new(0));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let (status, headers, body) = {
            let (parts, body) = response.into_parts();
            (parts.status, parts.headers, body)
        };
        let counted = hits.clone();
        let app = axum::Router::new().fallback(move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let (headers, body) = (headers.clone(), body.clone());
            async move { (status, headers, body) }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{address}"), hits)
    }

    #[tokio::test]
    async fn a_redirect_is_reported_not_followed() {
        use std::sync::atomic::Ordering;
        let (elsewhere, followed) = serve(
            http::Response::builder()
                .body(
                    r#"{"status":"success","data":{"resultType":"scalar","result":[0,"1"]}}"#
                        .into(),
                )
                .expect("response"),
        )
        .await;
        let (url, asked) = serve(
            http::Response::builder()
                .status(302)
                .header("location", format!("{elsewhere}/api/v1/query"))
                .body(String::new())
                .expect("response"),
        )
        .await;
        let query = EffectiveQuery {
            name: "errors".into(),
            query: "sum(up)".into(),
            url,
            egress: Default::default(),
            namespace_label: None,
        };
        let results = Prometheus::default()
            .run_all(std::slice::from_ref(&query), "shop", "inc", &[])
            .await;
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        assert_eq!(
            followed.load(Ordering::SeqCst),
            0,
            "the redirect was followed"
        );
        assert_eq!(results[0].value, None);
        assert!(
            results[0]
                .error
                .as_deref()
                .is_some_and(|e| e.contains("302")),
            "{:?}",
            results[0].error
        );
    }
}
