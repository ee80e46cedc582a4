//! Response policies on the real control plane, with real HTTP receivers:
//! the baseline and team merge, guardrails, the severity ladder and its
//! requirements, routed notifications delivered once, retries, deadlines
//! and escalation.

use std::time::Duration;

use k8s_openapi::{api::core::v1::Namespace, apimachinery::pkg::apis::meta::v1::Condition};
use klaxon::api::{ClusterResponsePolicy, Incident, ResponsePolicy};
use kube::{
    Api,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
};
use serde_json::json;

use crate::support::{
    self, Cluster, assert_success,
    fixtures::{apply, condition, secret, selectable_namespace, wait_for},
    operator::{self, Operator},
    receiver::Receiver,
    stdout,
};

const WAIT: Duration = Duration::from_secs(60);
/// Long enough for the shortest deadline the schema allows (1m) to pass.
const DEADLINE_WAIT: Duration = Duration::from_secs(150);

fn has(incident: &Incident, type_: &str, status: &str, reason: &str) -> bool {
    condition(incident, type_).is_some_and(|c| c.status == status && c.reason == reason)
}

/// Seconds from declaration to the acknowledgement deadline.
fn deadline_secs(incident: &Incident) -> Option<i64> {
    let status = incident.status.as_ref()?;
    let by = status.acknowledge_by.as_ref()?.0;
    let declared = status.declared_at.as_ref()?.0;
    Some(by.duration_since(declared).as_secs())
}

fn baseline(ns: &str) -> String {
    format!(
        r#"
apiVersion: klaxon.dev/v1alpha1
kind: ClusterResponsePolicy
metadata: {{name: baseline-{ns}}}
spec:
  namespaceSelector: {{matchLabels: {{klaxon.dev/policy-test: {ns}}}}}
  severities:
    - {{name: SEV1, acknowledgeWithin: 5m, requireCommander: true, requirePostmortem: true}}
    - {{name: SEV2, acknowledgeWithin: 15m}}
    - {{name: SEV3}}
"#
    )
}

fn incident(ns: &str, name: &str, severity: &str, extra: &str) -> String {
    format!(
        r#"
apiVersion: klaxon.dev/v1alpha1
kind: Incident
metadata: {{name: {name}, namespace: {ns}}}
spec:
  title: Checkout returns 5xx
  severity: {severity}
{extra}"#
    )
}

async fn wait_policy<K>(api: &Api<K>, name: &str, what: &str, ready: impl Fn(&K) -> bool) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let found = support::eventually(WAIT, || async {
        api.get(name).await.ok().filter(|p| ready(p))
    })
    .await;
    match found {
        Some(policy) => policy,
        None => panic!(
            "{name}: {what} not seen; last: {:#?}",
            api.get(name).await.ok()
        ),
    }
}

fn policy_ready(status: Option<&klaxon::api::PolicyStatus>) -> Option<&Condition> {
    status?.conditions.iter().find(|c| c.type_ == "Ready")
}

