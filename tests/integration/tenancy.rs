//! Tenancy guardrails on the real control plane: the egress allow-list
//! (a URL outside it gets no connection, and a team cannot widen it) and
//! queries confined to the incident's namespace, as a stand-in Prometheus
//! receives them.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Router, body::Bytes, routing::post};
use klaxon::api::{Incident, ResponsePolicy};
use kube::Api;
use serde_json::json;

use crate::support::{
    self,
    fixtures::{apply, condition, secret, selectable_namespace, wait_for},
    operator,
    receiver::Receiver,
};

const WAIT: Duration = Duration::from_secs(90);

/// A TCP listener that only counts the connections it is offered.
async fn counting_listener() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    (port, accepted)
}

/// A stand-in for Prometheus's query API: it records each query it is
/// sent and answers one sample, as Prometheus's `/api/v1/query` does.
async fn recording_prometheus() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let queries = Arc::new(Mutex::new(Vec::new()));
    let seen = queries.clone();
    let app = Router::new().route(
        "/api/v1/query",
        post(move |body: Bytes| {
            let seen = seen.clone();
            async move {
                let query = url::form_urlencoded::parse(&body)
                    .find(|(k, _)| k == "query")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                seen.lock().expect("lock").push(query);
                json!({"status": "success", "data": {"resultType": "vector",
                    "result": [{"metric": {}, "value": [1_700_000_000, "1"]}]}})
                .to_string()
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, queries)
}

#[tokio::test]
async fn a_url_outside_the_allow_list_is_never_contacted_and_queries_stay_in_the_namespace() {
    let cluster = support::cluster();
    operator::shared();
    let client = cluster.client().await;
    let ns = selectable_namespace(&client, "egress").await;
    let (outside, contacted) = counting_listener().await;
    let (prometheus, queries) = recording_prometheus().await;
    let allowed = Receiver::start().await;
    let token = format!("allowed-{ns}");
    secret(
        &client,
        &ns,
        "hooks",
        &[
            ("allowed", &allowed.url(&token)),
            ("outside", &format!("http://127.0.0.1:{outside}/hooks/x")),
        ],
    )
    .await;

    // The organisation allows its Prometheus and one receiver; its own
    // queries run for the namespace, one naming another namespace and one
    // that does not parse. The team names the outside listener for its
    // Prometheus and a receiver, and lists it in its own egress, which
    // cannot widen the organisation's.
    apply(
        cluster,
        &format!(
            r#"
apiVersion: klaxon.dev/v1alpha1
kind: ClusterResponsePolicy
metadata: {{name: egress-{ns}}}
spec:
  namespaceSelector: {{matchLabels: {{klaxon.dev/policy-test: {ns}}}}}
  egress:
    hosts: ["127.0.0.1:{prometheus}", "127.0.0.1:{receiver}"]
  enrichment:
    prometheus:
      url: http://127.0.0.1:{prometheus}
      queries:
        - {{name: errors, query: 'sum(rate(http_requests_total{{code=~"5.."}}[5m])) / sum(rate(http_requests_total{{namespace="payments"}}[5m]))'}}
        - {{name: broken, query: 'sum(up'}}
---
apiVersion: klaxon.dev/v1alpha1
kind: ResponsePolicy
metadata: {{name: team, namespace: {ns}}}
spec:
  egress:
    hosts: ["127.0.0.1:{prometheus}", "127.0.0.1:{receiver}", "127.0.0.1:{outside}"]
  enrichment:
    prometheus:
      url: http://127.0.0.1:{outside}
      queries:
        - {{name: team-errors, query: 'sum(up)'}}
  receivers:
    - {{name: allowed, webhook: {{urlSecretRef: {{name: hooks, key: allowed}}}}}}
    - {{name: outside, webhook: {{urlSecretRef: {{name: hooks, key: outside}}}}}}
  routes:
    - {{receivers: [allowed, outside]}}
---
apiVersion: klaxon.dev/v1alpha1
kind: Incident
metadata: {{name: checkout-5xx, namespace: {ns}}}
spec: {{title: Checkout returns 5xx, severity: SEV2}}
"#,
            receiver = allowed.port,
        ),
    );

    // The policy says which URL is refused, naming the field, the host
    // and the organisation's policy that refuses it.
    let policies: Api<ResponsePolicy> = Api::namespaced(client.clone(), &ns);
    let ready = support::eventually(WAIT, || async {
        let policy = policies.get("team").await.ok()?;
        policy
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready" && c.reason == "EgressDenied")
    })
    .await
    .expect("the team policy is not Ready=False EgressDenied");
    assert_eq!(ready.status, "False");
    let baseline = format!("ClusterResponsePolicy egress-{ns}");
    for field in ["spec.enrichment.prometheus.url", "spec.receivers[outside]"] {
        assert!(
            ready.message.contains(&format!(
                "{field}: port {outside} of host 127.0.0.1 is not in spec.egress of {baseline}"
            )),
            "{field}: {}",
            ready.message
        );
    }
    assert!(
        !ready.message.contains("/hooks/x"),
        "the Secret's URL leaked: {}",
        ready.message
    );

    // The incident says the same of its query and its page; the allowed
    // receiver was paged.
    let incident = wait_for(&client, &ns, "checkout-5xx", WAIT, "EgressDenied", |i| {
        condition(i, "QueriesSucceeded").is_some_and(|c| c.reason == "EgressDenied")
            && condition(i, "NotificationsDelivered").is_some_and(|c| c.reason == "EgressDenied")
    })
    .await;
    let queried = condition(&incident, "QueriesSucceeded").expect("QueriesSucceeded");
    assert!(
        queried.message.contains("team-errors: egress denied: port")
            && queried.message.contains("broken: the query does not parse"),
        "{}",
        queried.message
    );
    let paged = condition(&incident, "NotificationsDelivered").expect("NotificationsDelivered");
    assert!(
        paged.message.starts_with("outside: egress denied: "),
        "{}",
        paged.message
    );
    allowed
        .wait_for(WAIT, "the allowed receiver's page", |r| {
            r.iter().any(|r| r.path.ends_with(&format!("/{token}")))
        })
        .await;

    // Queries keep running every second; after several more rounds, the
    // outside listener was still never contacted, and Prometheus received
    // only confined queries: never the one that does not parse.
    let rounds = support::eventually(WAIT, || async {
        (queries.lock().expect("lock").len() >= 5).then_some(())
    })
    .await;
    assert!(
        rounds.is_some(),
        "the stand-in Prometheus received too few queries"
    );
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);
    crate::support::fixtures::more_passes(operator::shared().port, &incidents, "checkout-5xx", 5.0)
        .await;
    assert_eq!(
        contacted.load(Ordering::SeqCst),
        0,
        "a URL outside the allow-list was contacted"
    );
    let received = queries.lock().expect("lock").clone();
    let confined = format!(
        r#"sum(rate(http_requests_total{{code=~"5..",namespace="{ns}"}}[5m])) / sum(rate(http_requests_total{{namespace="{ns}"}}[5m]))"#
    );
    for query in &received {
        assert_eq!(query, &confined, "an unconfined query reached Prometheus");
    }
}

/// Impersonating users through the real apiserver: a note appended in
/// someone else's name and the operator's marks set by anyone but the
/// operator are refused at admission; one's own note, edits of existing
/// notes and other labels are not.
#[tokio::test]
async fn forged_notes_and_marks_are_refused_and_ones_own_note_is_accepted() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    let ns = support::namespace(&client, "authorship").await;
    let operator_user = format!("system:serviceaccount:{ns}:klaxon");
    // What the chart's edit role grants a responder, and what its
    // operator role grants the operator's ServiceAccount.
    apply(
        cluster,
        &format!(
            r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: responder, namespace: {ns}}}
rules:
  - {{apiGroups: [klaxon.dev], resources: [incidents], verbs: [get, list, watch, create, update, patch, delete]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: responders, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: responder}}
subjects:
  - {{apiGroup: rbac.authorization.k8s.io, kind: User, name: bob}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: operator, namespace: {ns}}}
