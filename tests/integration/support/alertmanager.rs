//! A real Alertmanager (built by `tests/controlplane/build.sh` from the Go
//! module proxy) that sends every alert to one webhook with a bearer token,
//! grouping and repeating within seconds.

use std::{path::PathBuf, process::Child};

use super::{operator::free_port, start_daemon};

pub struct Alertmanager {
    child: Child,
    /// `host:port`, for Prometheus.
    pub address: String,
    pub log: PathBuf,
}

impl Alertmanager {
    /// Starts Alertmanager sending to `webhook` with `token`, grouping by
    /// `group_by`; waits until it is ready.
    pub fn start(name: &str, webhook: &str, token: &str, group_by: &[&str]) -> Alertmanager {
        let binary = super::controlplane_binary()
            .parent()
            .expect("the control plane binary has a directory")
            .join("alertmanager");
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("alertmanager")
            .join(format!("{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create alertmanager directory");
        let config = dir.join("alertmanager.yml");
        std::fs::write(
            &config,
            format!(
                "route:\n  receiver: klaxon\n  group_by: [{}]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 2s\nreceivers:\n  - name: klaxon\n    webhook_configs:\n      - url: '{webhook}'\n        send_resolved: true\n        http_config: {{authorization: {{credentials: '{token}'}}}}\n",
                group_by.join(", ")
            ),
        )
        .expect("write alertmanager.yml");
        let port = free_port();
        let log = dir.join("alertmanager.log");
        let args = vec![
            format!("--config.file={}", config.display()),
            format!("--storage.path={}", dir.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            format!("--web.external-url=http://127.0.0.1:{port}"),
            "--cluster.listen-address=".to_string(),
            "--log.level=debug".to_string(),
        ];
        let child = start_daemon("alertmanager", &binary, &args, &log, port);
        Alertmanager {
            child,
            address: format!("127.0.0.1:{port}"),
            log,
        }
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