#[tokio::test]
async fn team_policy_tightens_the_baseline_and_cannot_loosen_it() {
    let cluster = support::cluster();
    operator::shared();
    let client = cluster.client().await;
    let ns = selectable_namespace(&client, "merge").await;
    apply(cluster, &baseline(&ns));
    apply(
        cluster,
        &format!(
            r#"
apiVersion: klaxon.dev/v1alpha1
kind: ResponsePolicy
metadata: {{name: payments, namespace: {ns}}}
spec:
  team: {{name: payments, contact: payments-oncall}}
  severities:
    - {{name: SEV2, acknowledgeWithin: 10m}}
"#
        ),
    );
    apply(cluster, &incident(&ns, "checkout-5xx", "SEV2", ""));

    let tight = wait_for(
        &client,
        &ns,
        "checkout-5xx",
        WAIT,
        "the team's deadline",
        |i| deadline_secs(i) == Some(600),
    )
    .await;
    let status = tight.status.as_ref().expect("status");
    assert_eq!(status.team.as_deref(), Some("payments"));
    let policy = status.policy.as_ref().expect("status.policy");
    assert_eq!(policy.response_policy.as_deref(), Some("payments"));
    assert_eq!(policy.cluster_response_policies, [format!("baseline-{ns}")]);

    let rps: Api<ResponsePolicy> = Api::namespaced(client.clone(), &ns);
    wait_policy(&rps, "payments", "Ready with one open incident", |p| {
        let status = p.status.as_ref();
        policy_ready(status).is_some_and(|c| c.status == "True")
            && status.and_then(|s| s.open_incidents) == Some(1)
            && status.and_then(|s| s.observed_generation) == p.metadata.generation
    })
    .await;
    let crps: Api<ClusterResponsePolicy> = Api::all(client.clone());
    wait_policy(&crps, &format!("baseline-{ns}"), "one open incident", |p| {
        p.status.as_ref().and_then(|s| s.open_incidents) == Some(1)
    })
    .await;

    // Loosening the deadline and dropping a requirement: refused, named,
    // and the baseline applies again.
    apply(
        cluster,
        &format!(
            r#"
apiVersion: klaxon.dev/v1alpha1
kind: ResponsePolicy
metadata: {{name: payments, namespace: {ns}}}
spec:
  team: {{name: payments}}
  severities:
    - {{name: SEV2, acknowledgeWithin: 1h}}
    - {{name: SEV1, requireCommander: false}}
"#
        ),
    );
    let refused = wait_policy(&rps, "payments", "Ready=False", |p| {
        policy_ready(p.status.as_ref()).is_some_and(|c| c.status == "False")
    })
    .await;
    let ready = policy_ready(refused.status.as_ref()).expect("Ready");
    assert_eq!(ready.reason, "LoosensBaseline");
    assert!(
        ready
            .message
            .contains("spec.severities[0].acknowledgeWithin: 1h is looser than the baseline's 15m")
            && ready
                .message
                .contains("spec.severities[1].requireCommander"),
        "{}",
        ready.message
    );
    let loose = wait_for(
        &client,
        &ns,
        "checkout-5xx",
        WAIT,
        "the baseline's deadline",
        |i| deadline_secs(i) == Some(900),
    )
    .await;
    let policy = loose.status.as_ref().and_then(|s| s.policy.as_ref());
    assert_eq!(policy.and_then(|p| p.response_policy.as_deref()), None);

    let out = cluster.kubectl(&["get", "rp", "-n", &ns]);
    assert_success(&out, "kubectl get rp");
    assert!(stdout(&out).contains("False"), "{}", stdout(&out));

    // A second policy in the namespace is a conflict; the oldest applies.
    apply(
        cluster,
        &format!(
            "apiVersion: klaxon.dev/v1alpha1\nkind: ResponsePolicy\nmetadata: {{name: payments-too, namespace: {ns}}}\nspec: {{team: {{name: someone-else}}}}\n"
        ),
    );
    let second = wait_policy(&rps, "payments-too", "Ready=False", |p| {
        policy_ready(p.status.as_ref()).is_some_and(|c| c.status == "False")
    })
    .await;
    let ready = policy_ready(second.status.as_ref()).expect("Ready");
    assert_eq!(ready.reason, "Conflict");
    assert!(
        ready
            .message
            .contains("ResponsePolicy payments already governs"),
        "{}",
        ready.message
    );
    let _ = cluster.kubectl(&["delete", "crp", &format!("baseline-{ns}")]);
}

