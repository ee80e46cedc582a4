//! Test support: a real cluster (built from `tests/controlplane`) started
//! once per test binary, the real `kubectl`, a fresh namespace per test, and
//! the real `klaxon` binary.
//!
//! [`cluster()`] runs the whole control plane: kube-apiserver, etcd,
//! kube-controller-manager, kube-scheduler and KWOK's simulated nodes, so
//! Deployments roll out for real. [`bare_cluster()`] runs kube-apiserver and
//! etcd only, for tests that write ReplicaSets, Pods and their status by
//! hand (a state no real component produces) without controllers racing
//! them.
//!
//! Set `KLAXON_TEST_KUBECONFIG` to run the tests of [`cluster()`] against a
//! cluster that is already up (e.g. `make cluster`; say
//! `KLAXON_CONTROLPLANE=bare` too if that one is bare); the others still
//! start their own. `KLAXON_CONTROLPLANE=bare` makes every cluster bare
//! (tests that need nodes then say so). `KLAXON_CONTROLPLANE_BIN` skips the
//! build script; `kwok` and `metrics-server` must lie beside that binary.

#![allow(dead_code)]

pub mod alertmanager;
pub mod audit;
pub mod chart;
pub mod fixtures;
pub mod operator;
pub mod prometheus;
pub mod proxy;
pub mod receiver;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{
        OnceLock,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client, Config,
    api::{ObjectMeta, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What a control plane runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// kube-apiserver, etcd, kube-controller-manager, kube-scheduler and
    /// KWOK's simulated nodes.
    Full,
    /// kube-apiserver and etcd only.
    Bare,
}

impl Mode {
    /// `Bare` when `KLAXON_CONTROLPLANE=bare`, else `Full`.
    pub fn from_env() -> Mode {
        match std::env::var("KLAXON_CONTROLPLANE").as_deref() {
            Ok("bare") => Mode::Bare,
            _ => Mode::Full,
        }
    }
}

/// A running control plane and how to reach it.
pub struct Cluster {
    pub kubeconfig: PathBuf,
    pub mode: Mode,
    process: Option<Child>,
}

static SHARED: OnceLock<Cluster> = OnceLock::new();
static SHARED_BARE: OnceLock<Cluster> = OnceLock::new();

/// The cluster shared by every test in this binary, with Klaxon's CRDs
/// installed: the whole control plane unless `KLAXON_CONTROLPLANE=bare`.
pub fn cluster() -> &'static Cluster {
    SHARED.get_or_init(|| {
        let cluster = match std::env::var_os("KLAXON_TEST_KUBECONFIG") {
            Some(path) => Cluster {
                kubeconfig: PathBuf::from(path),
                mode: Mode::from_env(),
                process: None,
            },
            None => Cluster::start("shared"),
        };
        cluster.install_crds();
        cluster.install_metrics_api();
        cluster
    })
}

/// A shared cluster with no controllers, scheduler or nodes, for tests
/// that write by hand what those would (each says why no real component
/// can produce its state).
pub fn bare_cluster() -> &'static Cluster {
    if Mode::from_env() == Mode::Bare {
        return cluster();
    }
    SHARED_BARE.get_or_init(|| {
        let cluster = Cluster::start_with("shared-bare", Mode::Bare);
        cluster.install_crds();
        cluster.install_metrics_api();
        cluster
    })
}

impl Cluster {
    /// Starts a new control plane in its own directory, in the mode
    /// `KLAXON_CONTROLPLANE` names. It stops when this value is dropped, or
    /// when the test binary exits.
    pub fn start(name: &str) -> Cluster {
        Cluster::start_with(name, Mode::from_env())
    }

    /// Starts kube-apiserver and etcd only.
    pub fn start_bare(name: &str) -> Cluster {
        Cluster::start_with(name, Mode::Bare)
    }

    /// Starts a new control plane running what `mode` names. A start that
    /// lost a race for a port (another listener took it first) is retried.
    pub fn start_with(name: &str, mode: Mode) -> Cluster {
        Cluster::start_with_args(name, mode, &[])
    }

