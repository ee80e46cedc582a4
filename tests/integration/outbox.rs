//! The notification outbox on the real control plane: every change that
//! matters pages again under its own key, and writes by others (a
//! responder's ack, a GitOps tool's labels and annotations) landing while a
//! delivery is in flight never make it go out twice.

use std::time::Duration;

use k8s_openapi::{ByteString, api::core::v1::Secret};
use klaxon::api::{Incident, incident::DeliveryState};
use kube::{
    Api, Client,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
};
use serde_json::json;

use crate::support::{
    self,
    fixtures::{apply, more_passes, routed_team, wait_for},
    operator,
    receiver::{Receiver, Request},
};

const WAIT: Duration = Duration::from_secs(60);

/// A namespace whose team policy sends every trigger of every severity to
/// a webhook on `receiver`; returns the namespace and the URL's token.
async fn routed_namespace(client: &Client, receiver: &Receiver, prefix: &str) -> (String, String) {
    routed_team(support::cluster(), client, receiver, prefix, "", |_| {
        String::new()
    })
    .await
}

fn declare(ns: &str, name: &str, severity: &str) -> String {
    format!(
        "apiVersion: klaxon.dev/v1alpha1\nkind: Incident\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{title: Checkout returns 5xx, severity: {severity}}}\n"
    )
}

fn keys(requests: &[Request]) -> Vec<String> {
    requests.iter().filter_map(|r| r.key.clone()).collect()
}

#[tokio::test]
async fn each_severity_raise_and_phase_change_pages_once_under_its_own_key() {
    let cluster = support::cluster();
    let shared = operator::shared();
    let client = cluster.client().await;
    let receiver = Receiver::start().await;
    let (ns, token) = routed_namespace(&client, &receiver, "raise").await;
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);
    apply(cluster, &declare(&ns, "checkout-5xx", "SEV3"));
    wait_for(&client, &ns, "checkout-5xx", WAIT, "the declaration", |i| {
        i.status
            .as_ref()
            .is_some_and(|s| s.observed_severity.as_deref() == Some("SEV3"))
    })
    .await;

    // One change at a time: each is observed before the next lands.
    let steps = [
        ("severity", "SEV2"),
        ("severity", "SEV1"),
        ("phase", "Acknowledged"),
        ("phase", "Mitigated"),
        ("phase", "Resolved"),
    ];
    for (field, value) in steps {
        incidents
            .patch(
                "checkout-5xx",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {field: value}})),
            )
            .await
            .expect("change");
        wait_for(&client, &ns, "checkout-5xx", WAIT, value, |i| {
            i.status.as_ref().is_some_and(|s| {
                s.observed_severity.as_deref() == Some(value)
                    || s.observed_phase.map(|p| p.as_str()) == Some(value)
            })
        })
        .await;
    }
    let done = wait_for(
        &client,
        &ns,
        "checkout-5xx",
        WAIT,
        "every notification delivered",
        |i| {
            i.status.as_ref().is_some_and(|s| {
                s.notifications.len() == 6
                    && s.notifications
                        .iter()
                        .all(|n| n.state == DeliveryState::Delivered)
            })
        },
    )
    .await;
    more_passes(shared.port, &incidents, "checkout-5xx", 10.0).await;

    let uid = done.metadata.uid.clone().expect("uid");
    let sent = receiver.requests_to(&token);
    let expected: Vec<String> = [
        "1.Declared",
        "2.SeverityChanged",
        "3.SeverityChanged",
        "4.PhaseChanged",
        "5.PhaseChanged",
        // The resolution is a phase change too: the receiver, whose route
        // takes every trigger, is paged once, under the more specific one.
        "6.Resolved",
    ]
    .iter()
    .map(|k| format!("{uid}.{k}.hook"))
    .collect();
    let mut got = keys(&sent);
    got.sort();
    assert_eq!(got, expected, "one request per change and route, each once");
    let transitions: Vec<&str> = sent
        .iter()
        .filter_map(|r| r.body["transition"].as_str())
        .collect();
    for text in [
        "SEV3 → SEV2",
        "SEV2 → SEV1",
        "Triggered → Acknowledged",
        "Acknowledged → Mitigated",
        "Mitigated → Resolved",
    ] {
        assert!(transitions.contains(&text), "{text} in {transitions:?}");
    }
    let raise = sent
        .iter()
        .find(|r| r.body["transition"] == "SEV2 → SEV1")
        .expect("the second raise");
    assert!(
        raise.body["text"]
            .as_str()
            .is_some_and(|t| t.contains("severity SEV2 → SEV1")),
        "{}",
        raise.body["text"]
    );
}