#[tokio::test]
async fn the_ladder_rejects_unknown_severities_and_enforces_requirements() {
    let cluster = support::cluster();
    operator::shared();
    let client = cluster.client().await;
    let ns = selectable_namespace(&client, "ladder").await;
    // Declared before the ladder existed (admission had nothing to check
    // it against); the ladder arriving later makes it invalid.
    apply(cluster, &incident(&ns, "typo", "SEV9", ""));
    apply(cluster, &baseline(&ns));
    let typo = wait_for(&client, &ns, "typo", WAIT, "UnknownSeverity", |i| {
        has(i, "Ready", "False", "UnknownSeverity")
    })
    .await;
    let message = &condition(&typo, "Ready").expect("Ready").message;
    assert!(
        message.contains("valid levels: SEV1, SEV2, SEV3"),
        "{message}"
    );

    apply(cluster, &incident(&ns, "no-commander", "SEV1", ""));
    let lone = wait_for(
        &client,
        &ns,
        "no-commander",
        WAIT,
        "CommanderMissing",
        |i| {
            has(i, "CommanderMissing", "True", "NoCommander")
                && has(i, "Ready", "False", "CommanderMissing")
        },
    )
    .await;
    let summary = lone.status.as_ref().and_then(|s| s.summary.clone());
    assert!(
        summary
            .as_deref()
            .is_some_and(|s| s.starts_with("commander missing")),
        "{summary:?}"
    );

    apply(
        cluster,
        &incident(
            &ns,
            "no-postmortem",
            "SEV1",
            "  commander: alice\n  phase: Resolved\n",
        ),
    );
    wait_for(
        &client,
        &ns,
        "no-postmortem",
        WAIT,
        "PostmortemRequired",
        |i| {
            has(i, "PostmortemRequired", "True", "NoPostmortem")
                && has(i, "Ready", "False", "PostmortemRequired")
                && i.status
                    .as_ref()
                    .and_then(|s| s.summary.as_deref())
                    .is_some_and(|s| s.contains("postmortem required"))
        },
    )
    .await;
    apply(
        cluster,
        &incident(
            &ns,
            "no-postmortem",
            "SEV1",
            "  commander: alice\n  phase: Resolved\n  postmortem: {url: https://wiki.example/pm/1}\n",
        ),
    );
    wait_for(
        &client,
        &ns,
        "no-postmortem",
        WAIT,
        "the postmortem linked",
        |i| {
            has(i, "PostmortemRequired", "False", "PostmortemLinked")
                && has(i, "Ready", "True", "Resolved")
        },
    )
    .await;
    let _ = cluster.kubectl(&["delete", "crp", &format!("baseline-{ns}")]);
}

fn team_policy(ns: &str, body: &str) -> String {
    format!(
        r#"
apiVersion: klaxon.dev/v1alpha1
kind: ResponsePolicy
metadata: {{name: team, namespace: {ns}}}
spec:
{body}"#
    )
}

