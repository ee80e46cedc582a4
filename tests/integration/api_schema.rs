//! The CRDs install into a real API server, the examples apply with the
//! real kubectl, and `kubectl get` shows what users expect.

use crate::support::{self, assert_success, stdout};

#[test]
fn crds_are_established_and_served() {
    let cluster = support::cluster();
    for crd in [
        "incidents.klaxon.dev",
        "responsepolicies.klaxon.dev",
        "clusterresponsepolicies.klaxon.dev",
    ] {
        let out = cluster.kubectl(&[
            "get",
            "crd",
            crd,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Established\")].status}",
        ]);
        assert_success(&out, crd);
        assert_eq!(stdout(&out), "True", "{crd} is not established");
    }
    let out = cluster.kubectl(&["api-resources", "--api-group=klaxon.dev", "-o", "wide"]);
    assert_success(&out, "kubectl api-resources");
    let text = stdout(&out);
    for (plural, short, kind) in [
        ("incidents", "inc", "Incident"),
        ("responsepolicies", "rp", "ResponsePolicy"),
        ("clusterresponsepolicies", "crp", "ClusterResponsePolicy"),
    ] {
        let line = text
            .lines()
            .find(|line| line.starts_with(plural))
            .unwrap_or_else(|| panic!("{plural} not served:\n{text}"));
        assert!(
            line.contains(short),
            "{plural} lacks short name {short}: {line}"
        );
        assert!(line.contains(kind), "{plural} lacks kind {kind}: {line}");
        assert!(
            line.contains("klaxon"),
            "{plural} not in category klaxon: {line}"
        );
    }
}

#[test]
fn every_example_applies() {
    let cluster = support::cluster();
    let out = cluster.kubectl(&["apply", "-R", "-f", "examples/"]);
    assert_success(&out, "kubectl apply -R -f examples/");
    let applied = stdout(&out);
    for object in [
        "clusterresponsepolicy.klaxon.dev/org-baseline",
        "responsepolicy.klaxon.dev/payments",
        "responsepolicy.klaxon.dev/search",
        "incident.klaxon.dev/checkout-5xx",
    ] {
        assert!(applied.contains(object), "{object} not applied:\n{applied}");
    }
    // Both team policies stay within the org baseline.
    crate::support::operator::shared();
    for (ns, name) in [("shop", "payments"), ("catalog", "search")] {
        let out = cluster.kubectl(&[
            "wait",
            "--for=condition=Ready",
            "--timeout=60s",
            "-n",
            ns,
            &format!("rp/{name}"),
        ]);
        assert_success(&out, &format!("{ns}/{name} Ready"));
    }
    let out = cluster.kubectl(&[
        "wait",
        "--for=jsonpath={.status.policy.responsePolicy}=payments",
        "--timeout=60s",
        "-n",
        "shop",
        "inc/checkout-5xx",
    ]);
    assert_success(&out, "the example incident follows the payments policy");
}

#[tokio::test]
async fn kubectl_get_shows_printer_columns_and_the_category() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    let ns = support::namespace(&client, "columns").await;
    let crp = support::unique_name("columns");
    let manifest = format!(
        r#"
apiVersion: klaxon.dev/v1alpha1
kind: Incident
metadata: {{name: db-latency, namespace: {ns}}}
spec: {{title: Database latency, severity: SEV3}}
---
apiVersion: klaxon.dev/v1alpha1
kind: ResponsePolicy
metadata: {{name: team, namespace: {ns}}}
spec: {{team: {{name: storage}}}}
---
apiVersion: klaxon.dev/v1alpha1
kind: ClusterResponsePolicy
metadata: {{name: {crp}}}
spec:
  namespaceSelector: {{matchLabels: {{klaxon.dev/never: match}}}}
"#
    );
    let out = cluster.kubectl_with_stdin(&["apply", "-f", "-"], Some(&manifest));
    assert_success(&out, "apply objects");

    let out = cluster.kubectl(&["get", "inc", "-n", &ns]);
    assert_success(&out, "kubectl get inc");
    let text = stdout(&out);
    let header: Vec<&str> = text
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME", "SEVERITY", "PHASE", "TITLE", "TEAM", "OVERDUE", "SUMMARY", "AGE"
        ]
    );
    let row: Vec<&str> = text
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(&row[..3], ["db-latency", "SEV3", "Triggered"], "{text}");

    let out = cluster.kubectl(&["get", "inc", "-n", &ns, "-o", "wide"]);
    assert_success(&out, "kubectl get inc -o wide");
    let wide = stdout(&out);
    assert!(
        wide.lines().next().unwrap_or_default().contains("READY"),
        "{wide}"
    );
    assert!(text.contains("Database latency"), "{text}");

    let out = cluster.kubectl(&["get", "klaxon", "-A"]);
    assert_success(&out, "kubectl get klaxon -A");
    let all = stdout(&out);
    for object in [
        "incident.klaxon.dev/db-latency".to_string(),
        "responsepolicy.klaxon.dev/team".to_string(),
        format!("clusterresponsepolicy.klaxon.dev/{crp}"),
    ] {
        assert!(
            all.contains(&object),
            "{object} missing from `kubectl get klaxon -A`:\n{all}"
        );
    }
    let out = cluster.kubectl(&["delete", "crp", &crp]);
    assert_success(&out, "delete the ClusterResponsePolicy");
}