    /// As [`Cluster::start_with`], with more flags for the harness
    /// (`klaxon-controlplane --help` lists them).
    pub fn start_with_args(name: &str, mode: Mode, args: &[&str]) -> Cluster {
        const ATTEMPTS: u32 = 3;
        for attempt in 1..=ATTEMPTS {
            match Cluster::try_start(&format!("{name}-{attempt}"), mode, args) {
                Ok(cluster) => return cluster,
                Err(log) if attempt < ATTEMPTS && port_taken(&log) => continue,
                Err(log) => panic!("klaxon-controlplane exited early; see {}", log.display()),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Starts one control plane; the log's path when it exits before ready.
    fn try_start(name: &str, mode: Mode, args: &[&str]) -> Result<Cluster, PathBuf> {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("controlplane")
            .join(format!("{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create control plane directory");
        let log_path = dir.join("controlplane.log");
        let log = std::fs::File::create(&log_path).expect("create log");
        let mut command = Command::new(controlplane_binary());
        command
            .arg("--dir")
            .arg(&dir)
            .arg("--exit-with-parent")
            .arg("--audit");
        match mode {
            Mode::Bare => command.arg("--bare"),
            Mode::Full => command
                .arg("--bare=false")
                .arg("--kwok-config")
                .arg(repo_root().join("tests/controlplane/kwok.yaml")),
        };
        command.args(args);
        let child = command
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("start klaxon-controlplane");
        let kubeconfig = dir.join("kubeconfig");
        let mut cluster = Cluster {
            kubeconfig,
            mode,
            process: Some(child),
        };
        let mut exited = false;
        // The harness itself allows 3 minutes for the apiserver and 3 for
        // the other components, on a busy machine.
        let patience = match mode {
            Mode::Bare => Duration::from_secs(180),
            Mode::Full => Duration::from_secs(360),
        };
        let ready = poll_until(patience, || {
            if let Some(Ok(Some(_))) = cluster.process.as_mut().map(Child::try_wait) {
                exited = true;
                return Some(());
            }
            cluster.kubeconfig.exists().then_some(())
        });
        if exited {
            return Err(log_path);
        }
        assert!(
            ready.is_some(),
            "control plane not ready within {patience:?}; see {}",
            log_path.display()
        );
        Ok(cluster)
    }

    /// Panics, saying why, unless this cluster runs controllers, a
    /// scheduler and nodes.
    pub fn require_nodes(&self) {
        assert_eq!(
            self.mode,
            Mode::Full,
            "this test rolls Deployments out on real controllers and simulated nodes; \
             unset KLAXON_CONTROLPLANE=bare"
        );
    }

    /// The directory holding the kubeconfig, logs and the audit log.
    pub fn dir(&self) -> &Path {
        self.kubeconfig.parent().expect("kubeconfig has a parent")
    }

    pub fn install_crds(&self) {
        let out = self.kubectl(&["apply", "--server-side", "-f", "crds/"]);
        assert_success(&out, "installing crds/");
        let out = self.kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/incidents.klaxon.dev",
            "crd/responsepolicies.klaxon.dev",
            "crd/clusterresponsepolicies.klaxon.dev",
        ]);
        assert_success(&out, "waiting for the CRDs to be established");
    }

    /// On a bare cluster, serves metrics.k8s.io PodMetrics from a CRD in
    /// metrics-server's shape, which tests fill themselves. The whole
    /// cluster runs the real metrics-server.
    pub fn install_metrics_api(&self) {
        if self.mode == Mode::Full {
            return;
        }
        let out = self.kubectl(&["apply", "-f", "tests/fixtures/podmetrics-crd.yaml"]);
        assert_success(&out, "installing the PodMetrics CRD");
        let out = self.kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/pods.metrics.k8s.io",
        ]);
        assert_success(&out, "waiting for the PodMetrics CRD");
    }