#[tokio::test]
async fn routed_notifications_arrive_once_with_the_documented_payload_and_no_url_leaks() {
    let cluster = support::cluster();
    let shared = operator::shared();
    let client = cluster.client().await;
    let ns = support::namespace(&client, "notify").await;
    let receiver = Receiver::start().await;
    let token = format!("s3cr3t-{ns}");
    let slack_token = format!("{token}-slack");
    secret(
        &client,
        &ns,
        "klaxon-hooks",
        &[
            ("team", &receiver.url(&token)),
            ("slack", &receiver.url(&slack_token)),
        ],
    )
    .await;
    apply(
        cluster,
        &team_policy(
            &ns,
            r#"  team: {name: payments}
  receivers:
    - {name: team-webhook, webhook: {urlSecretRef: {name: klaxon-hooks, key: team}}}
    - {name: team-slack, slack: {urlSecretRef: {name: klaxon-hooks, key: slack}}}
  routes:
    - {receivers: [team-webhook], severities: [SEV2], triggers: [Declared, Resolved]}
    - {receivers: [team-slack], severities: [SEV1], triggers: [Declared]}
"#,
        ),
    );
    apply(cluster, &incident(&ns, "checkout-5xx", "SEV2", ""));
    let declared = receiver
        .wait_for(WAIT, "the Declared webhook", |r| !r.is_empty())
        .await;
    let request = &declared[0];
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);
    let uid = incidents
        .get("checkout-5xx")
        .await
        .expect("incident")
        .metadata
        .uid
        .expect("uid");
    let key = format!("{uid}.1.Declared.team-webhook");
    assert!(request.path.ends_with(&token));
    assert_eq!(request.key.as_deref(), Some(key.as_str()));
    assert!(
        request
            .user_agent
            .as_deref()
            .is_some_and(|ua| ua.starts_with("klaxon/"))
    );
    let body = &request.body;
    assert_eq!(body["version"], "klaxon.dev/v1alpha1");
    assert_eq!(body["idempotencyKey"], key.as_str());
    assert_eq!(body["trigger"], "Declared");
    assert_eq!(body["incident"]["namespace"], ns.as_str());
    assert_eq!(body["incident"]["name"], "checkout-5xx");
    assert_eq!(body["incident"]["uid"], uid.as_str());
    assert_eq!(body["incident"]["severity"], "SEV2");
    assert_eq!(body["incident"]["phase"], "Triggered");
    assert_eq!(body["incident"]["team"], "payments");
    let text = body["text"].as_str().expect("text");
    assert!(
        text.starts_with(&format!("[SEV2] {ns}/checkout-5xx declared")),
        "{text}"
    );
    assert!(!text.contains("http"), "{text}");

    // PhaseChanged is not routed; Resolved is.
    let patch = |phase: &str| json!({"spec": {"phase": phase}});
    incidents
        .patch(
            "checkout-5xx",
            &PatchParams::default(),
            &Patch::Merge(patch("Acknowledged")),
        )
        .await
        .expect("acknowledge");
    incidents
        .patch(
            "checkout-5xx",
            &PatchParams::default(),
            &Patch::Merge(patch("Resolved")),
        )
        .await
        .expect("resolve");
    let done = wait_for(
        &client,
        &ns,
        "checkout-5xx",
        WAIT,
        "both deliveries confirmed",
        |i| {
            let Some(n) = i.status.as_ref().map(|s| &s.notifications) else {
                return false;
            };
            n.len() == 2
                && n.iter().all(|n| {
                    n.state == klaxon::api::incident::DeliveryState::Delivered && n.attempts == 1
                })
        },
    )
    .await;
    let resolved_key = done
        .status
        .iter()
        .flat_map(|s| &s.notifications)
        .find(|n| n.trigger == "Resolved")
        .and_then(|n| n.idempotency_key.clone())
        .expect("the Resolved entry");
    assert!(
        resolved_key.starts_with(&uid) && resolved_key.ends_with(".Resolved.team-webhook"),
        "{resolved_key}"
    );
    let keys: Vec<Option<String>> = receiver
        .requests_to(&token)
        .into_iter()
        .map(|r| r.key)
        .collect();
    assert_eq!(
        keys,
        [Some(key.clone()), Some(resolved_key)],
        "exactly the routed notifications, once each"
    );
    assert!(receiver.requests_to(&slack_token).is_empty());
    assert!(has(&done, "NotificationsDelivered", "True", "Delivered"));

    // Slack gets the incoming-webhook format.
    apply(
        cluster,
        &incident(&ns, "payments-down", "SEV1", "  commander: alice\n"),
    );
    let slack = receiver
        .wait_for(WAIT, "the Slack message", |r| {
            r.iter().any(|r| r.path.ends_with(&slack_token))
        })
        .await;
    let message = slack
        .iter()
        .find(|r| r.path.ends_with(&slack_token))
        .map(|r| r.body.clone())
        .expect("slack request");
    // Block Kit, with the plain text kept as the fallback.
    let fields: Vec<&String> = message.as_object().expect("object").keys().collect();
    assert_eq!(fields, ["blocks", "text"]);
    assert!(
        message["text"]
            .as_str()
            .is_some_and(|t| t.contains("Commander: alice"))
    );

    // The URL is nowhere: not in statuses, Events, or the operator's log.
    let statuses = cluster.kubectl(&["get", "inc", "-n", &ns, "-o", "json"]);
    assert_success(&statuses, "kubectl get inc");
    let events = cluster.kubectl(&["get", "events", "-n", &ns, "-o", "json"]);
    assert_success(&events, "kubectl get events");
    for (what, text) in [
        ("status", stdout(&statuses)),
        ("events", stdout(&events)),
        ("operator log", shared.log_text()),
    ] {
        assert!(
            !text.contains(&token),
            "the receiver URL leaked into the {what}"
        );
    }
}

