//! The Helm chart, checked by the real Helm: it lints, it renders what each
//! value promises, its schema refuses a bad value with a message, and its
//! CRDs upgrade over a running release the way the README says.
//! (`chart_rbac.rs` installs it and runs the operator under it.)

use std::{path::Path, time::Duration};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use serde_json::Value;

use crate::support::{
    self, Cluster, assert_success,
    chart::{self, find, helm, template},
    fixtures::{self, wait_for},
    stderr,
};

const WAIT: Duration = Duration::from_secs(60);

fn container(objects: &[Value]) -> &Value {
    &find(objects, "Deployment", "klaxon").expect("the Deployment")["spec"]["template"]["spec"]["containers"]
        [0]
}

fn env<'a>(objects: &'a [Value], name: &str) -> Option<&'a Value> {
    container(objects)["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
}

#[test]
fn the_chart_lints_and_renders_what_its_values_promise() {
    let dir = chart::chart_dir();
    let out = helm(
        None,
        &["lint", "--strict", dir.to_str().expect("utf-8 path")],
    );
    assert_success(&out, "helm lint --strict");

    // The defaults: one operator per cluster (the Lease in kube-system),
    // teams through the built-in roles, a PDB, a restricted pod.
    let defaults = template(&[]);
    for (kind, name) in [
        ("ServiceAccount", "klaxon"),
        ("ClusterRole", "klaxon"),
        ("ClusterRoleBinding", "klaxon"),
        ("ClusterRole", "klaxon-edit"),
        ("ClusterRole", "klaxon-view"),
        ("Role", "klaxon-leader-election"),
        ("RoleBinding", "klaxon-leader-election"),
        ("PodDisruptionBudget", "klaxon"),
        ("Service", "klaxon"),
        ("Deployment", "klaxon"),
    ] {
        assert!(
            find(&defaults, kind, name).is_some(),
            "{kind} {name} missing"
        );
    }
    assert!(find(&defaults, "ServiceMonitor", "klaxon").is_none());
    let role = find(&defaults, "Role", "klaxon-leader-election").expect("Role");
    assert_eq!(role["metadata"]["namespace"], "kube-system");
    assert_eq!(
        env(&defaults, "KLAXON_LEADER_ELECTION").expect("env")["value"],
        "true"
    );
    assert_eq!(
        env(&defaults, "KLAXON_LEADER_ELECTION_NAMESPACE").expect("env")["value"],
        "kube-system"
    );
    let edit = find(&defaults, "ClusterRole", "klaxon-edit").expect("edit");
    assert_eq!(
        edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"],
        "true"
    );
    let view = find(&defaults, "ClusterRole", "klaxon-view").expect("view");
    assert_eq!(
        view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"],
        "true"
    );
    for role in [edit, view] {
        let text = role["rules"].to_string();
        assert!(!text.contains("clusterresponsepolicies"), "{text}");
    }
    let pod =
        &find(&defaults, "Deployment", "klaxon").expect("Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let security = &container(&defaults)["securityContext"];
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"][0], "ALL");
    let secrets = |objects: &[Value]| {
        find(objects, "ClusterRole", "klaxon").expect("ClusterRole")["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .find(|r| r["resources"][0] == "secrets")
            .map(|r| r["verbs"].clone())
    };
    assert_eq!(secrets(&defaults), Some(serde_json::json!(["get"])));

    // Each value does what it says.
    let labelled = template(&["--set", "receiverSecrets.mode=labelled"]);
    assert_eq!(secrets(&labelled), Some(serde_json::json!(["list"])));
    assert!(
        container(&labelled)["args"]
            .as_array()
            .expect("args")
            .contains(&Value::from("--receiver-secrets=labelled"))
    );
    let no_rbac = template(&[
        "--set",
        "rbac.create=false",
        "--set",
        "serviceAccount.create=false",
        "--set",
        "serviceAccount.name=ops",
    ]);
    assert!(
        !no_rbac
            .iter()
            .any(|o| o["kind"].as_str().is_some_and(|k| k.contains("Role")))
    );
    assert!(find(&no_rbac, "ServiceAccount", "ops").is_none());
    assert_eq!(
        find(&no_rbac, "Deployment", "klaxon").expect("Deployment")["spec"]["template"]["spec"]["serviceAccountName"],
        "ops"
    );
    let no_aggregation = template(&["--set", "rbac.aggregateToDefaultRoles=false"]);
    assert!(find(&no_aggregation, "ClusterRole", "klaxon-edit").is_none());
    let single = template(&[
        "--set",
        "leaderElection.enabled=false",
        "--set",
        "replicas=1",
        "--set",
        "podDisruptionBudget.enabled=false",
    ]);
    assert!(find(&single, "Role", "klaxon-leader-election").is_none());
    assert!(find(&single, "PodDisruptionBudget", "klaxon").is_none());
    assert_eq!(
        env(&single, "KLAXON_LEADER_ELECTION").expect("env")["value"],
        "false"
    );
    // Sharded: every replica works on its shards, through the release
    // namespace's Leases, and leader election is off whatever it says.
    let sharded = template(&[
        "--set",
        "shards=4",
        "--set",
        "replicas=3",
        "--set",
        "shardLeaseDuration=5s",
    ]);
    let args = container(&sharded)["args"]
        .as_array()
        .expect("args")
        .clone();
    for arg in ["--shards=4", "--shard-leases", "--shard-lease-duration=5s"] {
        assert!(args.contains(&Value::from(arg)), "{args:?}");
    }
    assert_eq!(
        env(&sharded, "KLAXON_LEADER_ELECTION").expect("env")["value"],
        "false"
    );
    assert_eq!(
        find(&sharded, "Deployment", "klaxon").expect("Deployment")["spec"]["replicas"],
        3
    );
    assert!(find(&sharded, "Role", "klaxon-leader-election").is_none());
    let role = find(&sharded, "Role", "klaxon-shards").expect("the shards' Role");
    assert_eq!(role["metadata"]["namespace"], "klaxon-system");
    let rule = &role["rules"][0];
    assert_eq!(rule["resources"], serde_json::json!(["leases"]));
    assert!(rule.get("resourceNames").is_none(), "pod names change");
    for verb in [
        "create", "get", "list", "watch", "update", "patch", "delete",
    ] {
        assert!(
            rule["verbs"]
                .as_array()
                .is_some_and(|v| v.contains(&Value::from(verb))),
            "{rule}"
        );
    }
    let binding = find(&sharded, "RoleBinding", "klaxon-shards").expect("its binding");
    assert_eq!(binding["subjects"][0]["name"], "klaxon");
    assert!(
        find(&defaults, "Role", "klaxon-shards").is_none(),
        "1 shard by default"
    );
    assert!(
        !container(&defaults)["args"].to_string().contains("--shard"),
        "unsharded by default"
    );
    let local_lease = template(&["--set", "leaderElection.namespace="]);
    assert_eq!(
        find(&local_lease, "Role", "klaxon-leader-election").expect("Role")["metadata"]["namespace"],
        "klaxon-system"
    );
    let extras = template(&[
        "--set",
        "serviceMonitor.enabled=true",
        "--set",
        "priorityClassName=system-cluster-critical",
        "--set",
        "concurrentReconciles=16",
        "--set",
        "routineWrites=2.5",
        "--set-json",
        r#"imagePullSecrets=[{"name":"regcred"}]"#,
        "--set-json",
        r#"extraArgs=["--delivery-attempts=20"]"#,
        "--set-json",
        r#"extraEnv=[{"name":"KLAXON_METRICS_INTERVAL","value":"1m"}]"#,
    ]);

    // The learning record where teams look: off by default; the
    // dashboard for Grafana's sidecar, the rules for the Prometheus Operator.
    assert!(find(&defaults, "ConfigMap", "klaxon-dashboard").is_none());
    assert!(find(&defaults, "PrometheusRule", "klaxon").is_none());
    let looking = template(&[
        "--set",
        "grafanaDashboard.enabled=true",
        "--set",
        "grafanaDashboard.namespace=monitoring",
        "--set",
        "grafanaDashboard.annotations.grafana_folder=Incidents",
        "--set",
        "prometheusRule.enabled=true",
        "--set",
        "prometheusRule.labels.release=kube-prometheus-stack",
    ]);
    let dashboard = find(&looking, "ConfigMap", "klaxon-dashboard").expect("the dashboard");
    assert_eq!(dashboard["metadata"]["namespace"], "monitoring");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(
        dashboard["metadata"]["annotations"]["grafana_folder"],
        "Incidents"
    );
    let json: Value = serde_json::from_str(
        dashboard["data"]["klaxon-incidents.json"]
            .as_str()
            .expect("the dashboard's JSON"),
    )
    .expect("the dashboard is JSON");
    assert_eq!(json["uid"], "klaxon-incidents");
    assert!(json["panels"].as_array().is_some_and(|p| p.len() > 10));
    let rule = find(&looking, "PrometheusRule", "klaxon").expect("the PrometheusRule");
    assert_eq!(
        rule["metadata"]["labels"]["release"],
        "kube-prometheus-stack"
    );
    assert!(
        rule["spec"]["groups"][0]["rules"]
            .to_string()
            .contains("KlaxonPostmortemOverdue"),
        "{rule}"
    );

    // The Alertmanager receiver: its flag, its container and Service port.
    let alerts = template(&["--set", "alerts.enabled=true", "--set", "alerts.port=9443"]);
    let args = container(&alerts)["args"].as_array().expect("args").clone();
    assert!(
        args.contains(&Value::from("--alerts-address=0.0.0.0:9443")),
        "{args:?}"
    );
    assert!(
        args.contains(&Value::from("--alerts-token-secret=klaxon-alerts")),
        "{args:?}"
    );
    let service = find(&alerts, "Service", "klaxon").expect("Service");
    assert!(
        service["spec"]["ports"]
            .to_string()
            .contains(r#""name":"alerts""#),
        "{service}"
    );
    assert!(
        !container(&defaults)["args"]
            .to_string()
            .contains("alerts-address"),
        "off by default"
    );
    assert!(find(&extras, "ServiceMonitor", "klaxon").is_some());
    let pod =
        &find(&extras, "Deployment", "klaxon").expect("Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["priorityClassName"], "system-cluster-critical");
    assert_eq!(pod["imagePullSecrets"][0]["name"], "regcred");
    let args = container(&extras)["args"].as_array().expect("args").clone();
    for arg in [
        "run",
        "--concurrent-reconciles=16",
        "--routine-writes=2.5",
        "--delivery-attempts=20",
    ] {
        assert!(args.contains(&Value::from(arg)), "{args:?}");
    }
    assert_eq!(
        env(&extras, "KLAXON_METRICS_INTERVAL").expect("env")["value"],
        "1m"
    );
}

#[test]
fn the_values_schema_refuses_a_bad_value_with_a_message() {
    let dir = chart::chart_dir();
    let dir = dir.to_str().expect("utf-8 path");
    for (value, message) in [
        ("replicas=-1", "at '/replicas': minimum: got -1, want 0"),
        (
            "logFormat=xml",
            "at '/logFormat': value must be one of 'json', 'text'",
        ),
        (
            "receiverSecrets.mode=some",
            "at '/receiverSecrets/mode': value must be one of 'all', 'labelled'",
        ),
        ("replica=3", "additional properties 'replica' not allowed"),
        (
            "leaderElection.leaseDuration=15sec",
            "at '/leaderElection/leaseDuration': '15sec' does not match pattern",
        ),
        ("shards=0", "at '/shards': minimum: got 0, want 1"),
    ] {
        let out = helm(None, &["template", "klaxon", dir, "--set", value]);
        assert!(!out.status.success(), "{value} was accepted");
        assert!(stderr(&out).contains(message), "{value}: {}", stderr(&out));
    }
}

/// Installed by Helm, the CRDs are Helm's (its field manager owns them),
/// and Helm never upgrades `crds/`. The README's way works over a running
/// release: `kubectl apply --server-side` conflicts with Helm's ownership,
/// `--force-conflicts` takes it, and the operator keeps working.
#[tokio::test]
async fn crds_upgrade_over_a_running_release() {
    let cluster = Cluster::start_bare("chart-crds");
    let client = cluster.client().await;
    let system = support::namespace(&client, "klaxon-system").await;

    // The release as an older chart shipped it: Incidents without the
    // Overdue column and status field.
    let old = tempfile::tempdir().expect("tempdir");
    copy_dir(&chart::chart_dir(), old.path());
    let crd_file = old.path().join("crds/incidents.yaml");
    let text = std::fs::read_to_string(&crd_file).expect("read CRD");
    let mut crd: CustomResourceDefinition = serde_saphyr::from_str(&text).expect("CRD parses");
    for version in &mut crd.spec.versions {
        if let Some(columns) = version.additional_printer_columns.as_mut() {
            columns.retain(|c| c.name != "Overdue");
        }
        let status = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
            .and_then(|s| s.properties.as_mut())
            .and_then(|p| p.get_mut("status"))
            .and_then(|s| s.properties.as_mut())
            .expect("a status schema");
        status.remove("overdue");
    }
    std::fs::write(
        &crd_file,
        serde_json::to_string(&crd).expect("CRD serializes"),
    )
    .expect("write the older CRD");
    // A bad value is refused at install, with a message, and installs nothing.
    let out = helm(
        Some(&cluster.kubeconfig),
        &[
            "install",
            "klaxon",
            &old.path().to_string_lossy(),
            "-n",
            &system,
            "--set",
            "logFormat=xml",
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("value must be one of 'json', 'text'"),
        "{}",
        stderr(&out)
    );
    chart::install_chart(&cluster, old.path(), "klaxon", &system, &[]);
    let columns = || {
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        async move {
            crds.get("incidents.klaxon.dev")
                .await
                .expect("the Incident CRD")
                .spec
                .versions[0]
                .additional_printer_columns
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|c| c.name)
                .collect::<Vec<_>>()
        }
    };
    assert!(!columns().await.contains(&"Overdue".to_string()));

    let mut operator =
        chart::start_operator(&cluster, &client, "klaxon", &system, "chart-crds").await;
    operator.wait_ready(WAIT);
    let ns = support::namespace(&client, "crd-upgrade").await;
    let declare = |name: &str| {
        format!(
            "apiVersion: klaxon.dev/v1alpha1\nkind: Incident\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{title: Declared around a CRD upgrade, severity: SEV3}}\n"
        )
    };
    fixtures::apply(&cluster, &declare("before"));
    wait_for(&client, &ns, "before", WAIT, "its status", |i| {
        fixtures::condition(i, "Ready").is_some()
    })
    .await;

    // Helm owns the CRDs' fields: a plain server-side apply conflicts.
    let crds = support::repo_root().join("charts/klaxon/crds");
    let crds = crds.to_string_lossy();
    let out = cluster.kubectl(&["apply", "--server-side", "-f", &crds]);
    assert!(!out.status.success(), "no conflict with Helm's ownership");
    assert!(
        stderr(&out).contains("conflict") && stderr(&out).contains("helm"),
        "{}",
        stderr(&out)
    );
    let out = cluster.kubectl(&["apply", "--server-side", "--force-conflicts", "-f", &crds]);
    assert_success(&out, "kubectl apply --server-side --force-conflicts");
    assert!(columns().await.contains(&"Overdue".to_string()));

    // The running operator goes on: the old incident and a new one.
    fixtures::apply(&cluster, &declare("after"));
    for name in ["before", "after"] {
        wait_for(
            &client,
            &ns,
            name,
            WAIT,
            "its status after the upgrade",
            |i| {
                fixtures::condition(i, "Ready").is_some()
                    && i.status.as_ref().and_then(|s| s.observed_generation)
                        == i.metadata.generation
            },
        )
        .await;
    }
    assert_eq!(operator.get("/readyz").map(|r| r.status), Some(200));
    // And Helm still upgrades the release (it leaves crds/ alone).
    chart::upgrade(&cluster, "klaxon", &system, &[]);
    let log = operator.log_text();
    assert!(!log.contains("forbidden"), "{log}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create directory");
    for entry in std::fs::read_dir(from).expect("read chart directory") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// `make image` builds with whichever of docker, podman and buildah is on
/// PATH, and says which to install when none is.
#[test]
fn make_image_uses_whichever_builder_is_installed() {
    let make = which("make");
    let dir = tempfile::tempdir().expect("tempdir");
    let calls = dir.path().join("calls");
    let stub = |name: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!("#!/bin/sh\necho \"{name} $*\" >> '{}'\n", calls.display()),
        )
        .expect("write stub");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    };
    let run = || {
        std::process::Command::new(&make)
            .args([
                "--no-print-directory",
                "image",
                "IMAGE=registry.example/klaxon:v1",
            ])
            .current_dir(support::repo_root())
            .env("PATH", dir.path())
            .output()
            .expect("run make image")
    };
    let out = run();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no container builder on PATH: install docker, podman or buildah"),
        "{}",
        stderr(&out)
    );
    stub("buildah");
    assert!(run().status.success());
    stub("podman");
    assert!(run().status.success());
    let called = std::fs::read_to_string(&calls).expect("calls");
    assert_eq!(
        called.lines().collect::<Vec<_>>(),
        [
            "buildah bud -t registry.example/klaxon:v1 .",
            "podman build -t registry.example/klaxon:v1 ."
        ]
    );
}

fn which(program: &str) -> std::path::PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("{program} is not on PATH"))
}
