//! Leader election: of several operators, only the one holding the Lease
//! works; when it dies, a standby takes over; a clean stop hands over at once.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

use crate::support::{
    self, Cluster,
    fixtures::{apply, wait_for},
    operator::Operator,
    receiver::Receiver,
};

const WAIT: Duration = Duration::from_secs(60);

async fn holder(api: &Api<Lease>) -> Option<String> {
    api.get_opt("klaxon")
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty())
}

async fn wait_holder(api: &Api<Lease>, want: Option<&str>) {
    let found = support::eventually(WAIT, || async {
        (holder(api).await.as_deref() == want).then_some(())
    })
    .await;
    assert!(
        found.is_some(),
        "Lease holder never became {want:?}; it is {:?}",
        holder(api).await
    );
}

fn incident(ns: &str, name: &str) -> String {
    format!(
        "apiVersion: klaxon.dev/v1alpha1\nkind: Incident\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{title: Checkout down, severity: SEV2}}\n"
    )
}

#[tokio::test]
async fn only_the_lease_holder_works_and_a_standby_takes_over() {
    // Its own control plane: the shared operator must not work here.
    let cluster = Cluster::start_bare("leader");
    cluster.install_crds();
    let client = cluster.client().await;
    let ns = support::namespace(&client, "leader").await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let receiver = Receiver::start().await;
    let token = format!("hook-{ns}");
    let url = receiver.url(&token);
    apply(
        &cluster,
        &format!(
            r#"
apiVersion: v1
kind: Secret
metadata: {{name: hooks, namespace: {ns}}}
stringData: {{url: "{url}"}}
---
apiVersion: klaxon.dev/v1alpha1
kind: ResponsePolicy
metadata: {{name: team, namespace: {ns}}}
spec:
  receivers: [{{name: hook, webhook: {{urlSecretRef: {{name: hooks, key: url}}}}}}]
  routes: [{{receivers: [hook], triggers: [Declared]}}]
"#
        ),
    );
    let start = |identity: &str| {
        let mut operator = Operator::start(
            &cluster.kubeconfig,
            identity,
            &[
                ("KLAXON_LEADER_ELECTION", "true"),
                ("KLAXON_LEADER_ELECTION_LEASE", "3s"),
                ("KLAXON_NAMESPACE", ns.as_str()),
                ("POD_NAME", identity),
            ],
        );
        operator.wait_ready(WAIT);
        operator
    };

    let mut a = start("klaxon-a");
    wait_holder(&leases, Some("klaxon-a")).await;
    let mut b = start("klaxon-b");
    assert!(b.log_text().contains("standing by"), "{}", b.log_text());

    apply(&cluster, &incident(&ns, "first"));
    wait_for(&client, &ns, "first", WAIT, "delivered", |i| {
        i.status.as_ref().is_some_and(|s| {
            s.notifications
                .iter()
                .any(|n| n.state == klaxon::api::incident::DeliveryState::Delivered)
        })
    })
    .await;
    assert_eq!(
        receiver.requests_to(&token).len(),
        1,
        "one operator delivered, once"
    );
    assert!(
        !b.log_text().contains("holding the Lease"),
        "the standby worked too"
    );

    // The leader dies without releasing: the standby takes over.
    a.kill();
    wait_holder(&leases, Some("klaxon-b")).await;
    apply(&cluster, &incident(&ns, "second"));
    receiver
        .wait_for(WAIT, "the second incident's notification", |r| {
            r.iter().any(|r| r.body["incident"]["name"] == "second")
        })
        .await;
    assert_eq!(receiver.requests_to(&token).len(), 2);

    // A clean stop releases the Lease at once.
    let status = b.terminate(WAIT).expect("the operator stops on SIGTERM");
    assert!(status.success(), "{status}");
    wait_holder(&leases, None).await;
}
