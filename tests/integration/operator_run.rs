//! `klaxon run` as a process: it refuses to start without the CRDs, serves
//! health and metrics, and stops cleanly on SIGTERM.

use std::time::Duration;

use crate::support::{self, Cluster, operator::Operator};

#[test]
fn run_without_crds_exits_with_one_clear_error() {
    let bare = Cluster::start_bare("no-crds");
    let mut operator = Operator::start(&bare.kubeconfig, "no-crds", &[]);
    let status = operator
        .wait_exit(Duration::from_secs(60))
        .expect("klaxon run should exit when the CRDs are missing");
    assert!(!status.success(), "exit status {status} should be non-zero");
    let log = operator.log_text();
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("klaxon: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "expected exactly one error line:\n{log}");
    for text in [
        "CRDs are not installed",
        "incidents.klaxon.dev",
        "responsepolicies.klaxon.dev",
        "clusterresponsepolicies.klaxon.dev",
        "kubectl apply -f crds/",
        "make crds",
    ] {
        assert!(
            errors[0].contains(text),
            "error lacks {text:?}: {}",
            errors[0]
        );
    }
}

#[test]
fn run_serves_health_and_metrics_and_stops_on_sigterm() {
    let cluster = support::cluster();
    let mut operator = Operator::start(&cluster.kubeconfig, "health", &[]);
    operator.wait_ready(Duration::from_secs(60));

    let healthz = operator.get("/healthz").expect("/healthz answers");
    assert_eq!(healthz.status, 200);
    let readyz = operator.get("/readyz").expect("/readyz answers");
    assert_eq!(readyz.status, 200);
    let metrics = operator.get("/metrics").expect("/metrics answers");
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .headers
            .to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "{}",
        metrics.headers
    );
    assert!(
        metrics.body.contains("klaxon_build_info{version=\""),
        "{}",
        metrics.body
    );
    assert!(
        metrics.body.trim_end().ends_with("# EOF"),
        "{}",
        metrics.body
    );

    let status = operator
        .terminate(Duration::from_secs(30))
        .expect("klaxon run should stop on SIGTERM");
    assert!(
        status.success(),
        "exit status {status}:\n{}",
        operator.log_text()
    );
    let log = operator.log_text();
    assert!(log.contains("SIGTERM received"), "{log}");
    // The log went to a file: plain text, no terminal colour codes.
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escapes in a log file:\n{log}"
    );
}
