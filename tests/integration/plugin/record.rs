//! `kubectl incident postmortem` and `report` over fixed records: the
//! incidents of `tests/golden/resolved.yaml` and `report.yaml`, with their
//! statuses written through the status subresource on a bare cluster (no
//! operator, so nothing changes them), read by users who may only view.

use std::sync::OnceLock;

use klaxon::api::Incident;
use serde::Deserialize;

use super::{cluster_viewer, compare, plugin_env, viewer};
use crate::support::{self, stderr, stdout};

/// The clock of every golden output here.
const NOW: &str = "2026-12-02T09:00:00Z";

static RECORD: OnceLock<support::Cluster> = OnceLock::new();

#[derive(Deserialize)]
struct List {
    items: Vec<Incident>,
}

fn golden(file: &str) -> std::path::PathBuf {
    support::repo_root().join("tests/golden").join(file)
}

/// The fixed incidents: the resolved one with the rich record, and the
/// report's.
fn fixtures() -> Vec<Incident> {
    let read = |file: &str| std::fs::read_to_string(golden(file)).expect("fixture");
    let resolved: Incident = serde_saphyr::from_str(&read("resolved.yaml")).expect("resolved.yaml");
    let list: List = serde_saphyr::from_str(&read("report.yaml")).expect("report.yaml");
    std::iter::once(resolved).chain(list.items).collect()
}

/// A bare cluster holding the fixed incidents in namespaces shop, search
/// and ledger, started once for this module's tests.
fn record() -> &'static support::Cluster {
    RECORD.get_or_init(|| {
        let cluster = support::Cluster::start_bare("plugin-record");
        cluster.install_crds();
        for ns in ["shop", "search", "ledger"] {
            let out = cluster.kubectl(&["create", "namespace", ns]);
            support::assert_success(&out, "namespace");
        }
        for mut incident in fixtures() {
            let status = incident.status.take().expect("fixture has a status");
            let name = incident.metadata.name.clone().expect("name");
            let ns = incident.metadata.namespace.clone().expect("namespace");
            let json = serde_json::to_string(&incident).expect("json");
            let out = cluster.kubectl_with_stdin(&["create", "-f", "-"], Some(&json));
            support::assert_success(&out, "create the incident");
            let patch = serde_json::json!({ "status": status }).to_string();
            let out = cluster.kubectl(&[
                "patch",
                "incident",
                &name,
                "-n",
                &ns,
                "--subresource=status",
                "--type=merge",
                "-p",
                &patch,
            ]);
            support::assert_success(&out, "write the fixed status");
        }
        cluster
    })
}

fn apply(cluster: &support::Cluster, manifest: &str) {
    let out = cluster.kubectl_with_stdin(&["apply", "-f", "-"], Some(manifest));
    support::assert_success(&out, "kubectl apply");
}

/// ConfigMap `pm-template` of shop holding `data` (key, text) and nothing
/// else.
fn template_configmap(cluster: &support::Cluster, data: &[(&str, &str)]) {
    let _ = cluster.kubectl(&[
        "delete",
        "configmap",
        "pm-template",
        "-n",
        "shop",
        "--ignore-not-found",
    ]);
    let map = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "pm-template", "namespace": "shop"},
        "data": data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<std::collections::BTreeMap<_, _>>(),
    });
    apply(cluster, &map.to_string());
}

