//! A real Prometheus server (Debian's package, fetched by
//! `tests/prometheus/fetch.sh`) scraping a target the test serves.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use super::{operator::free_port, repo_root, start_daemon};

pub struct Prometheus {
    child: Child,
    pub url: String,
    pub log: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (`host:port`, path `/metrics`)
    /// every second, and waits until it is ready.
    pub fn start(name: &str, target: &str) -> Prometheus {
        Self::start_with(name, target, None)
    }

    /// As [`Prometheus::start`], evaluating `rules` (a rule file's text)
    /// every second and sending alerts to the Alertmanager at
    /// `alertmanager` (`host:port`), resending firing ones every second.
    pub fn start_with(name: &str, target: &str, alerting: Option<(&str, &str)>) -> Prometheus {
        Self::launch(
            name,
            target,
            alerting.map(|(rules, _)| rules),
            alerting.map(|(_, alertmanager)| alertmanager),
        )
    }

    /// As [`Prometheus::start`], evaluating `rules` (a rule file's text)
    /// every second, with no Alertmanager.
    pub fn start_with_rules(name: &str, target: &str, rules: &str) -> Prometheus {
        Self::launch(name, target, Some(rules), None)
    }

    fn launch(
        name: &str,
        target: &str,
        rules: Option<&str>,
        alertmanager: Option<&str>,
    ) -> Prometheus {
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
        let mut text = format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n  - job_name: app\n    static_configs: [{{targets: ['{target}']}}]\n"
        );
        if let Some(rules) = rules {
            let file = dir.join("rules.yml");
            std::fs::write(&file, rules).expect("write rules.yml");
            text.push_str(&format!("rule_files: ['{}']\n", file.display()));
        }
        if let Some(alertmanager) = alertmanager {
            text.push_str(&format!(
                "alerting:\n  alertmanagers:\n    - static_configs: [{{targets: ['{alertmanager}']}}]\n"
            ));
        }
        std::fs::write(&config, text).expect("write prometheus.yml");
        let port = free_port();
        let log = dir.join("prometheus.log");
        let args = vec![
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            format!("--web.external-url=http://127.0.0.1:{port}"),
            "--rules.alert.resend-delay=1s".to_string(),
        ];
        let child = start_daemon("prometheus", Path::new(&binary), &args, &log, port);
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