#[tokio::test]
async fn failed_deliveries_retry_with_backoff_then_give_up_with_a_warning() {
    let cluster = support::cluster();
    let shared = operator::shared();
    let client = cluster.client().await;
    let ns = support::namespace(&client, "retry").await;
    let receiver = Receiver::start().await;
    let token = format!("flaky-{ns}");
    let closed = format!("http://127.0.0.1:{}/hooks/down-{ns}", operator::free_port());
    secret(
        &client,
        &ns,
        "hooks",
        &[("flaky", &receiver.url(&token)), ("down", &closed)],
    )
    .await;
    receiver.script(&[500, 500]);
    apply(
        cluster,
        &team_policy(
            &ns,
            r#"  receivers:
    - {name: flaky, webhook: {urlSecretRef: {name: hooks, key: flaky}}}
    - {name: down, webhook: {urlSecretRef: {name: hooks, key: down}}}
  routes:
    - {receivers: [flaky, down], triggers: [Declared]}
"#,
        ),
    );
    apply(cluster, &incident(&ns, "checkout-5xx", "SEV2", ""));
    let settled = wait_for(
        &client,
        &ns,
        "checkout-5xx",
        WAIT,
        "flaky delivered, down failed",
        |i| {
            let Some(n) = i.status.as_ref().map(|s| &s.notifications) else {
                return false;
            };
            let state = |name: &str| {
                n.iter()
                    .find(|n| n.receiver == name)
                    .map(|n| (n.state, n.attempts))
            };
            use klaxon::api::incident::DeliveryState::*;
            state("flaky") == Some((Delivered, 3)) && state("down") == Some((Failed, 4))
        },
    )
    .await;
    let flaky = receiver.requests_to(&token);
    assert_eq!(flaky.len(), 3, "two 500s, then delivered");
    assert!(
        flaky.iter().all(|r| r.key == flaky[0].key),
        "one key for every attempt"
    );
    let down = settled
        .status
        .as_ref()
        .and_then(|s| s.notifications.iter().find(|n| n.receiver == "down"))
        .and_then(|n| n.message.clone())
        .unwrap_or_default();
    assert!(down.contains("cannot connect"), "{down}");
    assert!(
        !down.contains("127.0.0.1"),
        "the URL leaked into the status: {down}"
    );
    assert!(has(
        &settled,
        "NotificationsDelivered",
        "False",
        "DeliveryFailed"
    ));
    let timeline = &settled.status.as_ref().expect("status").timeline;
    assert!(timeline.iter().any(|e| e.type_ == "NotificationFailed"));

    let warning = support::eventually(WAIT, || async {
        let out = cluster.kubectl(&[
            "get",
            "events",
            "-n",
            &ns,
            "--field-selector",
            "type=Warning,reason=NotificationFailed",
            "-o",
            "name",
        ]);
        (!stdout(&out).trim().is_empty()).then_some(())
    })
    .await;
    assert!(warning.is_some(), "no NotificationFailed Warning Event");
    assert!(!shared.log_text().contains(&format!("down-{ns}")));
}

