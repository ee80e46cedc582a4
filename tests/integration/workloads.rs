//! StatefulSets and DaemonSets as affected workloads, on real components:
//! the StatefulSet and DaemonSet controllers write the pods and their
//! ControllerRevisions, the PersistentVolume controller leaves a claim of
//! a missing StorageClass Pending, the scheduler places pods on KWOK's
//! three nodes, and KWOK fails them as their templates ask.

use std::time::Duration;

use klaxon::api::{
    Incident, Phase,
    incident::{DaemonSetState, StatefulSetState},
};
use kube::{Api, Client, api::ListParams};

use crate::support::{
    self, assert_success,
    fixtures::{CRASH_LOOP, MESSAGE, apply, wait_for},
    operator, stdout,
};

const WAIT: Duration = Duration::from_secs(90);

fn statefulset<'a>(incident: &'a Incident, name: &str) -> Option<&'a StatefulSetState> {
    incident
        .status
        .as_ref()?
        .stateful_sets
        .iter()
        .find(|s| s.workload.name == name)
}

fn daemonset<'a>(incident: &'a Incident, name: &str) -> Option<&'a DaemonSetState> {
    incident
        .status
        .as_ref()?
        .daemon_sets
        .iter()
        .find(|s| s.workload.name == name)
}

async fn on_nodes(prefix: &str) -> (&'static support::Cluster, Client, String) {
    let cluster = support::cluster();
    cluster.require_nodes();
    operator::shared();
    let client = cluster.client().await;
    let ns = support::namespace(&client, prefix).await;
    (cluster, client, ns)
}

/// A StatefulSet of `replicas` running `image`, crash-looping on `bad`,
/// with a claim template of `storage_class` when one is given.
fn ledger(
    ns: &str,
    name: &str,
    replicas: i32,
    image: &str,
    bad: &str,
    storage: Option<&str>,
) -> String {
    let claims = storage
        .map(|class| {
            format!(
                "  volumeClaimTemplates:\n  - metadata: {{name: data}}\n    spec: {{accessModes: [ReadWriteOnce], storageClassName: {class}, resources: {{requests: {{storage: 1Gi}}}}}}\n"
            )
        })
        .unwrap_or_default();
    format!(
        r#"apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: {name}, namespace: {ns}, labels: {{tier: payments}}}}
spec:
  replicas: {replicas}
  serviceName: {name}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata:
      labels: {{app: {name}}}
      annotations: {{"{CRASH_LOOP}": "{bad}", "{MESSAGE}": "FATAL: could not open WAL segment"}}
    spec:
      containers:
      - name: db
        image: {image}
{claims}"#
    )
}

fn rollout_status(cluster: &support::Cluster, ns: &str, what: &str) {
    let out = cluster.kubectl(&["-n", ns, "rollout", "status", what, "--timeout=90s"]);
    assert_success(&out, &format!("kubectl rollout status {what}"));
}

fn set_image(cluster: &support::Cluster, ns: &str, what: &str, image: &str) {
    let out = cluster.kubectl(&["-n", ns, "set", "image", what, image]);
    assert_success(&out, "kubectl set image");
}

fn declare(cluster: &support::Cluster, ns: &str, name: &str, affected: &str) {
    apply(
        cluster,
        &format!(
            "apiVersion: klaxon.dev/v1alpha1\nkind: Incident\nmetadata: {{name: {name}, namespace: {ns}}}\n\
             spec:\n  title: {name}\n  severity: SEV2\n  affected: {affected}\n"
        ),
    );
}

