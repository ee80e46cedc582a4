//! A real Prometheus server (Debian's package, fetched by
//! `tests/prometheus/fetch.sh`) scraping a target the test serves.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use super::{operator::free_port, operator::http_get, poll_until, repo_root};

pub struct Prometheus {
    child: Child,
    pub url: String,
    pub log: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (`host:port`, path `/metrics`)
    /// every second, and waits until it is ready.
    pub fn start(name: &str, target: &str) -> Prometheus {
        let out = Command::new(repo_root().join("tests/prometheus/fetch.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run tests/prometheus/fetch.sh");
        assert!(out.status.success(), "fetching Prometheus failed");
        let binary = String::from_utf8_lossy(&out.stdout).trim().to_string();

        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("prometheus")
            .join(format!("{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create prometheus directory");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n  - job_name: app\n    static_configs: [{{targets: ['{target}']}}]\n"
            ),
        )
        .expect("write prometheus.yml");
        let port = free_port();
        let log = dir.join("prometheus.log");
        let file = std::fs::File::create(&log).expect("create prometheus log");
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
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone log handle"))
            .stderr(file)
            .spawn()
            .expect("start prometheus");
        let ready = poll_until(Duration::from_secs(60), || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("prometheus exited with {status}; see {}", log.display());
            }
            http_get(port, "/-/ready")
                .filter(|r| r.status == 200)
                .map(|_| ())
        });
        assert!(
            ready.is_some(),
            "prometheus not ready; see {}",
            log.display()
        );
        Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
