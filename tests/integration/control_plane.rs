//! The local control plane behaves like a real cluster where Klaxon
//! depends on it: RBAC is enforced and service-account tokens work.

use crate::support::{self, assert_success, stderr, stdout};

#[tokio::test]
async fn service_account_tokens_authenticate_and_rbac_is_enforced() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    let ns = support::namespace(&client, "rbac").await;

    let out = cluster.kubectl(&["create", "serviceaccount", "reader", "-n", &ns]);
    assert_success(&out, "create serviceaccount");
    let out = cluster.kubectl(&["create", "token", "reader", "-n", &ns, "--duration=10m"]);
    assert_success(&out, "kubectl create token (TokenRequest)");
    let token = stdout(&out).trim().to_string();
    assert!(!token.is_empty());

    let reader_kubeconfig = cluster.kubeconfig_with_token(&ns, &token);
    let as_reader = |args: &[&str]| support::kubectl(&reader_kubeconfig, args, None);
    let out = as_reader(&[
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username}",
    ]);
    assert_success(&out, "kubectl auth whoami with the token");
    assert_eq!(stdout(&out), format!("system:serviceaccount:{ns}:reader"));

    let out = as_reader(&["get", "incidents", "-n", &ns]);
    assert!(
        !out.status.success(),
        "RBAC should forbid an unbound service account"
    );
    assert!(stderr(&out).contains("forbidden"), "{}", stderr(&out));

    let out = cluster.kubectl(&[
        "create",
        "role",
        "incident-reader",
        "-n",
        &ns,
        "--verb=get,list,watch",
        "--resource=incidents.klaxon.dev",
    ]);
    assert_success(&out, "create role");
    let out = cluster.kubectl(&[
        "create",
        "rolebinding",
        "incident-reader",
        "-n",
        &ns,
        "--role=incident-reader",
        &format!("--serviceaccount={ns}:reader"),
    ]);
    assert_success(&out, "create rolebinding");
    let out = as_reader(&["get", "incidents", "-n", &ns]);
    assert_success(&out, "get incidents once bound");
}