/// ledger-db runs v1 on two pods; `kubectl set image` rolls it to v2,
/// which crash-loops. The StatefulSet controller updates the highest
/// ordinal first and stops there: the incident shows the two revisions
/// the controller wrote, the images v2 replaced, and the failing pod.
#[tokio::test]
async fn a_statefulset_rollout_shows_its_revisions_and_what_it_replaced() {
    let (cluster, client, ns) = on_nodes("sts-rollout").await;
    apply(
        cluster,
        &ledger(
            &ns,
            "ledger-db",
            2,
            "shop/ledger:v1",
            "shop/ledger:v2",
            None,
        ),
    );
    rollout_status(cluster, &ns, "statefulset/ledger-db");
    declare(
        cluster,
        &ns,
        "ledger",
        "{statefulSets: [{selector: {matchLabels: {tier: payments}}}]}",
    );
    set_image(cluster, &ns, "statefulset/ledger-db", "db=shop/ledger:v2");

    let incident = wait_for(
        &client,
        &ns,
        "ledger",
        WAIT,
        "the StatefulSet's stuck rollout",
        |i| {
            statefulset(i, "ledger-db").is_some_and(|s| {
                s.workload.revision.as_deref() == Some("2")
                    && s.current_revision.is_some()
                    && s.current_revision != s.update_revision
                    && s.workload
                        .pods
                        .as_ref()
                        .is_some_and(|p| p.reasons.iter().any(|r| r.reason == "CrashLoopBackOff"))
            })
        },
    )
    .await;
    let set = statefulset(&incident, "ledger-db").expect("ledger-db");
    assert!(set.workload.found);
    assert_eq!(set.workload.images, ["shop/ledger:v2"]);
    assert_eq!(set.workload.previous_images, ["shop/ledger:v1"]);
    assert!(set.workload.rollout_at.is_some());
    assert_eq!(set.workload.replicas, Some(2));
    // The names are the ControllerRevisions the controller wrote.
    let revisions: Api<k8s_openapi::api::apps::v1::ControllerRevision> =
        Api::namespaced(client.clone(), &ns);
    let written: Vec<String> = revisions
        .list(&ListParams::default())
        .await
        .expect("list revisions")
        .items
        .into_iter()
        .filter_map(|r| r.metadata.name)
        .collect();
    for name in [&set.current_revision, &set.update_revision] {
        let name = name.as_deref().expect("revision name");
        assert!(
            written.iter().any(|w| w == name),
            "{name} not in {written:?}"
        );
    }
    let pods = set.workload.pods.as_ref().expect("pods");
    let failing = pods.items.first().expect("pods listed");
    assert_eq!(
        failing.name, "ledger-db-1",
        "the highest ordinal is updated first"
    );
    assert_eq!(
        failing.message.as_deref(),
        Some("FATAL: could not open WAL segment")
    );
    let status = incident.status.as_ref().expect("status");
    let summary = status.summary.as_deref().unwrap_or_default();
    assert!(
        summary.starts_with("statefulset/ledger-db 1/2 ready"),
        "{summary}"
    );
    assert!(
        status.timeline.iter().any(|e| e.type_ == "Rollout"
            && e.message
                .starts_with("statefulset/ledger-db rolled out revision 2")),
        "{:#?}",
        status.timeline
    );
    let brief = status.brief.as_ref().expect("brief");
    assert!(
        brief.workloads.iter().any(|l| l.contains("updating ")),
        "{brief:#?}"
    );
    let out = cluster.kubectl(&["describe", "inc", "ledger", "-n", &ns]);
    assert_success(&out, "kubectl describe inc");
    let described = stdout(&out);
    for text in ["Stateful Sets", "shop/ledger:v1", "Update Revision"] {
        assert!(
            described.contains(text),
            "describe lacks {text}:\n{described}"
        );
    }
}

/// vault asks for a StorageClass the cluster does not have: the claim the
/// StatefulSet controller creates stays Pending, the PersistentVolume
/// controller says why, and the pod cannot be scheduled.
#[tokio::test]
async fn a_statefulset_claim_of_a_missing_storage_class_is_shown_unbound() {
    let (cluster, client, ns) = on_nodes("sts-claim").await;
    apply(
        cluster,
        &ledger(&ns, "vault", 1, "shop/vault:v1", "none", Some("fast-ssd")),
    );
    declare(
        cluster,
        &ns,
        "vault-down",
        "{statefulSets: [{name: vault}]}",
    );
    let incident = wait_for(
        &client,
        &ns,
        "vault-down",
        WAIT,
        "the unbound claim and the unschedulable pod",
        |i| {
            statefulset(i, "vault").is_some_and(|s| {
                !s.claims.is_empty()
                    && s.workload
                        .pods
                        .as_ref()
                        .is_some_and(|p| p.reasons.iter().any(|r| r.reason == "Unschedulable"))
            })
        },
    )
    .await;
    let set = statefulset(&incident, "vault").expect("vault");
    assert_eq!(set.claims.len(), 1, "{:#?}", set.claims);
    let claim = &set.claims[0];
    assert_eq!(claim.name, "data-vault-0");
    assert_eq!(claim.phase.as_deref(), Some("Pending"));
    assert_eq!(claim.storage_class.as_deref(), Some("fast-ssd"));
    let status = incident.status.as_ref().expect("status");
    assert!(
        status
            .summary
            .as_deref()
            .unwrap_or_default()
            .contains("1 unbound claim"),
        "{:?}",
        status.summary
    );
    // The PersistentVolume controller's Warning about the claim.
    let warned = wait_for(
        &client,
        &ns,
        "vault-down",
        WAIT,
        "ProvisioningFailed",
        |i| {
            i.status.as_ref().is_some_and(|s| {
                s.events.iter().any(|e| {
                    e.object == "PersistentVolumeClaim/data-vault-0"
                        && e.reason == "ProvisioningFailed"
                })
            })
        },
    )
    .await;
    let event = warned
        .status
        .as_ref()
        .and_then(|s| s.events.iter().find(|e| e.reason == "ProvisioningFailed"))
        .expect("event");
    assert!(event.message.contains("fast-ssd"), "{event:#?}");
}