    /// Runs the real kubectl against this cluster from the repository root.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with_stdin(args, None)
    }

    pub fn kubectl_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        kubectl(&self.kubeconfig, args, stdin)
    }

    /// A kubeconfig for the same server that authenticates with `token`
    /// alone (e.g. a service account's), written beside the admin one.
    pub fn kubeconfig_with_token(&self, name: &str, token: &str) -> PathBuf {
        let admin = std::fs::read_to_string(&self.kubeconfig).expect("read kubeconfig");
        let field = |key: &str| {
            admin
                .lines()
                .find_map(|line| line.trim().strip_prefix(key))
                .map(str::trim)
                .unwrap_or_else(|| panic!("kubeconfig lacks {key}"))
                .to_string()
        };
        let (server, ca) = (field("server:"), field("certificate-authority:"));
        let path = self.dir().join(format!("kubeconfig-{name}"));
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n  - name: c\n    cluster: {{server: {server}, certificate-authority: {ca}}}\nusers:\n  - name: u\n    user: {{token: {token}}}\ncontexts:\n  - name: c\n    context: {{cluster: c, user: u}}\ncurrent-context: c\n"
        );
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    pub async fn client(&self) -> Client {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig).expect("read kubeconfig");
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("kubeconfig is valid");
        Client::try_from(config).expect("client")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(child) = self.process.as_mut() {
            // SIGTERM lets the apiserver and etcd stop cleanly.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            if poll_until(Duration::from_secs(20), || {
                child.try_wait().ok().flatten().map(|_| ())
            })
            .is_none()
            {
                let _ = child.kill();
            }
        }
    }
}

/// Whether the control plane or one of its components (each logs to its
/// own file beside `log`) lost a race for a port.
fn port_taken(log: &Path) -> bool {
    let Some(Ok(entries)) = log.parent().map(std::fs::read_dir) else {
        return false;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "log"))
        .any(|path| {
            std::fs::read_to_string(path).is_ok_and(|text| text.contains("address already in use"))
        })
}

/// Runs the real kubectl with `kubeconfig` from the repository root.
pub fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .current_dir(repo_root())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("kubectl stdin")
            .write_all(input.as_bytes())
            .expect("write kubectl stdin");
    }
    child.wait_with_output().expect("kubectl output")
}

pub(crate) fn controlplane_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("KLAXON_CONTROLPLANE_BIN") {
        return PathBuf::from(bin);
    }
    let out = Command::new(repo_root().join("tests/controlplane/build.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run tests/controlplane/build.sh (needs Go)");
    assert!(out.status.success(), "building the control plane failed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Starts a server that lives as long as the test thread (a parent-death
/// signal), logging to `log`, and waits until `http://127.0.0.1:PORT/-/ready`
/// answers 200 (Prometheus and Alertmanager both serve it).
pub fn start_daemon(what: &str, binary: &Path, args: &[String], log: &Path, port: u16) -> Child {
    let file = std::fs::File::create(log).expect("create log");
    let mut command = Command::new(binary);
    // SAFETY: see Operator::start; only asks the kernel for a signal.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut child = command
        .args(args)
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("clone log handle"))
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let ready = poll_until(Duration::from_secs(60), || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited with {status}; see {}", log.display());
        }
        operator::http_get(port, "/-/ready")
            .filter(|r| r.status == 200)
            .map(|_| ())
    });
    assert!(ready.is_some(), "{what} not ready; see {}", log.display());
    child
}

/// Calls `f` until it returns `Some`, or `timeout` passes.
pub fn poll_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Async form of [`poll_until`].
pub async fn eventually<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A fresh namespace name, unique in this run.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// Creates a namespace for one test and returns its name.
pub async fn namespace(client: &Client, prefix: &str) -> String {
    let name = unique_name(prefix);
    let api: Api<Namespace> = Api::all(client.clone());
    api.create(
        &PostParams::default(),
        &Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([("klaxon.dev/test".to_string(), "true".to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .expect("create test namespace");
    name
}
