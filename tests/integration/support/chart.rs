//! The chart, through the real Helm (built by `tests/controlplane/build.sh`
//! beside the control plane), and the operator run as the chart renders it:
//! its ServiceAccount's token, its args and its env, read back from the
//! Deployment the release created.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, Client};

use super::{Cluster, assert_success, operator::Operator, repo_root, stdout};

/// The chart's directory in the repository.
pub fn chart_dir() -> PathBuf {
    repo_root().join("charts/klaxon")
}

/// The cached helm binary.
pub fn helm_binary() -> PathBuf {
    super::controlplane_binary()
        .parent()
        .expect("the control plane binary has a directory")
        .join("helm")
}

/// Runs helm with its caches in the test's own directory, against
/// `kubeconfig` when given.
pub fn helm(kubeconfig: Option<&Path>, args: &[&str]) -> Output {
    let home = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("helm");
    let mut command = Command::new(helm_binary());
    command
        .args(args)
        .current_dir(repo_root())
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env_remove("KUBECONFIG");
    if let Some(kubeconfig) = kubeconfig {
        command.env("KUBECONFIG", kubeconfig);
    }
    command.output().expect("run helm")
}

/// `helm install RELEASE charts/klaxon -n NAMESPACE` with `values`
/// (`--set`, `--set-json` and the like, passed through).
pub fn install(cluster: &Cluster, release: &str, namespace: &str, values: &[&str]) {
    install_chart(cluster, &chart_dir(), release, namespace, values);
}

pub fn install_chart(
    cluster: &Cluster,
    chart: &Path,
    release: &str,
    namespace: &str,
    values: &[&str],
) {
    let chart = chart.to_string_lossy();
    let mut args = vec!["install", release, &chart, "-n", namespace];
    args.extend_from_slice(values);
    let out = helm(Some(&cluster.kubeconfig), &args);
    assert_success(&out, &format!("helm install {release}"));
}

/// `helm upgrade RELEASE charts/klaxon -n NAMESPACE --reuse-values` with
/// `values`.
pub fn upgrade(cluster: &Cluster, release: &str, namespace: &str, values: &[&str]) {
    let chart = chart_dir();
    let chart = chart.to_string_lossy();
    let mut args = vec![
        "upgrade",
        release,
        &chart,
        "-n",
        namespace,
        "--reuse-values",
    ];
    args.extend_from_slice(values);
    let out = helm(Some(&cluster.kubeconfig), &args);
    assert_success(&out, &format!("helm upgrade {release}"));
}

/// `extraEnv=[...]` for `--set-json`: the tests' fast clocks
/// ([`super::operator::SHARED_ENV`]) through the chart's own value.
pub fn fast_clocks() -> String {
    let env: Vec<serde_json::Value> = super::operator::SHARED_ENV
        .iter()
        .map(|(name, value)| serde_json::json!({"name": name, "value": value}))
        .collect();
    format!(
        "extraEnv={}",
        serde_json::to_string(&env).expect("extraEnv")
    )
}

/// The operator as release `release` in `namespace` runs it: the
/// Deployment's args and env (field references resolved as the kubelet
/// would), under a token of the release's ServiceAccount.
pub async fn start_operator(
    cluster: &Cluster,
    client: &Client,
    release: &str,
    namespace: &str,
    name: &str,
) -> Operator {
    start_operator_with(cluster, client, release, namespace, name, str::to_string).await
}

/// As [`start_operator`], each of the Deployment's args passed through
/// `arg`: a second replica on the same loopback needs ports of its own,
/// where pods each have their own address.
pub async fn start_operator_with(
    cluster: &Cluster,
    client: &Client,
    release: &str,
    namespace: &str,
    name: &str,
    arg: impl Fn(&str) -> String,
) -> Operator {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let deployment = deployments
        .get(release)
        .await
        .expect("the release's Deployment");
    let pod = deployment
        .spec
        .and_then(|s| s.template.spec)
        .expect("a pod template");
    let account = pod.service_account_name.clone().expect("a ServiceAccount");
    let container = pod.containers.into_iter().next().expect("a container");
    let args: Vec<String> = container
        .args
        .unwrap_or_default()
        .iter()
        .map(|a| arg(a))
        .collect();
    let mut env: Vec<(String, String)> = Vec::new();
    for var in container.env.unwrap_or_default() {
        let value = match (var.value, var.value_from) {
            (Some(value), _) => value,
            (None, Some(from)) => match from.field_ref.map(|f| f.field_path).as_deref() {
                Some("metadata.namespace") => namespace.to_string(),
                Some("metadata.name") => format!("{release}-{name}"),
                other => panic!("the chart's env {} refers to {other:?}", var.name),
            },
            (None, None) => String::new(),
        };
        env.push((var.name, value));
    }
    let out = cluster.kubectl(&[
        "create",
        "token",
        &account,
        "-n",
        namespace,
        "--duration=1h",
    ]);
    assert_success(&out, "a token of the release's ServiceAccount");
    let kubeconfig = cluster.kubeconfig_with_token(name, stdout(&out).trim());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Operator::start_with_args(&kubeconfig, name, &args, &env)
}

/// `helm template klaxon charts/klaxon -n klaxon-system` with `values`,
/// as parsed objects.
pub fn template(values: &[&str]) -> Vec<serde_json::Value> {
    let dir = chart_dir();
    let mut args = vec![
        "template",
        "klaxon",
        dir.to_str().expect("utf-8 path"),
        "-n",
        "klaxon-system",
    ];
    args.extend_from_slice(values);
    let out = helm(None, &args);
    assert_success(&out, &format!("helm template {values:?}"));
    stdout(&out)
        .split("\n---")
        .filter_map(|doc| serde_saphyr::from_str::<serde_json::Value>(doc).ok())
        .filter(|v| v.is_object())
        .collect()
}

/// The rendered object of `kind` named `name`.
pub fn find<'a>(
    objects: &'a [serde_json::Value],
    kind: &str,
    name: &str,
) -> Option<&'a serde_json::Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}