/// node-agent runs on all three nodes; rolled to a crash-looping image,
/// the DaemonSet controller replaces one node's pod at a time and stops
/// after the first: the incident names that node, and only it.
#[tokio::test]
async fn a_daemonset_names_the_nodes_whose_pods_fail() {
    let (cluster, client, ns) = on_nodes("ds").await;
    apply(
        cluster,
        &format!(
            r#"apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: node-agent, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: node-agent}}}}
  template:
    metadata:
      labels: {{app: node-agent}}
      annotations: {{"{CRASH_LOOP}": "shop/agent:v2"}}
    spec:
      containers:
      - name: agent
        image: shop/agent:v1
"#
        ),
    );
    rollout_status(cluster, &ns, "daemonset/node-agent");
    declare(
        cluster,
        &ns,
        "agents",
        "{daemonSets: [{selector: {matchLabels: {}}}]}",
    );
    let healthy = wait_for(&client, &ns, "agents", WAIT, "three nodes", |i| {
        daemonset(i, "node-agent").is_some_and(|d| {
            d.desired_number_scheduled == Some(3) && d.workload.ready_replicas == Some(3)
        })
    })
    .await;
    assert!(
        daemonset(&healthy, "node-agent")
            .expect("node-agent")
            .failing_nodes
            .is_empty()
    );
    set_image(cluster, &ns, "daemonset/node-agent", "agent=shop/agent:v2");
    let incident = wait_for(&client, &ns, "agents", WAIT, "one failing node", |i| {
        daemonset(i, "node-agent").is_some_and(|d| {
            d.failing_nodes.len() == 1
                && d.workload.revision.as_deref() == Some("2")
                && d.workload
                    .pods
                    .as_ref()
                    .is_some_and(|p| p.reasons.iter().any(|r| r.reason == "CrashLoopBackOff"))
        })
    })
    .await;
    let set = daemonset(&incident, "node-agent").expect("node-agent");
    assert_eq!(set.workload.previous_images, ["shop/agent:v1"]);
    assert_eq!(set.workload.images, ["shop/agent:v2"]);
    assert_eq!(set.number_misscheduled, Some(0));
    // The node named is the one whose pod crash-loops.
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), &ns);
    let failing: Vec<String> = pods
        .list(&ListParams::default())
        .await
        .expect("pods")
        .items
        .into_iter()
        .filter(|p| {
            p.spec
                .as_ref()
                .is_some_and(|s| s.containers[0].image.as_deref() == Some("shop/agent:v2"))
        })
        .filter_map(|p| p.spec?.node_name)
        .collect();
    assert_eq!(set.failing_nodes, failing);
}