#[tokio::test]
async fn an_unacknowledged_incident_escalates_at_its_deadline_and_an_acknowledged_one_does_not() {
    let cluster = support::cluster();
    operator::shared();
    let client = cluster.client().await;
    let ns = support::namespace(&client, "deadline").await;
    let receiver = Receiver::start().await;
    let (hook, pager) = (format!("hook-{ns}"), format!("pager-{ns}"));
    secret(
        &client,
        &ns,
        "hooks",
        &[
            ("hook", &receiver.url(&hook)),
            ("pager", &receiver.url(&pager)),
        ],
    )
    .await;
    apply(
        cluster,
        &team_policy(
            &ns,
            r#"  severities:
    - {name: SEV2, acknowledgeWithin: 1m}
  receivers:
    - {name: hook, webhook: {urlSecretRef: {name: hooks, key: hook}}}
    - {name: pager, slack: {urlSecretRef: {name: hooks, key: pager}}}
  routes:
    - {receivers: [hook], triggers: [Escalated]}
  escalation: {receivers: [pager]}
"#,
        ),
    );
    apply(cluster, &incident(&ns, "ignored", "SEV2", ""));
    apply(cluster, &incident(&ns, "handled", "SEV2", ""));
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);
    incidents
        .patch(
            "handled",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"phase": "Acknowledged", "commander": "bob"}})),
        )
        .await
        .expect("acknowledge in time");

    let overdue = wait_for(
        &client,
        &ns,
        "ignored",
        DEADLINE_WAIT,
        "AcknowledgementOverdue",
        |i| has(i, "AcknowledgementOverdue", "True", "Overdue"),
    )
    .await;
    let status = overdue.status.as_ref().expect("status");
    assert!(status.timeline.iter().any(|e| e.type_ == "Escalated"));
    receiver
        .wait_for(
            WAIT,
            "the escalation to the pager and the routed hook",
            |r| {
                let to = |t: &str| r.iter().filter(|r| r.path.ends_with(t)).count();
                to(&pager) == 1 && to(&hook) == 1
            },
        )
        .await;
    let hook_body = &receiver.requests_to(&hook)[0].body;
    assert_eq!(hook_body["trigger"], "Escalated");
    assert_eq!(hook_body["incident"]["name"], "ignored");
    let out = cluster.kubectl(&["describe", "inc", "-n", &ns, "ignored"]);
    assert!(stdout(&out).contains("Escalated"), "{}", stdout(&out));
    let warning = cluster.kubectl(&[
        "get",
        "events",
        "-n",
        &ns,
        "--field-selector",
        "type=Warning,reason=Escalated",
        "-o",
        "name",
    ]);
    assert!(
        !stdout(&warning).trim().is_empty(),
        "no Escalated Warning Event"
    );

    // The acknowledged one: its deadline passed too; a note makes the
    // operator look at it again after that, and nothing escalates.
    let by = wait_for(&client, &ns, "handled", WAIT, "its deadline", |i| {
        i.status
            .as_ref()
            .is_some_and(|s| s.acknowledge_by.is_some())
    })
    .await
    .status
    .and_then(|s| s.acknowledge_by)
    .expect("acknowledgeBy");
    let passed = support::eventually(DEADLINE_WAIT, || async {
        (jiff::Timestamp::now() > by.0).then_some(())
    })
    .await;
    assert!(passed.is_some());
    incidents
        .patch(
            "handled",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"notes": [{"author": "bob", "text": "rolled back"}]}})),
        )
        .await
        .expect("note");
    let handled = wait_for(&client, &ns, "handled", WAIT, "the note", |i| {
        i.status.as_ref().and_then(|s| s.observed_notes) == Some(1)
    })
    .await;
    let status = handled.status.as_ref().expect("status");
    assert!(
        status
            .acknowledge_by
            .as_ref()
            .is_some_and(|by| by.0 < jiff::Timestamp::now())
    );
    assert!(status.escalated_at.is_none());
    assert!(!status.timeline.iter().any(|e| e.type_ == "Escalated"));
    assert!(has(
        &handled,
        "AcknowledgementOverdue",
        "False",
        "Acknowledged"
    ));
    assert!(
        receiver
            .requests()
            .iter()
            .all(|r| r.body["incident"]["name"] != "handled"),
        "the acknowledged incident was escalated"
    );
}

