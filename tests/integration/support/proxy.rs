//! A TCP relay in front of the apiserver that a test can cut and restore,
//! as a network partition or an apiserver restart would.
//!
//! It relays bytes only: TLS is still between the client and the
//! apiserver, whose certificate names 127.0.0.1 whatever the port. A cut
//! resets every open connection (RST, not FIN: SO_LINGER 0) and closes the
//! listening socket, so new connections are refused at once; a restore
//! listens on the same port again. The relay runs on its own runtime in a
//! background thread, so it keeps relaying while the test blocks.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::{Cluster, poll_until};

/// How long `cut` waits for the relay to let go of its sockets.
const SETTLE: Duration = Duration::from_secs(5);

pub struct Proxy {
    /// The loopback port clients connect to.
    pub port: u16,
    /// The apiserver's address.
    pub upstream: SocketAddr,
    /// A copy of the cluster's kubeconfig that goes through this proxy.
    pub kubeconfig: PathBuf,
    runtime: tokio::runtime::Handle,
    counters: Arc<Counters>,
    state: Mutex<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

#[derive(Default)]
struct Counters {
    /// Connections relayed (or being set up) right now.
    open: AtomicUsize,
    /// Connections accepted since the start.
    accepted: AtomicUsize,
    /// Connections reset by a cut.
    reset: AtomicUsize,
}

struct State {
    /// Cancelled by a cut: ends the accept loop and every connection
    /// accepted under it.
    token: CancellationToken,
    /// Told when the accept loop has dropped its listener.
    closed: Option<std::sync::mpsc::Receiver<()>>,
    cut: bool,
}

impl Proxy {
    /// A relay to `cluster`'s apiserver, with a kubeconfig through it
    /// written beside the cluster's.
    pub fn start(cluster: &Cluster) -> Proxy {
        let text = std::fs::read_to_string(&cluster.kubeconfig).expect("read kubeconfig");
        let upstream = server_address(&text);
        let (port, listener) = bind_free();
        let kubeconfig = cluster.dir().join(format!("kubeconfig-proxy-{port}"));
        kubeconfig_through(&cluster.kubeconfig, port, &kubeconfig);

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("proxy runtime");
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(format!("proxy-{port}"))
            .spawn(move || {
                // Drives the relay until the proxy is dropped; the runtime
                // and every connection go with it.
                let _ = runtime.block_on(stopped);
            })
            .expect("start the proxy thread");

        let proxy = Proxy {
            port,
            upstream,
            kubeconfig,
            runtime: handle,
            counters: Arc::default(),
            state: Mutex::new(State {
                token: CancellationToken::new(),
                closed: None,
                cut: true,
            }),
            stop: Some(stop),
        };
        proxy.serve(listener);
        proxy
    }

    /// Resets every open connection and refuses new ones until
    /// [`Proxy::restore`]. Returns once no connection is left open.
    pub fn cut(&self) {
        let mut state = self.lock();
        if state.cut {
            return;
        }
        state.cut = true;
        state.token.cancel();
        if let Some(closed) = state.closed.take() {
            // Err: the loop ended otherwise; the listener is gone either way.
            let _ = closed.recv_timeout(SETTLE);
        }
        let settled = poll_until(SETTLE, || {
            (self.counters.open.load(Ordering::Acquire) == 0).then_some(())
        });
        assert!(
            settled.is_some(),
            "the proxy still has {} connections open after a cut",
            self.counters.open.load(Ordering::Acquire)
        );
    }

    /// Listens on the same port again.
    pub fn restore(&self) {
        if !self.lock().cut {
            return;
        }
        let listener = bind_again(self.port);
        self.serve(listener);
    }

    pub fn is_cut(&self) -> bool {
        self.lock().cut
    }

    /// Connections accepted since the start.
    pub fn accepted(&self) -> usize {
        self.counters.accepted.load(Ordering::Acquire)
    }

    /// Connections reset by cuts so far.
    pub fn reset(&self) -> usize {
        self.counters.reset.load(Ordering::Acquire)
    }