/// A team's StatefulSetUnavailable signal declares an incident for the
/// StatefulSet; `kubectl rollout undo` and deleting the pod the bad
/// revision left behind (as Kubernetes documents for a stuck StatefulSet
/// rollout) bring health back, and the incident resolves itself.
#[tokio::test]
async fn a_signal_declares_for_a_statefulset_and_resolves_when_it_is_healthy() {
    let (cluster, client, ns) = on_nodes("sts-signal").await;
    apply(
        cluster,
        &format!(
            r#"
apiVersion: klaxon.dev/v1alpha1
kind: ResponsePolicy
metadata: {{name: team, namespace: {ns}}}
spec:
  signals:
    - {{type: StatefulSetUnavailable, for: 5s, severity: SEV2}}
  autoResolve: {{healthyFor: 3s}}
"#
        ),
    );
    apply(
        cluster,
        &ledger(
            &ns,
            "ledger-db",
            2,
            "shop/ledger:v1",
            "shop/ledger:v2",
            None,
        ),
    );
    rollout_status(cluster, &ns, "statefulset/ledger-db");
    set_image(cluster, &ns, "statefulset/ledger-db", "db=shop/ledger:v2");
    let api: Api<Incident> = Api::namespaced(client.clone(), &ns);
    let declared = support::eventually(WAIT, || async {
        api.list(&ListParams::default().labels("klaxon.dev/signal"))
            .await
            .ok()?
            .items
            .into_iter()
            .next()
    })
    .await
    .expect("the StatefulSetUnavailable signal declares an incident");
    let name = declared.metadata.name.clone().expect("name");
    assert!(name.starts_with("ledger-db-unavailable-"), "{name}");
    assert_eq!(declared.spec.title, "statefulset/ledger-db is unavailable");
    let affected = declared.spec.affected.as_ref().expect("affected");
    assert!(affected.deployments.is_empty());
    assert_eq!(affected.stateful_sets[0].name.as_deref(), Some("ledger-db"));
    assert_eq!(
        declared
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("klaxon.dev/statefulset"))
            .map(String::as_str),
        Some("ledger-db")
    );

    let out = cluster.kubectl(&["-n", &ns, "rollout", "undo", "statefulset/ledger-db"]);
    assert_success(&out, "kubectl rollout undo");
    let out = cluster.kubectl(&["-n", &ns, "delete", "pod", "ledger-db-1", "--wait=false"]);
    assert_success(&out, "kubectl delete pod");
    let resolved = wait_for(&client, &ns, &name, WAIT, "auto-resolution", |i| {
        i.spec.phase == Phase::Resolved
            && i.status.as_ref().is_some_and(|s| s.resolved_at.is_some())
    })
    .await;
    let status = resolved.status.as_ref().expect("status");
    assert!(
        status.timeline.iter().any(|e| e.type_ == "AutoResolved"),
        "{:#?}",
        status.timeline
    );
    let set = statefulset(&resolved, "ledger-db").expect("ledger-db");
    assert_eq!(set.workload.ready_replicas, Some(2));
    assert_eq!(set.workload.images, ["shop/ledger:v1"]);
}

/// A node of this test's own, for KWOK to run: tainted so that only the
/// pods of this test land on it (and other tests' DaemonSets leave it
/// out), and deleted when the test ends.
struct OwnNode<'a> {
    cluster: &'a support::Cluster,
    name: String,
}

impl<'a> OwnNode<'a> {
    fn create(cluster: &'a support::Cluster, name: &str) -> OwnNode<'a> {
        apply(
            cluster,
            &format!(
                r#"apiVersion: v1
kind: Node
metadata:
  name: {name}
  labels: {{type: kwok, kubernetes.io/hostname: {name}, klaxon.dev/test-node: {name}}}
  annotations: {{kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}}
spec:
  taints: [{{key: klaxon.dev/test-node, value: {name}, effect: NoSchedule}}]
status:
  capacity: {{cpu: "4", memory: 16Gi, pods: "110"}}
  allocatable: {{cpu: "4", memory: 16Gi, pods: "110"}}
"#
            ),
        );
        OwnNode {
            cluster,
            name: name.to_string(),
        }
    }
}

impl Drop for OwnNode<'_> {
    fn drop(&mut self) {
        let _ = self
            .cluster
            .kubectl(&["delete", "node", &self.name, "--wait=false"]);
    }
}

/// A node under the incident's pods goes NotReady, as its kubelet would
/// report it (through KWOK's stage): the node lifecycle controller taints
/// it NoExecute, and the incident lists the node with its condition,
/// taint and pods, and its NodeNotReady event. Ready again, it leaves the
/// list.
#[tokio::test]
async fn a_node_going_not_ready_under_the_pods_joins_the_incident() {
    let (cluster, client, ns) = on_nodes("node").await;
    let node = OwnNode::create(cluster, &support::unique_name("kwok-test-node"));
    let name = node.name.clone();
    apply(
        cluster,
        &format!(
            r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: api, namespace: {ns}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: api}}}}
  template:
    metadata: {{labels: {{app: api}}}}
    spec:
      nodeSelector: {{klaxon.dev/test-node: {name}}}
      tolerations: [{{key: klaxon.dev/test-node, operator: Exists, effect: NoSchedule}}]
      containers: [{{name: api, image: shop/api:v1}}]
