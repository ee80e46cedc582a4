//! `kubectl incident`, found by the real kubectl as a plugin on PATH.

use std::{path::Path, process::Command, time::Duration};

use klaxon::api::{Incident, Phase};
use kube::Api;

use crate::support::{self, fixtures::wait_for, operator, stderr, stdout};

const WAIT: Duration = Duration::from_secs(60);

/// Runs `kubectl incident <args>` with the plugin first on PATH.
fn plugin(kubeconfig: &Path, args: &[&str]) -> std::process::Output {
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
        .output()
        .expect("run kubectl incident")
}

#[tokio::test]
async fn responders_declare_and_drive_an_incident_with_kubectl_incident() {
    let cluster = support::cluster();
    operator::shared();
    let client = cluster.client().await;
    let ns = support::namespace(&client, "plugin").await;
    let kc = &cluster.kubeconfig;

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
    assert!(
        timeline
            .iter()
            .any(|e| e.type_ == "Note" && e.message == "alice: Rolled back to v41"),
        "{timeline:#?}"
    );
    assert!(timeline.iter().any(|e| e.type_ == "SeverityChanged"));

    let missing = plugin(kc, &["ack", "nope", "-n", &ns]);
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains(&format!("incident {ns}/nope not found")));
}
