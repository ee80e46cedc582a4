//! The chart, installed by the real Helm, is all the operator needs for
//! everything it does, not only enrichment (of Deployments and
//! StatefulSets, with their ControllerRevisions, nodes and container
//! logs): policy status, signals,
//! deliveries, escalation, auto-resolution and leader election. The
//! operator runs with the args and env of the release's Deployment, under
//! a token of the release's ServiceAccount, bound to exactly the rules the
//! chart rendered. The apiserver's audit log is the judge: no request of
//! the operator's may have been refused.

use std::time::Duration;

use k8s_openapi::api::{
    apps::v1::Deployment,
    coordination::v1::Lease,
    core::v1::{Namespace, Pod},
};
use klaxon::api::{ClusterResponsePolicy, Incident, Phase, ResponsePolicy};
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams},
};
use serde_json::json;

use crate::support::{
    self, Cluster, audit, chart,
    fixtures::{self, apply, reason_count, secret, wait_for},
    receiver::{Receiver, Request},
    stdout,
};

const WAIT: Duration = Duration::from_secs(60);
/// Long enough for the shortest deadline the schema allows (1m) to pass.
const DEADLINE_WAIT: Duration = Duration::from_secs(150);

/// `edit` and `admin` may drive Incidents and ResponsePolicies in their
/// namespace, `view` may read them, and neither touches the cluster-wide
/// baseline: the chart's roles aggregated into the built-in ones (by the
/// controller-manager's aggregation controller), checked by impersonation.
async fn teams_use_the_built_in_roles(cluster: &Cluster, team: &str) {
    for (user, role) in [("dev", "edit"), ("lead", "admin"), ("viewer", "view")] {
        let out = cluster.kubectl(&[
            "create",
            "rolebinding",
            &format!("{user}-{role}"),
            &format!("--clusterrole={role}"),
            &format!("--user={user}"),
            "-n",
            team,
        ]);
        support::assert_success(&out, "bind a built-in role");
    }
    let can = |user: &str, verb: &str, resource: &str| {
        let mut args = vec!["auth", "can-i", verb, "-n", team, "--as", user];
        let subresource;
        match resource.split_once('/') {
            Some((resource, sub)) => {
                subresource = format!("--subresource={sub}");
                args.extend([resource, subresource.as_str()]);
            }
            None => args.push(resource),
        }
        stdout(&cluster.kubectl(&args)).trim() == "yes"
    };
    // Aggregation is asynchronous: wait for the last role to carry ours.
    assert!(
        support::poll_until(WAIT, || (can("dev", "create", "incidents.klaxon.dev")
            && can("lead", "create", "incidents.klaxon.dev")
            && can("viewer", "list", "incidents.klaxon.dev"))
        .then_some(()))
        .is_some(),
        "the chart's roles never aggregated into edit, admin and view"
    );
    let expected = [
        ("dev", "create", "incidents.klaxon.dev", true),
        ("dev", "patch", "incidents.klaxon.dev", true),
        ("dev", "delete", "incidents.klaxon.dev", true),
        ("dev", "update", "responsepolicies.klaxon.dev", true),
        ("dev", "create", "clusterresponsepolicies.klaxon.dev", false),
        ("dev", "patch", "incidents.klaxon.dev/status", false),
        ("lead", "delete", "responsepolicies.klaxon.dev", true),
        (
            "lead",
            "create",
            "clusterresponsepolicies.klaxon.dev",
            false,
        ),
        ("viewer", "get", "incidents.klaxon.dev", true),
        ("viewer", "watch", "responsepolicies.klaxon.dev", true),
        ("viewer", "create", "incidents.klaxon.dev", false),
        ("viewer", "patch", "incidents.klaxon.dev", false),
        (
            "viewer",
            "list",
            "clusterresponsepolicies.klaxon.dev",
            false,
        ),
    ];
    let wrong: Vec<String> = expected
        .iter()
        .filter(|(user, verb, resource, allowed)| can(user, verb, resource) != *allowed)
        .map(|(user, verb, resource, allowed)| {
            format!("{user} {verb} {resource}: expected allowed={allowed}")
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // And for real, as the apiserver answers them.
    let incident = format!(
        "apiVersion: klaxon.dev/v1alpha1\nkind: Incident\nmetadata: {{name: by-dev, namespace: {team}}}\nspec: {{title: Declared by a team member, severity: SEV3}}\n"
    );
    let out = cluster.kubectl_with_stdin(&["--as", "dev", "apply", "-f", "-"], Some(&incident));
    support::assert_success(&out, "edit declares an incident");
    let out = cluster.kubectl(&["--as", "viewer", "get", "inc", "by-dev", "-n", team]);
    support::assert_success(&out, "view reads it");
    let out = cluster.kubectl(&["--as", "viewer", "delete", "inc", "by-dev", "-n", team]);
    assert!(
        !out.status.success() && support::stderr(&out).contains("forbidden"),
        "view deleted an incident: {}",
        support::stderr(&out)
    );
    let out = cluster.kubectl(&["--as", "dev", "delete", "inc", "by-dev", "-n", team]);
    support::assert_success(&out, "edit deletes it");
}

/// Waits until the policy's `Ready` condition is `True` for its current
/// generation (the operator wrote its status).
async fn wait_ready<K>(
    api: &Api<K>,
    name: &str,
    status: impl Fn(&K) -> Option<&klaxon::api::PolicyStatus>,
) where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let found = support::eventually(WAIT, || async {
        let policy = api.get(name).await.ok()?;
        let s = status(&policy)?;
        let ready = s.conditions.iter().find(|c| c.type_ == "Ready")?;
        (ready.status == "True" && s.observed_generation == policy.meta().generation).then_some(())
    })
    .await;
    assert!(
        found.is_some(),
        "{name}: Ready=True not seen; last: {:#?}",
        api.get(name).await.ok()
    );
}

fn to(requests: &[Request], token: &str, trigger: &str, incident: &str) -> usize {
    requests
        .iter()
        .filter(|r| {
            r.path.ends_with(&format!("/{token}"))
                && r.body["trigger"] == trigger
                && r.body["incident"]["name"] == incident
        })
        .count()
}

#[tokio::test]
async fn the_whole_lifecycle_runs_under_exactly_the_charts_rbac() {
    let started = std::time::Instant::now();
    let cluster = Cluster::start("chart-lifecycle");
    cluster.require_nodes();
    cluster.install_crds();
    let client = cluster.client().await;
    let system = support::namespace(&client, "klaxon-system").await;
    let team = support::namespace(&client, "team").await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .patch(
            &team,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"klaxon.dev/policy-test": team}}})),
        )
        .await
        .expect("label the team namespace");
    // Pods of the release must meet the restricted Pod Security Standard.
    let out = cluster.kubectl(&[
        "label",
        "namespace",
        &system,
        "pod-security.kubernetes.io/enforce=restricted",
    ]);
    support::assert_success(&out, "label the release namespace restricted");
    // Fast clocks through the chart's own extraEnv; Secrets narrowed to
    // labelled ones.
    let extra_env = chart::fast_clocks();
    chart::install(
        &cluster,
        "klaxon",
        &system,
        &[
            "--set",
            "receiverSecrets.mode=labelled",
            "--set-json",
            &extra_env,
        ],
    );
    let mut operator =
        chart::start_operator(&cluster, &client, "klaxon", &system, "chart-lifecycle").await;
    operator.wait_ready(WAIT);

    // The release's own pods (simulated by KWOK) were admitted under the
    // restricted Pod Security Standard.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &system);
    let running = support::eventually(WAIT, || async {
        let list = pods
            .list(&ListParams::default().labels("app.kubernetes.io/instance=klaxon"))
            .await
            .ok()?;
        let running = list
            .items
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count();
        (running == 2).then_some(running)
    })
    .await;
    assert_eq!(
        running,
        Some(2),
        "the release's 2 pods were not admitted as restricted; events:\n{}",
        stdout(&cluster.kubectl(&["get", "events", "-n", &system]))
    );

    // A second release elsewhere finds the Lease in kube-system and stands
    // by (ready, doing nothing) while the first works.
    let other = support::namespace(&client, "klaxon-other").await;
    chart::install(&cluster, "klaxon-b", &other, &[]);
    let mut standby =
        chart::start_operator(&cluster, &client, "klaxon-b", &other, "chart-standby").await;
    standby.wait_ready(WAIT);
    assert!(
        support::poll_until(WAIT, || standby
            .log_text()
            .contains("standing by until this instance holds the Lease")
            .then_some(()))
        .is_some(),
        "the second release did not stand by:\n{}",
        standby.log_text()
    );

    teams_use_the_built_in_roles(&cluster, &team).await;

    // Policies: the platform's baseline and the team's own, with a webhook
    // whose URL is in a Secret of the team's namespace, a route on every
    // trigger, an escalation receiver, a signal and auto-resolution.
    let receiver = Receiver::start().await;
    let (hook, pager) = (format!("hook-{team}"), format!("pager-{team}"));
    secret(
        &client,
        &team,
        "hooks",
        &[
            ("hook", &receiver.url(&hook)),
            ("pager", &receiver.url(&pager)),
        ],
    )
    .await;
    let baseline = format!("baseline-{team}");
    apply(
        &cluster,
        &format!(
            r#"
apiVersion: klaxon.dev/v1alpha1
kind: ClusterResponsePolicy
metadata: {{name: {baseline}}}
spec:
  namespaceSelector: {{matchLabels: {{klaxon.dev/policy-test: {team}}}}}
  severities:
    - {{name: SEV1, acknowledgeWithin: 5m}}
    - {{name: SEV2, acknowledgeWithin: 15m}}
    - {{name: SEV3}}
"#
        ),
    );
    apply(
        &cluster,
        &format!(
            r#"
apiVersion: klaxon.dev/v1alpha1
kind: ResponsePolicy
metadata: {{name: team, namespace: {team}}}
spec:
  team: {{name: payments}}
  severities:
    - {{name: SEV2, acknowledgeWithin: 1m, requirePostmortem: true, postmortemWithin: 3s}}
  receivers:
    - {{name: hook, webhook: {{urlSecretRef: {{name: hooks, key: hook}}}}}}
    - {{name: pager, webhook: {{urlSecretRef: {{name: hooks, key: pager}}}}}}
  routes:
    - {{receivers: [hook]}}
  escalation: {{receivers: [pager]}}
  signals:
    - {{type: DeploymentUnavailable, for: 5s, severity: SEV2}}
  autoResolve: {{healthyFor: 5s}}
"#
        ),
    );
    let crps: Api<ClusterResponsePolicy> = Api::all(client.clone());
    wait_ready(&crps, &baseline, |p| p.status.as_ref()).await;
    let rps: Api<ResponsePolicy> = Api::namespaced(client.clone(), &team);
    // The release reads only Secrets labelled for Klaxon: until the label
    // is there, the policy says so, and nothing of the Secret was read.
    let unlabelled = support::eventually(WAIT, || async {
        fixtures::policy_ready(&client, &team, "team")
            .await
            .filter(|c| c.reason == "ReceiverSecretMissing")
            .map(|c| c.message)
    })
    .await
    .expect("the team policy names its unlabelled receiver Secret");
    assert!(
        unlabelled.contains(&format!(
            "Secret {team}/hooks does not exist or is not labelled klaxon.dev/receiver: \"true\""
        )),
        "{unlabelled}"
    );
    let out = cluster.kubectl(&[
        "label",
        "secret",
        "hooks",
        "-n",
        &team,
        "klaxon.dev/receiver=true",
    ]);
    support::assert_success(&out, "label the receivers' Secret");
    wait_ready(&rps, "team", |p| p.status.as_ref()).await;

    // A real rollout whose pods never become ready: unavailable for
    // longer than `for`, Klaxon declares it.
    fixtures::rollout(
        &client,
        &team,
        "web",
        2,
        "web:v1",
        &[("app", "web")],
        &[(fixtures::NEVER_READY, "web:v1")],
    )
    .await;
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &team);
    let auto = support::eventually(WAIT, || async {
        incidents
            .list(&ListParams::default().labels("klaxon.dev/signal"))
            .await
            .ok()?
            .items
            .into_iter()
            .next()
    })
    .await
    .expect("an incident declared from the DeploymentUnavailable signal");
    let auto_name = auto.metadata.name.clone().expect("name");
    assert!(auto_name.starts_with("web-unavailable-"), "{auto_name}");
    assert_eq!(auto.spec.severity, "SEV2");
    receiver
        .wait_for(WAIT, "the auto-declared incident's Declared webhook", |r| {
            to(r, &hook, "Declared", &auto_name) == 1
        })
        .await;

    // A responder's SEV2 that nobody acknowledges escalates after 1m. It
    // names the team's database, a StatefulSet whose pod crash-loops.
    apply(
        &cluster,
        &format!(
            r#"apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db, namespace: {team}}}
spec:
  replicas: 1
  serviceName: db
  selector: {{matchLabels: {{app: db}}}}
  template:
    metadata:
      labels: {{app: db}}
      annotations: {{"{}": "db:v1"}}
    spec: {{containers: [{{name: db, image: "db:v1"}}]}}
"#,
            fixtures::CRASH_LOOP
        ),
    );
    apply(
        &cluster,
        &format!(
            "apiVersion: klaxon.dev/v1alpha1\nkind: Incident\nmetadata: {{name: ignored, namespace: {team}}}\nspec: {{title: Checkout returns 5xx, severity: SEV2, affected: {{statefulSets: [{{name: db}}]}}}}\n"
        ),
    );
    let enriched = wait_for(
        &client,
        &team,
        "ignored",
        WAIT,
        "the StatefulSet's state",
        |i| {
            i.status
                .as_ref()
                .and_then(|s| s.stateful_sets.first())
                .is_some_and(|s| {
                    s.workload.found
                        && s.workload.revision.as_deref() == Some("1")
                        && s.workload.pods.as_ref().is_some_and(|p| {
                            p.reasons.iter().any(|r| r.reason == "CrashLoopBackOff")
                                && p.items
                                    .first()
                                    .and_then(|i| i.log.as_ref())
                                    .is_some_and(|l| l.previous && !l.lines.is_empty())
                        })
                })
        },
    )
    .await;
    let db = &enriched.status.as_ref().expect("status").stateful_sets[0];
    assert_eq!(db.workload.images, ["db:v1"]);
    // The crashed instance's last lines, read through pods/log (the
    // harness's simulated log: see tests/controlplane/components.go).
    let log = db
        .workload
        .pods
        .as_ref()
        .and_then(|p| p.items[0].log.clone())
        .expect("log");
    assert!(
        log.lines
            .iter()
            .any(|l| l.starts_with("panic: simulated crash")),
        "{log:#?}"
    );
    receiver
        .wait_for(WAIT, "the manual incident's Declared webhook", |r| {
            to(r, &hook, "Declared", "ignored") == 1
        })
        .await;
    let declared = wait_for(&client, &team, "ignored", WAIT, "its deadline", |i| {
        i.status
            .as_ref()
            .is_some_and(|s| s.acknowledge_by.is_some())
    })
    .await;
    let status = declared.status.as_ref().expect("status");
    let deadline = status.acknowledge_by.as_ref().expect("acknowledgeBy").0;
    let at = status.declared_at.as_ref().expect("declaredAt").0;
    assert_eq!(deadline.duration_since(at).as_secs(), 60, "the team's 1m");
    receiver
        .wait_for(
            DEADLINE_WAIT,
            "the escalation to the pager and the routed hook",
            |r| {
                to(r, &pager, "Escalated", "ignored") == 1
                    && to(r, &hook, "Escalated", "ignored") == 1
            },
        )
        .await;
    wait_for(
        &client,
        &team,
        "ignored",
        WAIT,
        "AcknowledgementOverdue",
        |i| {
            fixtures::condition(i, "AcknowledgementOverdue")
                .is_some_and(|c| c.status == "True" && c.reason == "Overdue")
                // Overdue is not Ready, and the Overdue column says so.
                && fixtures::condition(i, "Ready").is_some_and(|c| c.status == "False")
                && i.status.as_ref().and_then(|s| s.overdue) == Some(true)
        },
    )
    .await;

    // The Deployment recovers: the operator resolves its incident (a
    // `patch` of the incident's spec, the one spec write it makes).
    let out = cluster.kubectl(&["-n", &team, "set", "image", "deploy/web", "web=web:v2"]);
    support::assert_success(&out, "kubectl set image");
    let resolved = wait_for(&client, &team, &auto_name, WAIT, "auto-resolution", |i| {
        i.spec.phase == Phase::Resolved
            && i.status.as_ref().is_some_and(|s| s.resolved_at.is_some())
    })
    .await;
    let timeline = &resolved.status.as_ref().expect("status").timeline;
    assert!(
        timeline.iter().any(|e| e.type_ == "AutoResolved"),
        "{timeline:#?}"
    );
    receiver
        .wait_for(WAIT, "the Resolved webhook", |r| {
            to(r, &hook, "Resolved", &auto_name) == 1
        })
        .await;

    // The learning record: timed from the signal's start, with the
    // rollout it recovered from; its postmortem falls due 3s after the
    // resolution, and a follow-up added afterwards is already overdue.
    let record = resolved.status.as_ref().expect("status");
    let durations = record.durations.clone().unwrap_or_default();
    assert!(
        durations.to_resolve.is_some() && durations.to_recover.is_some(),
        "{durations:?}"
    );
    assert_eq!(
        record.rollouts.first().map(|r| r.name.as_str()),
        Some("web")
    );
    incidents
        .patch(
            &auto_name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"followUps": [
                {"title": "Readiness probe for web", "owner": "bob", "due": "2026-01-31"}
            ]}})),
        )
        .await
        .expect("add a follow-up");
    receiver
        .wait_for(WAIT, "PostmortemOverdue and FollowUpOverdue", |r| {
            to(r, &hook, "PostmortemOverdue", &auto_name) == 1
                && to(r, &hook, "FollowUpOverdue", &auto_name) == 1
        })
        .await;
    let series = |sample: &str| operator.metric(sample);
    assert_eq!(
        series(
            r#"klaxon_incidents_declared_total{team="payments",severity="SEV2",source="signal"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        series(
            r#"klaxon_incidents_declared_total{team="payments",severity="SEV2",source="manual"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        series(r#"klaxon_deployment_recovery_seconds_count{team="payments"}"#),
        Some(1.0)
    );
    assert_eq!(
        series(r#"klaxon_incidents_open{team="payments",severity="SEV2",phase="Triggered"}"#),
        Some(1.0),
        "the ignored one"
    );
    assert_eq!(
        series(r#"klaxon_follow_ups_overdue{team="payments"}"#),
        Some(1.0)
    );
    assert_eq!(
        series(r#"klaxon_postmortems_overdue{team="payments"}"#),
        Some(1.0)
    );
    // The replica standing by counts nothing: a sum over replicas counts
    // each incident once.
    assert_eq!(
        standby
            .metric(r#"klaxon_incidents_open{team="payments",severity="SEV2",phase="Triggered"}"#),
        None
    );

    // Leader election was in use: the Lease the chart puts in kube-system.
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let lease = leases
        .get_opt("klaxon")
        .await
        .expect("get Lease")
        .expect("the Lease klaxon in kube-system");
    let holder = lease
        .spec
        .and_then(|s| s.holder_identity)
        .unwrap_or_default();
    assert!(!holder.is_empty(), "the Lease has no holder");

    // helm upgrade changes what the operator runs with.
    chart::upgrade(
        &cluster,
        "klaxon",
        &system,
        &["--set", "concurrentReconciles=8"],
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &system);
    let args = deployments
        .get("klaxon")
        .await
        .expect("the release's Deployment")
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|p| p.containers.into_iter().next())
        .and_then(|c| c.args)
        .unwrap_or_default();
    assert!(
        args.contains(&"--concurrent-reconciles=8".to_string())
            && args.contains(&"--receiver-secrets=labelled".to_string()),
        "{args:?}"
    );

    // Nothing was refused: not in the operator's log, not in the audit log.
    let _ = standby.terminate(WAIT);
    let _ = operator.terminate(WAIT);
    let log = operator.log_text();
    assert!(
        !log.contains("forbidden"),
        "the operator hit RBAC denials:\n{log}"
    );
    let audit_log = cluster.dir().join("audit.log");
    audit::wait_until_quiet(&audit_log, Duration::from_secs(1), Duration::from_secs(20)).await;
    let all = audit::operator_requests(&audit_log);
    let account = format!("system:serviceaccount:{system}:klaxon");
    let standby_account = format!("system:serviceaccount:{other}:klaxon-b");
    // The standby only ever looked at the Lease (and discovery).
    let touched: Vec<String> = all
        .iter()
        .filter(|r| r.user == standby_account && r.resource.is_some())
        .filter(|r| !r.is("get", Some("coordination.k8s.io"), "leases"))
        .map(audit::Request::describe)
        .collect();
    assert!(
        touched.is_empty(),
        "the standby did more than watch the Lease:\n{}",
        touched.join("\n")
    );
    let requests: Vec<audit::Request> = all
        .into_iter()
        .filter(|r| r.user != standby_account)
        .collect();
    assert!(
        !requests.is_empty() && requests.iter().all(|r| r.user == account),
        "the operator's requests are not all by {account}"
    );
    let denied: Vec<String> = requests
        .iter()
        .filter(|r| r.code == Some(403))
        .map(audit::Request::describe)
        .collect();
    assert!(
        denied.is_empty(),
        "refused requests:\n{}",
        denied.join("\n")
    );
    let must = [
        (
            "patch",
            Some("klaxon.dev"),
            "incidents",
            "resolving its incident",
        ),
        (
            "create",
            Some("klaxon.dev"),
            "incidents",
            "declaring from a signal",
        ),
        (
            "patch",
            Some("klaxon.dev"),
            "incidents/status",
            "incident status",
        ),
        (
            "patch",
            Some("klaxon.dev"),
            "responsepolicies/status",
            "policy status",
        ),
        (
            "patch",
            Some("klaxon.dev"),
            "clusterresponsepolicies/status",
            "baseline status",
        ),
        ("list", None, "secrets", "receiver URLs, labelled only"),
        ("create", Some("events.k8s.io"), "events", "Events"),
    ];
    for (verb, group, resource, what) in must {
        assert!(
            requests
                .iter()
                .any(|r| r.is(verb, group, resource) && r.code.is_some_and(|c| c < 300)),
            "no successful {verb} {resource} ({what}) in the audit log"
        );
    }
    eprintln!(
        "chart RBAC lifecycle: {} operator requests, none refused; {:.1?} in all",
        requests.len(),
        started.elapsed()
    );
    let _ = cluster.kubectl(&["delete", "crp", &baseline]);
}

/// Enrichment (pods, events, Events on the Incident) under exactly the
/// chart's rules.
#[tokio::test]
async fn the_operator_works_under_the_charts_rbac() {
    let bare = Cluster::start_bare("chart-rbac");
    bare.install_crds();
    let client = bare.client().await;
    let system = support::namespace(&client, "klaxon-system").await;
    chart::install(&bare, "klaxon", &system, &[]);

    let ns = support::namespace(&client, "rbac-enrich").await;
    let deployment = fixtures::deployment(&client, &ns, "api", &[], (2, 1), "1", "api:v1").await;
    let rs = fixtures::replicaset(&client, &deployment, "5f6d7c8b9", "1", "api:v1").await;
    fixtures::pod(
        &client,
        &rs,
        "crash",
        fixtures::crash_loop(3, "Error", "boom"),
    )
    .await;
    fixtures::warning(
        &client,
        &ns,
        "Pod",
        "api-5f6d7c8b9-crash",
        "BackOff",
        "Back-off",
        2,
    )
    .await;
    let mut operator = chart::start_operator(&bare, &client, "klaxon", &system, "chart-rbac").await;
    operator.wait_ready(WAIT);
    fixtures::apply(
        &bare,
        &format!(
            "apiVersion: klaxon.dev/v1alpha1\nkind: Incident\nmetadata: {{name: api-down, namespace: {ns}}}\nspec: {{title: API down, severity: SEV2, affected: {{deployments: [{{name: api}}]}}}}\n"
        ),
    );
    wait_for(
        &client,
        &ns,
        "api-down",
        WAIT,
        "enrichment under the chart's RBAC",
        |i| {
            reason_count(i, "api", "CrashLoopBackOff") == 1
                && i.status
                    .as_ref()
                    .is_some_and(|s| s.events.iter().any(|e| e.reason == "BackOff"))
        },
    )
    .await;
    let described = stdout(&bare.kubectl(&["describe", "inc", "api-down", "-n", &ns]));
    let events_section = described.split("\nEvents:").nth(1).unwrap_or_default();
    assert!(
        events_section.contains("Declared"),
        "the operator could not record Events:\n{described}"
    );
    let log = operator.log_text();
    assert!(
        !log.contains("forbidden"),
        "the operator hit RBAC denials:\n{log}"
    );
}