#[tokio::test]
async fn writes_by_others_while_a_delivery_is_in_flight_never_cause_a_resend() {
    let cluster = support::cluster();
    let shared = operator::shared();
    let client = cluster.client().await;
    let receiver = Receiver::start().await;
    let (ns, token) = routed_namespace(&client, &receiver, "inflight").await;
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);

    // The receiver holds its answer to the Declared notification until
    // other writers' changes have landed on the incident: between the
    // operator's attempt record and its Delivered record.
    receiver.hold_first();
    apply(cluster, &declare(&ns, "checkout-5xx", "SEV2"));
    receiver.wait_arrived(WAIT).await;
    let before = incidents.get("checkout-5xx").await.expect("incident");
    let attempted = before.status.as_ref().is_some_and(|s| {
        s.notifications
            .iter()
            .any(|n| n.trigger == "Declared" && n.attempts == 1)
    });
    assert!(attempted, "the attempt is on record before it is sent");
    for i in 0..3 {
        // As a GitOps tool writes them.
        incidents
            .patch(
                "checkout-5xx",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {
                    "annotations": {"example.com/sync": i.to_string()},
                    "labels": {"example.com/revision": i.to_string()},
                }})),
            )
            .await
            .expect("annotate");
    }
    // A responder acknowledges meanwhile.
    let acked = incidents
        .patch(
            "checkout-5xx",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"phase": "Acknowledged"}})),
        )
        .await
        .expect("acknowledge");
    let landed = incidents.get("checkout-5xx").await.expect("incident");
    assert_eq!(
        landed.metadata.resource_version, acked.metadata.resource_version,
        "the writes landed before the receiver answers"
    );
    receiver.release();

    let done = wait_for(
        &client,
        &ns,
        "checkout-5xx",
        WAIT,
        "Declared and PhaseChanged delivered",
        |i| {
            i.status.as_ref().is_some_and(|s| {
                s.notifications.len() == 2
                    && s.notifications
                        .iter()
                        .all(|n| n.state == DeliveryState::Delivered)
            })
        },
    )
    .await;
    more_passes(shared.port, &incidents, "checkout-5xx", 10.0).await;

    let status = done.status.as_ref().expect("status");
    let declared = status
        .notifications
        .iter()
        .find(|n| n.trigger == "Declared")
        .expect("Declared entry");
    assert_eq!(declared.attempts, 1, "delivered on the first attempt");
    let sent = keys(&receiver.requests_to(&token));
    let mut unique = sent.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(sent.len(), 2, "one Declared, one PhaseChanged: {sent:?}");
    assert_eq!(unique.len(), 2, "no key twice: {sent:?}");
    let now = incidents.get("checkout-5xx").await.expect("incident");
    let timeline = &now.status.as_ref().expect("status").timeline;
    let declarations = timeline.iter().filter(|e| e.type_ == "Declared").count();
    assert_eq!(declarations, 1, "Declared once in the timeline");
    let confirmations = timeline
        .iter()
        .filter(|e| e.type_ == "Notification")
        .count();
    assert_eq!(confirmations, 2, "each delivery confirmed once");
}