#[tokio::test]
async fn a_restart_neither_loses_nor_repeats_a_delivery() {
    // Its own control plane: the shared operator must not deliver too.
    let cluster = Cluster::start_bare("restart");
    cluster.install_crds();
    let client = cluster.client().await;
    let ns = support::namespace(&client, "restart").await;
    let receiver = Receiver::start().await;
    let token = format!("hook-{ns}");
    secret(&client, &ns, "hooks", &[("hook", &receiver.url(&token))]).await;
    apply(
        &cluster,
        &team_policy(
            &ns,
            r#"  receivers:
    - {name: hook, webhook: {urlSecretRef: {name: hooks, key: hook}}}
  routes:
    - {receivers: [hook], triggers: [Declared, Resolved]}
"#,
        ),
    );
    let start = |name: &str| {
        let mut operator = Operator::start(&cluster.kubeconfig, name, operator::SHARED_ENV);
        operator.wait_ready(WAIT);
        operator
    };

    // 1. The operator dies after sending, before it could record delivery.
    receiver.hold_first();
    let mut first = start("restart-1");
    apply(&cluster, &incident(&ns, "checkout-5xx", "SEV2", ""));
    receiver.wait_arrived(WAIT).await;
    first.kill();
    receiver.release();
    let mut second = start("restart-2");
    let delivered = wait_for(
        &client,
        &ns,
        "checkout-5xx",
        WAIT,
        "Declared delivered",
        |i| {
            i.status.as_ref().is_some_and(|s| {
                s.notifications.len() == 1
                    && s.notifications[0].state == klaxon::api::incident::DeliveryState::Delivered
            })
        },
    )
    .await;
    let requests = receiver.requests_to(&token);
    assert_eq!(requests.len(), 2, "resent after the restart");
    assert_eq!(
        requests[0].key, requests[1].key,
        "with the same idempotency key"
    );
    assert_eq!(
        delivered
            .status
            .as_ref()
            .map(|s| s.notifications[0].attempts),
        Some(2)
    );

    // 2. A restart after the delivery was recorded sends nothing again.
    second.terminate(WAIT);
    let mut third = start("restart-3");
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);
    incidents
        .patch(
            "checkout-5xx",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"phase": "Resolved"}})),
        )
        .await
        .expect("resolve");
    wait_for(
        &client,
        &ns,
        "checkout-5xx",
        WAIT,
        "Resolved delivered",
        |i| {
            i.status.as_ref().is_some_and(|s| {
                s.notifications.len() == 2
                    && s.notifications
                        .iter()
                        .all(|n| n.state == klaxon::api::incident::DeliveryState::Delivered)
            })
        },
    )
    .await;
    let mut keys: Vec<String> = receiver
        .requests_to(&token)
        .into_iter()
        .filter_map(|r| r.key)
        .collect();
    assert_eq!(keys.len(), 3, "Declared twice (the crash), Resolved once");
    keys.dedup();
    assert_eq!(keys.len(), 2, "no loss, no duplicate by idempotency key");

    // 3. A deadline that passes while no operator runs still escalates:
    // timers come from the status, not from memory.
    apply(
        &cluster,
        &team_policy(
            &ns,
            r#"  severities:
    - {name: SEV2, acknowledgeWithin: 1m}
  receivers:
    - {name: hook, webhook: {urlSecretRef: {name: hooks, key: hook}}}
  routes:
    - {receivers: [hook], triggers: [Declared, Resolved]}
  escalation: {receivers: [hook]}
"#,
        ),
    );
    apply(&cluster, &incident(&ns, "overnight", "SEV2", ""));
    let by = wait_for(&client, &ns, "overnight", WAIT, "its deadline", |i| {
        i.status
            .as_ref()
            .is_some_and(|s| s.acknowledge_by.is_some())
    })
    .await
    .status
    .and_then(|s| s.acknowledge_by)
    .expect("acknowledgeBy");
    third.terminate(WAIT);
    let passed = support::eventually(DEADLINE_WAIT, || async {
        (jiff::Timestamp::now() > by.0).then_some(())
    })
    .await;
    assert!(passed.is_some());
    let _fourth = start("restart-4");
    wait_for(
        &client,
        &ns,
        "overnight",
        WAIT,
        "the escalation after the restart",
        |i| has(i, "AcknowledgementOverdue", "True", "Overdue"),
    )
    .await;
    receiver
        .wait_for(WAIT, "the escalation notification", |r| {
            r.iter().any(|r| {
                r.body["incident"]["name"] == "overnight" && r.body["trigger"] == "Escalated"
            })
        })
        .await;
}

