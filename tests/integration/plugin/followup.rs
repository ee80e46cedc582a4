//! `kubectl incident followup`: a responder adds action items and closes
//! them, after the resolution too, and each change names them.

use std::time::Duration;

use klaxon::api::{
    Incident, Phase,
    incident::{ACTOR_ANNOTATION, ACTOR_GENERATION_ANNOTATION, FollowUp},
};
use kube::Api;

use super::{plugin_env, responder};
use crate::support::{self, fixtures::wait_for, operator, stderr, stdout};

const WAIT: Duration = Duration::from_secs(60);

/// Who the annotations name, if they name the incident's generation.
fn actor(incident: &Incident) -> Option<String> {
    let annotations = incident.metadata.annotations.as_ref()?;
    let generation = incident.metadata.generation?.to_string();
    (annotations.get(ACTOR_GENERATION_ANNOTATION) == Some(&generation))
        .then(|| annotations.get(ACTOR_ANNOTATION).cloned())
        .flatten()
}

#[tokio::test]
async fn responders_add_follow_ups_and_close_them_after_the_resolution() {
    let cluster = support::cluster();
    operator::shared();
    let client = cluster.client().await;
    let ns = support::namespace(&client, "followup").await;
    let kc = &responder(cluster, &ns, "alice");
    let alice = format!("system:serviceaccount:{ns}:alice");
    // Relative due days count from this day (UTC).
    let run = |args: &[&str]| plugin_env(kc, args, &[("KLAXON_NOW", "2026-11-24T14:00:00Z")]);
    let api: Api<Incident> = Api::namespaced(client.clone(), &ns);
    let name = "checkout-5xx";

    let out = run(&[
        "declare",
        name,
        "-n",
        &ns,
        "--title",
        "Checkout returns 5xx",
        "--severity",
        "SEV2",
        "--no-wait",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    let out = run(&[
        "followup",
        name,
        "-n",
        &ns,
        "--title",
        "Canary for the card processor",
        "--owner",
        "bob",
        "--due",
        "2026-12-10",
        "--url",
        "https://tracker.example/PAY-123",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        "incident.klaxon.dev/checkout-5xx follow-up 1 added: Canary for the card processor"
    );
    let out = run(&[
        "followup",
        name,
        "-n",
        &ns,
        "--title",
        "Alert on the 5xx ratio",
        "--due",
        "7d",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("follow-up 2 added"),
        "{}",
        stdout(&out)
    );
    let added = api.get(name).await.expect("incident");
    assert_eq!(
        added.spec.follow_ups,
        [
            FollowUp {
                title: "Canary for the card processor".into(),
                owner: Some("bob".into()),
                url: Some("https://tracker.example/PAY-123".into()),
                due: Some("2026-12-10".into()),
                done: false,
            },
            FollowUp {
                title: "Alert on the 5xx ratio".into(),
                due: Some("2026-12-01".into()),
                ..Default::default()
            },
        ]
    );
    // Who did it, as the apiserver vouched for it, for this generation.
    assert_eq!(actor(&added).as_deref(), Some(alice.as_str()));

    // The list is keyed by title: a second one of a title is refused.
    let again = run(&[
        "followup",
        name,
        "-n",
        &ns,
        "--title",
        "Alert on the 5xx ratio",
        "--owner",
        "carol",
    ]);
    assert!(!again.status.success());
    assert_eq!(
        stderr(&again).trim(),
        format!(
            "kubectl-incident: error: incident {ns}/checkout-5xx: follow-up 2 is already titled \"Alert on the 5xx ratio\"; titles are unique within an incident"
        )
    );
    let bad = run(&[
        "followup",
        name,
        "-n",
        &ns,
        "--title",
        "x",
        "--due",
        "next week",
    ]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("--due \"next week\" is not a date"),
        "{}",
        stderr(&bad)
    );
    assert_eq!(
        api.get(name).await.expect("incident").spec.follow_ups.len(),
        2
    );

    // Resolved is final for the phase, not for the follow-ups.
    let out = run(&["resolve", name, "-n", &ns]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&["followup", name, "-n", &ns, "--done", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        "incident.klaxon.dev/checkout-5xx follow-up 2 done: Alert on the 5xx ratio"
    );
    let closed = api.get(name).await.expect("incident");
    assert_eq!(closed.spec.phase, Phase::Resolved);
    assert!(closed.spec.follow_ups[1].done && !closed.spec.follow_ups[0].done);
    assert_eq!(actor(&closed).as_deref(), Some(alice.as_str()));

    // By its exact title too; closing it again changes nothing.
    let out = run(&[
        "followup",
        name,
        "-n",
        &ns,
        "--done",
        "Canary for the card processor",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let before = api.get(name).await.expect("incident");
    let out = run(&["followup", name, "-n", &ns, "--done", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("follow-up 1 unchanged: it is already done"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        api.get(name).await.expect("incident").metadata.generation,
        before.metadata.generation
    );
    let out = run(&["followup", name, "-n", &ns, "--done", "3"]);
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out).trim(),
        format!(
            "kubectl-incident: error: incident {ns}/checkout-5xx: it has no follow-up 3 (it has 2)"
        )
    );

    // The operator counts them and names who closed the last one.
    let done = wait_for(
        &client,
        &ns,
        name,
        WAIT,
        "both follow-ups counted done",
        |i| {
            i.status
                .as_ref()
                .and_then(|s| s.follow_ups.as_ref())
                .is_some_and(|c| c.done == 2 && c.open == 0)
        },
    )
    .await;
    let timeline = &done.status.as_ref().expect("status").timeline;
    assert!(
        timeline.iter().any(|e| e.type_ == "FollowUp"
            && e.message == format!("Follow-up done by {alice}: Canary for the card processor")),
        "{timeline:#?}"
    );
}