    /// Starts accepting on `listener` under a fresh token.
    fn serve(&self, listener: std::net::TcpListener) {
        let mut state = self.lock();
        let token = CancellationToken::new();
        let (closed_tx, closed_rx) = std::sync::mpsc::channel();
        self.runtime.spawn(accept(
            listener,
            self.upstream,
            token.clone(),
            self.counters.clone(),
            closed_tx,
        ));
        *state = State {
            token,
            closed: Some(closed_rx),
            cut: false,
        };
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.lock().token.cancel();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn accept(
    listener: std::net::TcpListener,
    upstream: SocketAddr,
    token: CancellationToken,
    counters: Arc<Counters>,
    closed: std::sync::mpsc::Sender<()>,
) {
    match TcpListener::from_std(listener) {
        Ok(listener) => loop {
            tokio::select! {
                biased;
                _ = token.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((client, _)) => {
                        counters.accepted.fetch_add(1, Ordering::AcqRel);
                        // Counted before the task runs, so a cut waits for it.
                        counters.open.fetch_add(1, Ordering::AcqRel);
                        let open = Open(counters.clone());
                        tokio::spawn(relay(client, upstream, token.clone(), open));
                    }
                    // Out of file descriptors and the like: try again soon.
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                },
            }
        },
        Err(error) => eprintln!("proxy: cannot listen: {error}"),
    }
    // The listener is dropped by now: connecting is refused.
    let _ = closed.send(());
}

/// One open connection; counted until dropped.
struct Open(Arc<Counters>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn relay(client: TcpStream, upstream: SocketAddr, token: CancellationToken, open: Open) {
    // Both sockets are closed when this returns, before `open` is dropped.
    if pipe(client, upstream, &token).await {
        open.0.reset.fetch_add(1, Ordering::AcqRel);
    }
    drop(open);
}

/// Relays until either side closes, or until a cut resets both; true
/// when reset.
async fn pipe(mut client: TcpStream, upstream: SocketAddr, token: &CancellationToken) -> bool {
    let connected = tokio::select! {
        biased;
        _ = token.cancelled() => None,
        server = TcpStream::connect(upstream) => server.ok(),
    };
    let Some(mut server) = connected else {
        reset(&client);
        return true;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    tokio::select! {
        biased;
        _ = token.cancelled() => {
            reset(&client);
            reset(&server);
            true
        }
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => false,
    }
}

/// Makes closing the socket send RST, discarding unsent data.
fn reset(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}

/// A listener on a free port in 10000-19999 (see
/// [`super::operator::free_port`]).
fn bind_free() -> (u16, std::net::TcpListener) {
    for _ in 0..20 {
        let port = super::operator::free_port();
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            listener
                .set_nonblocking(true)
                .expect("non-blocking listener");
            return (port, listener);
        }
    }
    panic!("no free loopback port for the proxy");
}

/// The proxy's own port again (SO_REUSEADDR, which std sets, allows it
/// while old connections linger in TIME_WAIT).
fn bind_again(port: u16) -> std::net::TcpListener {
    let listener = poll_until(SETTLE, || {
        std::net::TcpListener::bind(("127.0.0.1", port)).ok()
    })
    .unwrap_or_else(|| panic!("cannot listen on 127.0.0.1:{port} again"));
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    listener
}

/// The `server: https://127.0.0.1:PORT` of a kubeconfig, as an address.
pub fn server_address(kubeconfig: &str) -> SocketAddr {
    let server = server_url(kubeconfig);
    let authority = server
        .strip_prefix("https://")
        .unwrap_or_else(|| panic!("not an https server: {server}"));
    let authority = authority.split('/').next().unwrap_or(authority);
    authority
        .parse()
        .unwrap_or_else(|e| panic!("server {server} is not an IP address and port: {e}"))
}

fn server_url(kubeconfig: &str) -> &str {
    kubeconfig
        .lines()
        .find_map(|line| line.trim().strip_prefix("server:"))
        .map(str::trim)
        .expect("kubeconfig has a server")
}

/// `kubeconfig` with its server's port replaced by `port` (the host stays,
/// so the apiserver's certificate still verifies).
pub fn with_server_port(kubeconfig: &str, port: u16) -> String {
    let server = server_url(kubeconfig);
    let address = server_address(kubeconfig);
    let rewritten = format!("https://{}:{port}", address.ip());
    kubeconfig.replacen(server, &rewritten, 1)
}

/// Writes a copy of the kubeconfig at `from` that reaches the server
/// through `port` on the same host.
pub fn kubeconfig_through(from: &Path, port: u16, to: &Path) {
    let text = std::fs::read_to_string(from).expect("read kubeconfig");
    std::fs::write(to, with_server_port(&text, port)).expect("write kubeconfig");
}