"#
        ),
    );
    rollout_status(cluster, &ns, "deployment/api");
    declare(cluster, &ns, "api-slow", "{deployments: [{name: api}]}");
    let healthy = wait_for(&client, &ns, "api-slow", WAIT, "both pods", |i| {
        i.status.as_ref().is_some_and(|s| {
            s.deployments
                .first()
                .and_then(|d| d.pods.as_ref())
                .is_some_and(|p| p.total == 2)
        })
    })
    .await;
    assert!(healthy.status.as_ref().expect("status").nodes.is_empty());

    let out = cluster.kubectl(&["annotate", "node", &name, "sim.klaxon.dev/not-ready=true"]);
    assert_success(&out, "kubectl annotate node");
    let incident = wait_for(
        &client,
        &ns,
        "api-slow",
        WAIT,
        "the NotReady node, tainted, with its event",
        |i| {
            i.status.as_ref().is_some_and(|s| {
                s.nodes.iter().any(|n| {
                    n.name == name
                        && n.conditions == ["NotReady"]
                        && n.no_execute
                            .iter()
                            .any(|t| t == "node.kubernetes.io/not-ready")
                }) && s
                    .events
                    .iter()
                    .any(|e| e.object == format!("Node/{name}") && e.reason == "NodeNotReady")
            })
        },
    )
    .await;
    let status = incident.status.as_ref().expect("status");
    let bad = &status.nodes[0];
    assert_eq!(bad.pods, 2);
    assert!(bad.since.is_some());
    assert!(
        bad.message
            .as_deref()
            .is_some_and(|m| m.contains("network not ready")),
        "{bad:#?}"
    );
    assert_eq!(status.nodes.len(), 1, "only the node in trouble");
    let summary = status.summary.as_deref().unwrap_or_default();
    assert!(
        summary.contains(&format!("node {name} NotReady")),
        "{summary}"
    );

    let out = cluster.kubectl(&["annotate", "node", &name, "sim.klaxon.dev/not-ready-"]);
    assert_success(&out, "kubectl annotate node");
    wait_for(
        &client,
        &ns,
        "api-slow",
        WAIT,
        "the node Ready again",
        |i| i.status.as_ref().is_some_and(|s| s.nodes.is_empty()),
    )
    .await;
    drop(node);
}

/// What the simulated containers wrote (see `writeContainerLogs` in the
/// harness): the crashed instance's lines carry secrets a careless
/// service logs. Every container in the cluster serves these lines, and
/// only this test reads them.
fn write_logs(cluster: &support::Cluster) {
    let dir = cluster.dir().join("logs");
    std::fs::create_dir_all(&dir).expect("logs directory");
    let lines = |lines: &[&str]| -> String {
        lines
            .iter()
            .enumerate()
            .map(|(i, line)| format!("2026-12-04T10:00:0{i}.000000000Z stderr F {line}\n"))
            .collect()
    };
    std::fs::write(
        dir.join("previous.log"),
        lines(&[
            "starting checkout v42",
            "connecting to postgres://checkout:Planted-S3cret@ledger-db:5432/ledger",
            "calling cards with Authorization: Bearer planted-token-0123456789abcdef",
            "panic: card processor: nil map",
        ]),
    )
    .expect("write previous.log");
    std::fs::write(dir.join("current.log"), lines(&["starting checkout v42"]))
        .expect("write current.log");
}