rules:
  - {{apiGroups: [klaxon.dev], resources: [incidents], verbs: [get, create, patch]}}
  - {{apiGroups: [klaxon.dev], resources: [incidents/marks], verbs: [set]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: operator, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: operator}}
subjects:
  - {{kind: ServiceAccount, name: klaxon, namespace: {ns}}}
"#
        ),
    );
    let kubectl = |user: &str, args: &[&str], stdin: Option<&str>| {
        let mut all = vec!["--as", user, "-n", ns.as_str()];
        all.extend_from_slice(args);
        cluster.kubectl_with_stdin(&all, stdin)
    };
    let incident = |notes: &str| {
        format!(
            "apiVersion: klaxon.dev/v1alpha1\nkind: Incident\nmetadata: {{name: outage, namespace: {ns}}}\nspec:\n  title: Checkout down\n  severity: SEV2\n  notes: [{notes}]\n"
        )
    };

    // One's own note: accepted, on create and appended.
    let own = kubectl(
        "bob",
        &["apply", "-f", "-"],
        Some(&incident("{text: looking, author: bob}")),
    );
    support::assert_success(&own, "bob declares with his own note");
    let appended = incident("{text: looking, author: bob}, {text: rolled back, author: bob}");
    support::assert_success(
        &kubectl("bob", &["apply", "-f", "-"], Some(&appended)),
        "bob's second note",
    );

    // A note appended in alice's name: refused, naming who may write it.
    let forged = incident(
        "{text: looking, author: bob}, {text: rolled back, author: bob}, {text: all clear, author: alice}",
    );
    let out = kubectl("bob", &["apply", "-f", "-"], Some(&forged));
    assert!(!out.status.success(), "a forged note was accepted");
    let message = support::stderr(&out);
    assert!(
        message.contains("klaxon-incident-authorship")
            && message
                .contains("a new note must name its author as the user adding it (bob), not alice"),
        "{message}"
    );
    // Editing a note already there stays possible, as before.
    let edited = kubectl(
        "bob",
        &[
            "patch",
            "incident",
            "outage",
            "--type=json",
            "-p",
            r#"[{"op": "replace", "path": "/spec/notes/1/text", "value": "rolled back to v41"}]"#,
        ],
        None,
    );
    support::assert_success(&edited, "bob edits an existing note");

    // The operator's marks: refused for bob (set, and removed once the
    // operator set it), accepted for the operator's ServiceAccount.
    for (what, args) in [
        (
            "label",
            vec![
                "label",
                "incident",
                "outage",
                "klaxon.dev/signal=CrashLooping",
            ],
        ),
        (
            "label",
            vec!["label", "incident", "outage", "klaxon.dev/alert-group=g"],
        ),
        (
            "label",
            vec![
                "label",
                "incident",
                "outage",
                "klaxon.dev/heartbeat=Watchdog",
            ],
        ),
        (
            "annotation",
            vec![
                "annotate",
                "incident",
                "outage",
                "klaxon.dev/resolve-with-alerts=10m",
            ],
        ),
    ] {
        let out = kubectl("bob", &args, None);
        assert!(!out.status.success(), "bob set the {what} {}", args[3]);
        let message = support::stderr(&out);
        assert!(
            message.contains("marks an incident the Klaxon operator declared itself"),
            "{message}"
        );
    }
    let marked = kubectl(
        &operator_user,
        &[
            "label",
            "incident",
            "outage",
            "klaxon.dev/signal=CrashLooping",
        ],
        None,
    );
    support::assert_success(&marked, "the operator's ServiceAccount sets its mark");
    let removed = kubectl(
        "bob",
        &["label", "incident", "outage", "klaxon.dev/signal-"],
        None,
    );
    assert!(!removed.status.success(), "bob removed the operator's mark");
    let changed = kubectl(
        "bob",
        &[
            "label",
            "--overwrite",
            "incident",
            "outage",
            "klaxon.dev/signal=DeploymentUnavailable",
        ],
        None,
    );
    assert!(!changed.status.success(), "bob changed the operator's mark");
    // Any other label is bob's to set.
    support::assert_success(
        &kubectl(
            "bob",
            &["label", "incident", "outage", "example.com/owner=bob"],
            None,
        ),
        "bob sets another label",
    );
}