#[tokio::test]
async fn postmortem_drafts_from_the_record_with_the_org_or_the_teams_template() {
    let cluster = record();
    // Reading is enough: incidents, policies and ConfigMaps of shop.
    let kc = &viewer(cluster, "shop", "reader");
    let draft = |args: &[&str]| {
        let mut all = vec!["postmortem", "checkout-5xx-1124", "-n", "shop"];
        all.extend_from_slice(args);
        plugin_env(kc, &all, &[("KLAXON_NOW", NOW)])
    };

    // The status names ResponsePolicy payments, which is gone: the
    // organisation's template, with a warning.
    let out = draft(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    compare(&golden("postmortem.md"), &stdout(&out));
    assert_eq!(
        stderr(&out).trim(),
        "warning: ResponsePolicy shop/payments, which the incident's status names, no longer exists; drafting from the built-in template"
    );
    let org = stdout(&out);

    // The team's policy, naming no template: the organisation's, silently.
    let policy = |postmortem: &str| {
        format!(
            "apiVersion: klaxon.dev/v1alpha1\nkind: ResponsePolicy\nmetadata: {{name: payments, namespace: shop}}\nspec:\n  team: {{name: payments}}\n{postmortem}"
        )
    };
    apply(cluster, &policy(""));
    let out = draft(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), org);
    assert_eq!(stderr(&out), "");

    // It names a ConfigMap that does not exist, then a key it lacks.
    apply(
        cluster,
        &policy("  postmortem:\n    templateConfigMapRef: {name: pm-template, key: draft.md}\n"),
    );
    let because = "ResponsePolicy shop/payments names it in spec.postmortem.templateConfigMapRef";
    let out = draft(&[]);
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out).trim(),
        format!(
            "kubectl-incident: error: template configmap shop/pm-template key draft.md: ConfigMap shop/pm-template not found ({because})"
        )
    );
    template_configmap(cluster, &[("other.md", "x")]);
    let out = draft(&[]);
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out).trim(),
        format!(
            "kubectl-incident: error: template configmap shop/pm-template key draft.md: ConfigMap shop/pm-template has no key draft.md (it has other.md; {because})"
        )
    );

    // The team's template.
    let team = std::fs::read_to_string(golden("postmortem-team.md.j2")).expect("team template");
    template_configmap(cluster, &[("draft.md", &team)]);
    let out = draft(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    compare(&golden("postmortem-team.md"), &stdout(&out));

    // --template FILE wins over both.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("mine.md.j2");
    std::fs::write(
        &file,
        "{{ incident.name }}: postmortem {{ postmortem.state }}, {{ follow_up_counts.overdue }} follow-up overdue\n",
    )
    .expect("write template");
    let path = file.to_str().expect("path");
    let out = draft(&["--template", path]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "checkout-5xx-1124: postmortem Overdue, 1 follow-up overdue\n"
    );

    // A template that does not render is an error naming where it came
    // from and the line; nothing is printed.
    let broken = "# {{ incident.title }}\n\n{% for f in follow_ups %}\n- {{ f.title }}\n{% endfor %}\n\n{{ incident.commander | shout }}\n";
    template_configmap(cluster, &[("draft.md", broken)]);
    let out = draft(&[]);
    assert!(!out.status.success());
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out).lines().next().unwrap_or_default(),
        "kubectl-incident: error: template configmap shop/pm-template key draft.md: line 7: unknown filter \"shout\"",
        "{}",
        stderr(&out)
    );
    let missing = dir.path().join("missing.md.j2");
    let out = draft(&["--template", missing.to_str().expect("path")]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).starts_with(&format!(
            "kubectl-incident: error: template file {}: ",
            missing.display()
        )),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn report_sums_up_incidents_per_team_and_severity() {
    let cluster = record();
    let at = [("KLAXON_NOW", NOW)];
    // Reading incidents everywhere is enough for -A.
    let everywhere = &cluster_viewer(cluster, "ledger", "auditor");
    let out = plugin_env(everywhere, &["report", "-A", "--since", "30d"], &at);
    assert!(out.status.success(), "{}", stderr(&out));
    compare(&golden("report.txt"), &stdout(&out));
    let out = plugin_env(everywhere, &["report", "-A", "-o", "json"], &at);
    assert!(out.status.success(), "{}", stderr(&out));
    compare(&golden("report.json"), &stdout(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("report -o json");
    assert_eq!(json["total"]["declared"], 8, "{json:#}");

    // One namespace, read with a namespaced Role.
    let kc = &viewer(cluster, "shop", "report-reader");
    let out = plugin_env(kc, &["report", "-n", "shop", "-o", "json"], &at);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("report -o json");
    assert_eq!(json["namespace"], "shop");
    let teams: Vec<&str> = json["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter_map(|g| g["team"].as_str())
        .collect();
    assert_eq!(teams, ["payments", "payments", "payments"], "{json:#}");
    // A shorter window: only what was declared in the last 18 hours.
    let out = plugin_env(kc, &["report", "-n", "shop", "--since", "18h"], &at);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with(
            "Incidents declared in namespace shop in the last 18h (since 2026-12-01 15:00 UTC)\n"
        ),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("\npayments   SEV2       1 "),
        "{}",
        stdout(&out)
    );
    let out = plugin_env(kc, &["report", "-n", "shop", "--since", "a while"], &at);
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out).trim(),
        "kubectl-incident: error: --since \"a while\" is not a duration such as 30d, 12h or 90m"
    );
}