#[tokio::test]
async fn admission_rejects_an_unknown_severity_at_apply_time() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    let ns = selectable_namespace(&client, "admission").await;
    let other = support::namespace(&client, "admission-free").await;
    apply(cluster, &baseline(&ns));

    // The admission policy picks the new baseline up within moments.
    let rejected = support::eventually(WAIT, || async {
        let out = cluster.kubectl_with_stdin(
            &["apply", "-f", "-"],
            Some(&incident(&ns, "typo", "SEV9", "")),
        );
        (!out.status.success()).then(|| support::stderr(&out))
    })
    .await
    .expect("an unknown severity is rejected at apply time");
    assert!(
        rejected.contains(&format!(
            "spec.severity: SEV9 is not on the severity ladder of ClusterResponsePolicy baseline-{ns} (valid levels: SEV1, SEV2, SEV3)"
        )),
        "{rejected}"
    );
    apply(cluster, &incident(&ns, "fine", "SEV2", ""));
    // Namespaces the baseline does not select keep their own ladders.
    apply(cluster, &incident(&other, "custom", "P1", ""));

    // A severity change to a level off the ladder is rejected too; other
    // changes to an incident whose level left the ladder are not.
    let changed = cluster.kubectl(&[
        "patch",
        "inc",
        "fine",
        "-n",
        &ns,
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"severity":"SEV0"}}"#,
    ]);
    assert!(!changed.status.success(), "severity SEV0 accepted");
    let api: Api<Namespace> = Api::all(client.clone());
    api.patch(
        &other,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"klaxon.dev/policy-test": ns}}})),
    )
    .await
    .expect("label namespace");
    let out = cluster.kubectl(&[
        "patch",
        "inc",
        "custom",
        "-n",
        &other,
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"phase":"Resolved"}}"#,
    ]);
    assert_success(&out, "resolving an incident whose level left the ladder");
    let _ = cluster.kubectl(&["delete", "crp", &format!("baseline-{ns}")]);
}

#[tokio::test]
async fn baseline_receivers_read_their_secret_from_the_operator_namespace() {
    let cluster = support::cluster();
    operator::shared();
    let client = cluster.client().await;
    let ns = selectable_namespace(&client, "org-hooks").await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces
        .get_opt("klaxon-system")
        .await
        .expect("get namespace")
        .is_none()
    {
        let _ = namespaces
            .create(
                &PostParams::default(),
                &Namespace {
                    metadata: ObjectMeta {
                        name: Some("klaxon-system".into()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await;
    }
    let receiver = Receiver::start().await;
    let (org, team) = (format!("org-{ns}"), format!("team-{ns}"));
    let secret_name = format!("org-hooks-{ns}");
    secret(
        &client,
        "klaxon-system",
        &secret_name,
        &[("url", &receiver.url(&org))],
    )
    .await;
    // A team cannot redirect the organisation's notifications with a
    // Secret of the same name in its own namespace.
    secret(&client, &ns, &secret_name, &[("url", &receiver.url(&team))]).await;
    apply(
        cluster,
        &format!(
            r#"
apiVersion: klaxon.dev/v1alpha1
kind: ClusterResponsePolicy
metadata: {{name: org-{ns}}}
spec:
  namespaceSelector: {{matchLabels: {{klaxon.dev/policy-test: {ns}}}}}
  receivers:
    - {{name: commanders, webhook: {{urlSecretRef: {{name: {secret_name}, key: url}}}}}}
  routes:
    - {{receivers: [commanders], triggers: [Declared]}}
"#
        ),
    );
    apply(
        cluster,
        &incident(&ns, "checkout-5xx", "SEV1", "  commander: alice\n"),
    );
    let done = wait_for(
        &client,
        &ns,
        "checkout-5xx",
        WAIT,
        "delivered to the org receiver",
        |i| {
            i.status.as_ref().is_some_and(|s| {
                s.notifications.iter().any(|n| {
                    n.receiver == format!("org-{ns}/commanders")
                        && n.state == klaxon::api::incident::DeliveryState::Delivered
                })
            })
        },
    )
    .await;
    assert_eq!(done.status.as_ref().map(|s| s.notifications.len()), Some(1));
    assert_eq!(receiver.requests_to(&org).len(), 1);
    assert!(receiver.requests_to(&team).is_empty());
    let _ = cluster.kubectl(&["delete", "crp", &format!("org-{ns}")]);
}