#[tokio::test]
async fn a_policy_whose_receiver_secret_is_missing_says_so_until_it_exists() {
    let cluster = support::cluster();
    operator::shared();
    let client = cluster.client().await;
    let ns = support::namespace(&client, "nosecret").await;
    apply(
        cluster,
        &format!(
            "apiVersion: klaxon.dev/v1alpha1\nkind: ResponsePolicy\nmetadata: {{name: team, namespace: {ns}}}\nspec:\n  receivers:\n    - {{name: hook, webhook: {{urlSecretRef: {{name: hooks, key: hook}}}}}}\n  routes:\n    - {{receivers: [hook]}}\n"
        ),
    );
    let policies: Api<klaxon::api::ResponsePolicy> = Api::namespaced(client.clone(), &ns);
    let ready = |p: &klaxon::api::ResponsePolicy| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    };
    let missing = support::eventually(WAIT, || async {
        let policy = policies.get("team").await.ok()?;
        ready(&policy).filter(|(_, reason, _)| reason == "ReceiverSecretMissing")
    })
    .await
    .expect("Ready=False, reason ReceiverSecretMissing");
    assert_eq!(missing.0, "False");
    assert!(
        missing.2.contains("hook") && missing.2.contains(&format!("Secret {ns}/hooks")),
        "{}",
        missing.2
    );

    // The Secret without the key: still missing, now naming the key.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let mut secret = Secret {
        metadata: ObjectMeta {
            name: Some("hooks".into()),
            ..Default::default()
        },
        data: Some([("other".to_string(), ByteString(b"x".to_vec()))].into()),
        ..Default::default()
    };
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create secret");
    let no_key = support::eventually(WAIT, || async {
        let policy = policies.get("team").await.ok()?;
        ready(&policy).filter(|(_, _, message)| message.contains("has no key hook"))
    })
    .await;
    assert!(no_key.is_some(), "the message names the missing key");

    secret.data = Some(
        [(
            "hook".to_string(),
            ByteString(b"http://127.0.0.1:9/hook".to_vec()),
        )]
        .into(),
    );
    secrets
        .replace("hooks", &PostParams::default(), &secret)
        .await
        .expect("add the key");
    let fixed = support::eventually(WAIT, || async {
        let policy = policies.get("team").await.ok()?;
        ready(&policy).filter(|(status, _, _)| status == "True")
    })
    .await;
    assert!(fixed.is_some(), "Ready once the Secret has its key");
}

#[tokio::test]
async fn a_receiver_url_fixed_in_its_secret_is_used_within_seconds() {
    // Its own operator, with attempts to spare: the shared one gives up
    // after 4 quick attempts, which could all fall before the fix.
    let cluster = &support::Cluster::start_bare("fixurl");
    cluster.install_crds();
    let mut operator = operator::Operator::start(
        &cluster.kubeconfig,
        "fixurl",
        &[
            ("KLAXON_DELIVERY_BACKOFF", "1s"),
            ("KLAXON_DELIVERY_BACKOFF_MAX", "2s"),
            ("KLAXON_DELIVERY_ATTEMPTS", "100"),
        ],
    );
    operator.wait_ready(WAIT);
    let client = cluster.client().await;
    let receiver = Receiver::start().await;
    let (ns, token) =
        routed_team(cluster, &client, &receiver, "fixurl", "", |_| String::new()).await;
    // Point the receiver somewhere nothing listens, as a typo would.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let wrong = format!("http://127.0.0.1:{}/nowhere", operator::free_port());
    let set_url = |url: String| Secret {
        data: Some([("hook".to_string(), ByteString(url.into_bytes()))].into()),
        ..Default::default()
    };
    secrets
        .patch(
            "hooks",
            &PatchParams::default(),
            &Patch::Merge(&set_url(wrong)),
        )
        .await
        .expect("break the URL");
    apply(cluster, &declare(&ns, "checkout-5xx", "SEV2"));
    wait_for(
        &client,
        &ns,
        "checkout-5xx",
        WAIT,
        "a failed attempt",
        |i| {
            i.status.as_ref().is_some_and(|s| {
                s.notifications.iter().any(|n| {
                    n.message
                        .as_deref()
                        .is_some_and(|m| m.contains("cannot connect"))
                })
            })
        },
    )
    .await;
    secrets
        .patch(
            "hooks",
            &PatchParams::default(),
            &Patch::Merge(&set_url(receiver.url(&token))),
        )
        .await
        .expect("fix the URL");
    let fixed = std::time::Instant::now();
    receiver
        .wait_for(WAIT, "the page at the fixed URL", |r| !r.is_empty())
        .await;
    // Reads are cached for 30 s, but one whose receiver failed only for 5 s.
    assert!(
        fixed.elapsed() < Duration::from_secs(15),
        "the fixed URL took {:?}",
        fixed.elapsed()
    );
}
