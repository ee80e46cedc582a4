//! `kubectl incident`, found by the real kubectl as a plugin on PATH.

mod followup;
mod record;

use std::{path::Path, process::Command, time::Duration};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use klaxon::api::{Incident, Phase};
use kube::Api;

use crate::support::{
    self,
    fixtures::{self, wait_for},
    operator, stderr, stdout,
};

const WAIT: Duration = Duration::from_secs(60);

/// A kubeconfig for ServiceAccount `name` of `ns` allowed `rules` (YAML
/// flow sequences of PolicyRules), in `ns` only or, `everywhere`, in every
/// namespace, and nothing else.
fn account(
    cluster: &support::Cluster,
    ns: &str,
    name: &str,
    rules: &[&str],
    everywhere: bool,
) -> std::path::PathBuf {
    let (role, binding, scope) = if everywhere {
        ("ClusterRole", "ClusterRoleBinding", String::new())
    } else {
        ("Role", "RoleBinding", format!(", namespace: {ns}"))
    };
    let rules: String = rules.iter().map(|r| format!("  - {r}\n")).collect();
    let rbac = format!(
        r#"
apiVersion: v1
kind: ServiceAccount
metadata: {{name: {name}, namespace: {ns}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: {role}
metadata: {{name: {ns}-{name}{scope}}}
rules:
{rules}---
apiVersion: rbac.authorization.k8s.io/v1
kind: {binding}
metadata: {{name: {ns}-{name}{scope}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: {role}, name: {ns}-{name}}}
subjects: [{{kind: ServiceAccount, name: {name}, namespace: {ns}}}]
"#
    );
    let out = cluster.kubectl_with_stdin(&["apply", "-f", "-"], Some(&rbac));
    support::assert_success(&out, &format!("RBAC of {ns}/{name}"));
    token(cluster, ns, name)
}

/// A kubeconfig for ServiceAccount `name` of `ns`, allowed to declare,
/// read and change Incidents there (as the built-in `edit` role allows
/// once the chart's roles aggregate into it).
fn responder(cluster: &support::Cluster, ns: &str, name: &str) -> std::path::PathBuf {
    account(
        cluster,
        ns,
        name,
        &[
            "{apiGroups: [klaxon.dev], resources: [incidents], verbs: [get, list, watch, create, update, patch]}",
        ],
        false,
    )
}

/// A kubeconfig for ServiceAccount `name` of `ns` that may only read
/// Incidents, ResponsePolicies and ConfigMaps there, as the built-in
/// `view` role allows once the chart's roles aggregate into it.
fn viewer(cluster: &support::Cluster, ns: &str, name: &str) -> std::path::PathBuf {
    account(
        cluster,
        ns,
        name,
        &[
            "{apiGroups: [klaxon.dev], resources: [incidents, responsepolicies], verbs: [get, list, watch]}",
            "{apiGroups: [\"\"], resources: [configmaps], verbs: [get, list, watch]}",
        ],
        false,
    )
}

/// A kubeconfig for ServiceAccount `name` of `ns` that may read Incidents
/// in every namespace (`view` bound cluster-wide), and nothing else.
fn cluster_viewer(cluster: &support::Cluster, ns: &str, name: &str) -> std::path::PathBuf {
    account(
        cluster,
        ns,
        name,
        &["{apiGroups: [klaxon.dev], resources: [incidents], verbs: [get, list, watch]}"],
        true,
    )
}

/// A kubeconfig with a token of ServiceAccount `ns/name`.
fn token(cluster: &support::Cluster, ns: &str, name: &str) -> std::path::PathBuf {
    let out = cluster.kubectl(&["create", "token", name, "-n", ns, "--duration=1h"]);
    support::assert_success(&out, "token");
    cluster.kubeconfig_with_token(&format!("{ns}-{name}"), stdout(&out).trim())
}

/// Runs `kubectl incident <args>` with the plugin first on PATH.
fn plugin(kubeconfig: &Path, args: &[&str]) -> std::process::Output {
    plugin_env(kubeconfig, args, &[])
}

fn plugin_env(kubeconfig: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let bin = Path::new(env!("CARGO_BIN_EXE_kubectl-incident"));
    let dir = bin.parent().expect("binary directory");
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("kubectl")
        .arg("incident")
        .args(args)
        .env("PATH", path)
        .env("KUBECONFIG", kubeconfig)
        .env("USER", "alice")
        .env_remove("NO_COLOR")
        .envs(env.iter().copied())
        .output()
        .expect("run kubectl incident")
}

#[tokio::test]
async fn responders_declare_and_drive_an_incident_with_kubectl_incident() {
    let cluster = support::cluster();
    operator::shared();
    let client = cluster.client().await;
    let ns = support::namespace(&client, "plugin").await;
    // A responder as the cluster knows them: a ServiceAccount allowed to
    // drive incidents in this namespace, and nothing else.
    let kc = &responder(cluster, &ns, "alice");
    let alice = format!("system:serviceaccount:{ns}:alice");
    // The team wants a postmortem for every resolved SEV1.
    fixtures::apply(
        cluster,
        &format!(
            "apiVersion: klaxon.dev/v1alpha1\nkind: ResponsePolicy\nmetadata: {{name: team, namespace: {ns}}}\nspec:\n  severities:\n    - {{name: SEV1, requirePostmortem: true}}\n    - {{name: SEV2}}\n    - {{name: SEV3}}\n"
        ),
    );
    fixtures::wait_policy_ready(&client, &ns, "team", WAIT).await;

    let out = plugin(
        kc,
        &[
            "declare",
            "checkout-5xx",
            "-n",
            &ns,
            "--title",
            "Checkout returns 5xx",
            "--severity",
            "SEV2",
            "--deployment",
            "checkout",
            "--selector",
            "tier=payments",
            "--commander",
            "bob",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    assert!(
        printed.contains(&format!(
            "incident.klaxon.dev/checkout-5xx declared in namespace {ns}"
        )),
        "{printed}"
    );
    // What the operator found, without a second command.
    assert!(printed.contains("summary:"), "{printed}");

    let api: Api<Incident> = Api::namespaced(client.clone(), &ns);
    let declared = api.get("checkout-5xx").await.expect("incident");
    assert_eq!(declared.spec.severity, "SEV2");
    assert_eq!(declared.spec.commander.as_deref(), Some("bob"));
    let affected = declared
        .spec
        .affected
        .as_ref()
        .expect("affected")
        .deployments
        .clone();
    assert_eq!(affected[0].name.as_deref(), Some("checkout"));
    assert_eq!(
        affected[1]
            .selector
            .as_ref()
            .and_then(|s| s.match_labels.as_ref())
            .and_then(|l| l.get("tier"))
            .map(String::as_str),
        Some("payments")
    );

    let again = plugin(
        kc,
        &[
            "declare",
            "checkout-5xx",
            "-n",
            &ns,
            "--title",
            "x",
            "--no-wait",
        ],
    );
    assert!(!again.status.success());
    assert_eq!(
        stderr(&again).trim(),
        format!("kubectl-incident: error: incident {ns}/checkout-5xx already exists")
    );

    for args in [
        vec!["ack", "checkout-5xx", "-n", &ns],
        vec!["note", "checkout-5xx", "-n", &ns, "Rolled back to v41"],
        vec!["severity", "checkout-5xx", "-n", &ns, "SEV1"],
        vec![
            "resolve",
            "checkout-5xx",
            "-n",
            &ns,
            "--postmortem",
            "https://wiki.example/pm/1",
        ],
    ] {
        let out = plugin(kc, &args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    let done = wait_for(&client, &ns, "checkout-5xx", WAIT, "the resolution", |i| {
        i.status.as_ref().is_some_and(|s| s.resolved_at.is_some())
    })
    .await;
    assert_eq!(done.spec.phase, Phase::Resolved);
    assert_eq!(done.spec.severity, "SEV1");
    assert_eq!(
        done.spec.postmortem.as_ref().map(|p| p.url.as_str()),
        Some("https://wiki.example/pm/1")
    );
    let timeline = &done.status.as_ref().expect("status").timeline;
    // Who did what, as the apiserver vouched for it, not $USER.
    let said = |type_: &str, message: &str| {
        timeline
            .iter()
            .any(|e| e.type_ == type_ && e.message == message)
    };
    assert!(
        said("Note", &format!("{alice}: Rolled back to v41")),
        "{timeline:#?}"
    );
    assert!(
        said(
            "PhaseChanged",
            &format!("Triggered → Acknowledged by {alice}")
        ),
        "{timeline:#?}"
    );
    assert!(
        said("SeverityChanged", &format!("SEV2 → SEV1 by {alice}")),
        "{timeline:#?}"
    );
    assert!(
        said(
            "PhaseChanged",
            &format!("Acknowledged → Resolved by {alice}")
        ),
        "{timeline:#?}"
    );
    assert!(
        timeline.iter().any(|e| e.type_ == "Declared"
            && e.message
                .starts_with(&format!("Declared SEV2 by {alice}: "))),
        "{timeline:#?}"
    );
    // The timeline command prints the same entries.
    let out = plugin(kc, &["timeline", "checkout-5xx", "-n", &ns]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).lines().any(|l| l.contains("PhaseChanged")
            && l.ends_with(&format!("Triggered → Acknowledged by {alice}"))),
        "{}",
        stdout(&out)
    );

    // Nobody can name someone else: the admission policy refuses it.
    let forged = cluster.kubectl(&[
        "annotate",
        "--overwrite",
        "incident",
        "checkout-5xx",
        "-n",
        &ns,
        "klaxon.dev/actor=mallory",
    ]);
    assert!(!forged.status.success(), "a forged actor was accepted");
    assert!(
        stderr(&forged)
            .contains("klaxon.dev/actor must name the user making the change (klaxon-admin)"),
        "{}",
        stderr(&forged)
    );

    // Resolving a SEV1 without its postmortem: done, with a warning that
    // says how to add it, once the operator has looked.
    let out = plugin(
        kc,
        &[
            "declare",
            "db-down",
            "-n",
            &ns,
            "--title",
            "DB down",
            "--severity",
            "SEV1",
            "--no-wait",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = plugin(kc, &["resolve", "db-down", "-n", &ns]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("warning: the policy requires a postmortem for resolved SEV1 incidents")
            && stderr(&out).contains(&format!(
                "kubectl incident resolve db-down -n {ns} --postmortem URL"
            )),
        "{}",
        stderr(&out)
    );
    // checkout-5xx linked its postmortem: no warning there (asked again,
    // it changes nothing and says so).
    let out = plugin(
        kc,
        &[
            "resolve",
            "checkout-5xx",
            "-n",
            &ns,
            "--postmortem",
            "https://wiki.example/pm/1",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("unchanged"), "{}", stdout(&out));
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));

    let missing = plugin(kc, &["ack", "nope", "-n", &ns]);
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains(&format!("incident {ns}/nope not found")));
}

/// The golden output of `show` and `timeline` for the incident in
/// `tests/golden/incident.yaml`, and `list -A` over it and two more, as
/// kubectl runs the plugin. `KLAXON_GOLDEN=update` rewrites the files.
#[tokio::test]
async fn show_list_and_timeline_print_what_a_responder_reads() {
    let cluster = support::Cluster::start_bare("plugin-golden");
    cluster.install_crds();
    let client = cluster.client().await;
    for ns in ["shop", "ledger"] {
        let out = cluster.kubectl(&["create", "namespace", ns]);
        support::assert_success(&out, "namespace");
    }
    let golden = support::repo_root().join("tests/golden");
    let text = std::fs::read_to_string(golden.join("incident.yaml")).expect("fixture");
    let fixed: Incident = serde_saphyr::from_str(&text).expect("fixture parses");
    let status = fixed.status.clone().expect("fixture has a status");
    let at = |t: &str| Time(t.parse().expect("time"));

    // Two more for the list: a SEV2 acknowledged in time, and a resolved one.
    let mut acked = fixed.clone();
    acked.metadata.name = Some("ledger-latency".into());
    acked.metadata.namespace = Some("ledger".into());
    acked.spec.title = "Ledger writes are slow".into();
    acked.spec.severity = "SEV2".into();
    acked.spec.phase = Phase::Acknowledged;
    acked.spec.commander = Some("carol".into());
    let mut acked_status = status.clone();
    acked_status.team = Some("ledger".into());
    acked_status.summary = Some("ledger 2/2 ready".into());
    acked_status.declared_at = Some(at("2026-11-24T13:30:00Z"));
    acked_status.acknowledge_by = Some(at("2026-11-24T13:45:00Z"));
    acked_status.acknowledged_at = Some(at("2026-11-24T13:34:00Z"));
    acked_status.escalated_at = None;
    acked_status.overdue = None;
    let mut done = acked.clone();
    done.metadata.name = Some("old-outage".into());
    done.spec.phase = Phase::Resolved;
    let mut done_status = acked_status.clone();
    done_status.resolved_at = Some(at("2026-11-24T13:50:00Z"));

    for (incident, status) in [(fixed, status), (acked, acked_status), (done, done_status)] {
        let ns = incident.metadata.namespace.clone().expect("namespace");
        let name = incident.metadata.name.clone().expect("name");
        let api: Api<Incident> = Api::namespaced(client.clone(), &ns);
        let mut fresh = incident.clone();
        fresh.status = None;
        let created = api
            .create(&Default::default(), &fresh)
            .await
            .expect("create the incident");
        let mut with_status = created.clone();
        with_status.status = Some(status);
        api.replace_status(&name, &Default::default(), &with_status)
            .await
            .expect("write the fixed status");
    }

    let kc = &cluster.kubeconfig;
    let at_time = [("KLAXON_NOW", "2026-11-24T14:12:30Z")];
    let show = plugin_env(kc, &["show", "checkout-5xx", "-n", "shop"], &at_time);
    assert!(show.status.success(), "{}", stderr(&show));
    assert!(
        !stdout(&show).contains('\u{1b}'),
        "piped output carries no colour"
    );
    compare(&golden.join("show.txt"), &stdout(&show));
    assert!(
        stdout(&show).lines().count() <= klaxon::cli::view::show::SCREEN,
        "show fits on one screen"
    );

    let list = plugin_env(kc, &["list", "-A"], &at_time);
    assert!(list.status.success(), "{}", stderr(&list));
    compare(&golden.join("list.txt"), &stdout(&list));

    let timeline = plugin_env(kc, &["timeline", "checkout-5xx", "-n", "shop"], &at_time);
    assert!(timeline.status.success(), "{}", stderr(&timeline));
    compare(&golden.join("timeline.txt"), &stdout(&timeline));

    // Colour when asked for; the machine-readable passthrough.
    let coloured = plugin_env(
        kc,
        &["show", "checkout-5xx", "-n", "shop", "--color=always"],
        &at_time,
    );
    assert!(
        stdout(&coloured).contains("\u{1b}[1;31mOVERDUE"),
        "{}",
        stdout(&coloured)
    );
    let json = plugin_env(
        kc,
        &["show", "checkout-5xx", "-n", "shop", "-o", "json"],
        &at_time,
    );
    let parsed: Incident =
        serde_json::from_str(&stdout(&json)).expect("show -o json is an Incident");
    assert_eq!(parsed.status.and_then(|s| s.overdue), Some(true));
    let yaml = plugin_env(
        kc,
        &["show", "checkout-5xx", "-n", "shop", "-o", "yaml"],
        &at_time,
    );
    let parsed: Incident =
        serde_saphyr::from_str(&stdout(&yaml)).expect("show -o yaml is an Incident");
    assert_eq!(parsed.spec.title, "Checkout returns 5xx");

    // kubectl get's columns: the Title, and Overdue for the one overdue.
    let out = cluster.kubectl(&["get", "inc", "-A"]);
    support::assert_success(&out, "kubectl get inc");
    let table = stdout(&out);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    for column in [
        "SEVERITY", "PHASE", "TITLE", "TEAM", "OVERDUE", "SUMMARY", "AGE",
    ] {
        assert!(header.contains(&column), "{table}");
    }
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_default()
            .to_string()
    };
    let overdue = |name: &str| row(name).split_whitespace().any(|w| w == "true");
    assert!(
        row("checkout-5xx").contains("Checkout returns 5xx"),
        "{table}"
    );
    assert!(
        overdue("checkout-5xx") && !overdue("ledger-latency"),
        "{table}"
    );

    // --watch draws the incident again when it changes.
    let bin = Path::new(env!("CARGO_BIN_EXE_kubectl-incident"));
    let mut watch = std::process::Command::new(bin)
        .args(["show", "checkout-5xx", "-n", "shop", "--watch"])
        .env("KUBECONFIG", kc)
        .env("KLAXON_NOW", "2026-11-24T14:12:30Z")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start show --watch");
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let reader = {
        let lines = lines.clone();
        let out = watch.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                lines.lock().expect("lines").push(line);
            }
        })
    };
    let seen = |text: &str| {
        let text = text.to_string();
        let lines = lines.clone();
        support::poll_until(WAIT, move || {
            lines
                .lock()
                .expect("lines")
                .iter()
                .any(|l| l.contains(&text))
                .then_some(())
        })
    };
    assert!(
        seen("checkout-5xx  SEV1  Triggered").is_some(),
        "no first view"
    );
    let out = cluster.kubectl(&[
        "patch",
        "inc",
        "checkout-5xx",
        "-n",
        "shop",
        "--type=merge",
        "-p",
        r#"{"spec":{"phase":"Acknowledged","commander":"carol"}}"#,
    ]);
    support::assert_success(&out, "acknowledge");
    let followed = seen("checkout-5xx  SEV1  Acknowledged");
    let _ = watch.kill();
    let _ = watch.wait();
    let _ = reader.join();
    assert!(
        followed.is_some(),
        "show --watch did not follow the change:\n{}",
        lines.lock().expect("lines").join("\n")
    );
    assert!(
        lines
            .lock()
            .expect("lines")
            .iter()
            .any(|l| l.contains("commander carol"))
    );
}

/// Compares with a golden file, or rewrites it with KLAXON_GOLDEN=update.
fn compare(path: &Path, actual: &str) {
    if std::env::var("KLAXON_GOLDEN").as_deref() == Ok("update") {
        std::fs::write(path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        expected == actual,
        "{} differs (KLAXON_GOLDEN=update rewrites it):\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

#[tokio::test]
async fn an_unreachable_context_is_one_line_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    // Nothing listens on port 1.
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n  - name: c\n    cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}\nusers:\n  - name: u\n    user: {token: t}\ncontexts:\n  - name: prod-eu\n    context: {cluster: c, user: u, namespace: shop}\ncurrent-context: prod-eu\n",
    )
    .expect("kubeconfig");
    for args in [&["list"][..], &["ack", "checkout-5xx"][..]] {
        let out = plugin(&kubeconfig, args);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with(
                "kubectl-incident: error: cannot reach the cluster of context \"prod-eu\" (https://127.0.0.1:1): "
            ),
            "{err}"
        );
    }
}