/// A crash-looping pod's last lines, as the kubelet (KWOK here) serves
/// `kubectl logs --previous`: in the incident, with the planted secrets
/// redacted, read once per restart of the container (the audit log counts
/// the reads), however many passes the incident gets.
#[tokio::test]
async fn the_crashed_containers_last_lines_are_kept_redacted_and_read_once_per_restart() {
    let (cluster, client, ns) = on_nodes("logs").await;
    write_logs(cluster);
    crate::support::fixtures::rollout(
        &client,
        &ns,
        "checkout",
        1,
        "shop/checkout:v42",
        &[],
        &[(CRASH_LOOP, "*")],
    )
    .await;
    declare(cluster, &ns, "crash", "{deployments: [{name: checkout}]}");
    let excerpt = |i: &Incident| {
        i.status
            .as_ref()?
            .deployments
            .first()?
            .pods
            .as_ref()?
            .items
            .first()?
            .log
            .clone()
    };
    let first = wait_for(
        &client,
        &ns,
        "crash",
        WAIT,
        "the crashed instance's lines",
        |i| excerpt(i).is_some_and(|l| l.previous && l.lines.len() == 4),
    )
    .await;
    let log = excerpt(&first).expect("excerpt");
    assert_eq!(log.container, "checkout");
    assert!(log.restart_count >= 1, "{log:#?}");
    assert_eq!(
        log.lines,
        [
            "starting checkout v42",
            "connecting to postgres://checkout:[redacted]@ledger-db:5432/ledger",
            "calling cards with Authorization: Bearer [redacted]",
            "panic: card processor: nil map",
        ]
    );
    assert!(log.fetched_at.is_some() && log.error.is_none());

    // Two more restarts, each read once.
    let later = wait_for(&client, &ns, "crash", WAIT, "two restarts later", |i| {
        excerpt(i).is_some_and(|l| l.restart_count >= log.restart_count + 2)
    })
    .await;
    let serialized = serde_json::to_string(&later.status).expect("json");
    for secret in ["Planted-S3cret", "planted-token"] {
        assert!(!serialized.contains(secret), "{secret} reached the status");
    }
    let pod = later
        .status
        .as_ref()
        .and_then(|s| s.deployments.first())
        .and_then(|d| d.pods.as_ref())
        .and_then(|p| p.items.first())
        .map(|p| p.name.clone())
        .expect("pod");
    let restarts = excerpt(&later).expect("excerpt").restart_count;
    let audit = cluster.dir().join("audit.log");
    let reads = || {
        crate::support::audit::operator_requests(&audit)
            .into_iter()
            .filter(|r| {
                r.is("get", None, "pods/log")
                    && r.in_namespace(&ns)
                    && r.name.as_deref() == Some(pod.as_str())
            })
            .count()
    };
    // The audit log is written in batches: wait until it shows the read
    // of the instance the status names.
    let counted = support::eventually(WAIT, || async {
        let n = reads();
        (n >= 3).then_some(n)
    })
    .await
    .expect("the reads are in the audit log");
    // Each read is of one instance, so there are at most as many as the
    // container restarted; a read per pass would be several per restart
    // (each restart changes the pod three times, and each change is a pass).
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), &ns);
    let now = pods.get(&pod).await.expect("pod");
    let restarted = now
        .status
        .and_then(|s| s.container_statuses)
        .and_then(|c| c.first().map(|c| c.restart_count))
        .expect("restart count");
    assert!(restarted >= restarts);
    assert!(
        counted <= usize::try_from(restarted).expect("restarts"),
        "{counted} reads of {pod}'s log for {restarted} restarts"
    );

    // Resolved, the record keeps the lines, and they stay as they were
    // however often the container restarts after.
    let out = cluster.kubectl(&[
        "-n",
        &ns,
        "patch",
        "incident",
        "crash",
        "--type=merge",
        "-p",
        r#"{"spec":{"phase":"Resolved"}}"#,
    ]);
    assert_success(&out, "resolve");
    let resolved = wait_for(&client, &ns, "crash", WAIT, "the resolution", |i| {
        i.status.as_ref().is_some_and(|s| s.resolved_at.is_some())
    })
    .await;
    let record = resolved.status.as_ref().expect("status").logs.clone();
    assert_eq!(record.len(), 1, "{record:#?}");
    assert_eq!(
        (record[0].workload.as_str(), record[0].pod.as_str()),
        ("checkout", pod.as_str())
    );
    assert_eq!(record[0].log.lines[3], "panic: card processor: nil map");
    let frozen_at = restarted;
    support::eventually(WAIT, || async {
        let now = pods.get(&pod).await.ok()?;
        let r = now.status?.container_statuses?.first()?.restart_count;
        (r >= frozen_at + 2).then_some(())
    })
    .await
    .expect("the container restarts on");
    let api: Api<Incident> = Api::namespaced(client.clone(), &ns);
    let after = api.get("crash").await.expect("incident");
    assert_eq!(
        after.status.as_ref().map(|s| &s.logs),
        Some(&record),
        "frozen at resolution"
    );
    assert_eq!(excerpt(&after), excerpt(&resolved));
}
