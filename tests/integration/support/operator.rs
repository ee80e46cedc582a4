//! The real `klaxon run` as a child process, its log captured to a file.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::Duration,
};

use std::sync::OnceLock;

use super::poll_until;

/// The operator most tests share: one per test binary, against the shared
/// control plane, sampling PodMetrics every second.
pub struct Shared {
    pub port: u16,
    pub log: PathBuf,
}

impl Shared {
    pub fn get(&self, path: &str) -> Option<HttpResponse> {
        http_get(self.port, path)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The value of one `/metrics` sample, e.g.
    /// `klaxon_reconciliations_total{controller="incident"}`.
    pub fn metric(&self, sample: &str) -> Option<f64> {
        metric(self.port, sample)
    }
}

/// The value of one `/metrics` sample on the operator at `port`.
pub fn metric(port: u16, sample: &str) -> Option<f64> {
    let body = http_get(port, "/metrics")?.body;
    body.lines()
        .find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
}

/// Fast clocks, so retries and refreshes show within a test's patience.
pub const SHARED_ENV: &[(&str, &str)] = &[
    ("KLAXON_METRICS_INTERVAL", "1s"),
    ("KLAXON_DELIVERY_BACKOFF", "200ms"),
    ("KLAXON_DELIVERY_BACKOFF_MAX", "1s"),
    ("KLAXON_DELIVERY_ATTEMPTS", "4"),
];

/// The operator shared by the tests on [`super::cluster()`].
pub fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| start_shared(super::cluster(), "shared"))
}

/// The operator shared by the tests on [`super::bare_cluster()`].
pub fn shared_bare() -> &'static Shared {
    if super::Mode::from_env() == super::Mode::Bare {
        return shared();
    }
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| start_shared(super::bare_cluster(), "shared-bare"))
}

fn start_shared(cluster: &super::Cluster, name: &'static str) -> Shared {
    let kubeconfig = cluster.kubeconfig.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    // The operator dies with the thread that spawned it; this one lives
    // as long as the test binary.
    std::thread::spawn(move || {
        let mut operator = Operator::start(&kubeconfig, name, SHARED_ENV);
        operator.wait_ready(Duration::from_secs(120));
        let _ = tx.send(Shared {
            port: operator.port,
            log: operator.log.clone(),
        });
        loop {
            std::thread::park();
        }
    });
    rx.recv().unwrap_or_else(|_| {
        panic!("the {name} operator did not start; see target/tmp/operator/*-{name}.log")
    })
}

pub struct Operator {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

pub struct HttpResponse {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Operator {
    /// Starts `klaxon run` against `kubeconfig` with a free port for its
    /// HTTP endpoints.
    pub fn start(kubeconfig: &Path, name: &str, env: &[(&str, &str)]) -> Operator {
        Self::start_with_args(kubeconfig, name, &["run".to_string()], env)
    }

    /// Starts `klaxon ARGS` (ARGS starting with `run`), with
    /// `--listen-address` added for a free port.
    pub fn start_with_args(
        kubeconfig: &Path,
        name: &str,
        args: &[String],
        env: &[(&str, &str)],
    ) -> Operator {
        let port = free_port();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("operator");
        std::fs::create_dir_all(&dir).expect("create operator log directory");
        let log = dir.join(format!("{}-{name}.log", std::process::id()));
        let file = std::fs::File::create(&log).expect("create operator log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_klaxon"));
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to
        // SIGTERM the child when the thread that spawned it exits, so no
        // operator outlives the test that started it.
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = command
            .args(args)
            .arg("--listen-address")
            .arg(format!("127.0.0.1:{port}"))
            .env("KUBECONFIG", kubeconfig)
            .env("KLAXON_LOG", "info,klaxon=debug")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone log handle"))
            .stderr(file)
            .spawn()
            .expect("start klaxon run");
        Operator { child, port, log }
    }

    pub fn get(&self, path: &str) -> Option<HttpResponse> {
        http_get(self.port, path)
    }

    pub fn metric(&self, sample: &str) -> Option<f64> {
        metric(self.port, sample)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `/readyz` answers 200.
    pub fn wait_ready(&mut self, timeout: Duration) {
        let ready = poll_until(timeout, || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("klaxon exited early with {status}:\n{}", self.log_text());
            }
            self.get("/readyz")
                .filter(|response| response.status == 200)
                .map(|_| ())
        });
        assert!(
            ready.is_some(),
            "operator not ready within {timeout:?}:\n{}",
            self.log_text()
        );
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        poll_until(timeout, || self.child.try_wait().ok().flatten())
    }

    /// Kills the process at once (SIGKILL), as a node failure would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        signal(self.child.id(), "TERM");
        self.wait_exit(timeout)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}

/// A free loopback port for a server the test starts later. Chosen below
/// Linux's ephemeral range (32768-60999), where outgoing connections never
/// take it between this check and the bind; the control plane harness uses
/// 20000-31999, so these come from 10000-19999.
pub fn free_port() -> u16 {
    (0..500)
        .map(|_| fastrand::u16(10000..20000))
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free loopback port in 10000-19999")
}

/// A minimal HTTP/1.1 GET, enough for the operator's own endpoints.
pub fn http_get(port: u16, path: &str) -> Option<HttpResponse> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some(HttpResponse {
        status,
        headers: head.to_string(),
        body: body.to_string(),
    })
}
