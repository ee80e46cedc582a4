// Command klaxon-controlplane runs a real Kubernetes cluster on loopback for
// Klaxon's integration tests, benchmarks and demo: an embedded etcd, an
// in-process kube-apiserver with RBAC, client-certificate authentication and
// working service-account tokens, and (unless --bare) kube-controller-manager,
// kube-scheduler, KWOK running simulated nodes, and metrics-server scraping
// them behind the aggregation layer.
//
// It writes a private PKI under --dir, starts etcd and kube-apiserver on free
// 127.0.0.1 ports, then the other components, and once the cluster is usable
// (apiserver ready; with nodes, every node Ready and metrics.k8s.io
// served) writes --dir/kubeconfig atomically, so a waiter that sees the file
// can use it. SIGTERM or SIGINT stops it and its components.
//
// kube-controller-manager and kube-scheduler run as child processes of this
// same binary (the first argument names them), so their process-wide state
// (flags, metrics registries, klog) stays apart from the apiserver's. KWOK
// (sigs.k8s.io/kwok) and metrics-server (sigs.k8s.io/metrics-server) are
// their own binaries, built by build.sh beside this one.
//
// --bare starts etcd and kube-apiserver only: benchmarks and tests that write
// ReplicaSets, Pods and their status themselves need no controller racing
// them.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	mathrand "math/rand"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

const serviceAccountIssuer = "https://kubernetes.default.svc.cluster.local"

func main() {
	// The components run as children of this binary: `klaxon-controlplane
	// kube-controller-manager ARGS...`.
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "kube-controller-manager":
			go watchParent()
			cmd := controllermanager.NewControllerManagerCommand()
			cmd.SetArgs(os.Args[2:])
			os.Exit(cli.Run(cmd))
		case "kube-scheduler":
			go watchParent()
			cmd := scheduler.NewSchedulerCommand()
			cmd.SetArgs(os.Args[2:])
			os.Exit(cli.Run(cmd))
		case "demo-exporter":
			// `klaxon-controlplane demo-exporter ADDR`, for `make demo`.
			if len(os.Args) != 3 {
				fmt.Fprintln(os.Stderr, "usage: klaxon-controlplane demo-exporter ADDR")
				os.Exit(2)
			}
			if err := serveExporter(os.Args[2]); err != nil {
				fmt.Fprintln(os.Stderr, "klaxon-controlplane: demo exporter:", err)
				os.Exit(1)
			}
		}
	}
	// Children are started with a parent-death signal, which Linux ties to
	// the thread that started them: keep that thread for this goroutine.
	runtime.LockOSThread()

	var opts options
	flag.StringVar(&opts.dir, "dir", "", "state directory: PKI, etcd data, logs and the kubeconfig (required)")
	flag.BoolVar(&opts.audit, "audit", false, "write an audit log of every request (metadata level) to <dir>/audit.log")
	exitWithParent := flag.Bool("exit-with-parent", false, "stop when the process that started this one exits")
	flag.IntVar(&opts.verbosity, "v", 0, "log verbosity of the Kubernetes components")
	sink := flag.String("sink", "", "also serve a notification sink on this address (e.g. 127.0.0.1:18081) that answers 200 and appends each request to <dir>/notifications.log")
	flag.BoolVar(&opts.bare, "bare", os.Getenv("KLAXON_CONTROLPLANE") == "bare", "etcd and kube-apiserver only: no controllers, scheduler, nodes or PodMetrics (default from KLAXON_CONTROLPLANE=bare)")
	compaction := 5 * time.Minute
	if v, err := time.ParseDuration(os.Getenv("KLAXON_ETCD_COMPACTION_INTERVAL")); err == nil {
		compaction = v
	}
	flag.DurationVar(&opts.compaction, "etcd-compaction-interval", compaction, "how often the apiserver compacts etcd: kube-apiserver's flag, passed on (default from KLAXON_ETCD_COMPACTION_INTERVAL, else its own default of 5m)")
	flag.IntVar(&opts.nodes, "nodes", 3, "simulated nodes to run (4 CPUs and 16Gi each)")
	flag.StringVar(&opts.kwok, "kwok", "", "the kwok binary (default: kwok beside this binary)")
	flag.StringVar(&opts.kwokConfig, "kwok-config", "", "KWOK's stages and usage (tests/controlplane/kwok.yaml); required unless --bare")
	flag.StringVar(&opts.metricsServer, "metrics-server", "", "the metrics-server binary (default: metrics-server beside this binary)")
	flag.Parse()
	if opts.dir == "" {
		fmt.Fprintln(os.Stderr, "klaxon-controlplane: --dir is required")
		os.Exit(2)
	}
	if *exitWithParent {
		go watchParent()
	}
	if *sink != "" {
		if err := os.MkdirAll(opts.dir, 0o700); err != nil {
			fmt.Fprintln(os.Stderr, "klaxon-controlplane:", err)
			os.Exit(1)
		}
		if err := serveSink(*sink, filepath.Join(opts.dir, "notifications.log")); err != nil {
			fmt.Fprintln(os.Stderr, "klaxon-controlplane: notification sink:", err)
			os.Exit(1)
		}
	}
	if err := run(opts); err != nil {
		fmt.Fprintln(os.Stderr, "klaxon-controlplane:", err)
		os.Exit(1)
	}
}

type options struct {
	dir           string
	audit, bare   bool
	verbosity     int
	compaction    time.Duration
	nodes         int
	kwok          string
	kwokConfig    string
	metricsServer string
}

func run(opts options) error {
	dir, err := filepath.Abs(opts.dir)
	if err != nil {
		return err
	}
	kubeconfigPath := filepath.Join(dir, "kubeconfig")
	// A stale kubeconfig would point waiters at a dead server.
	_ = os.Remove(kubeconfigPath)
	if err := os.RemoveAll(filepath.Join(dir, "etcd")); err != nil {
		return err
	}
	pkiDir := filepath.Join(dir, "pki")
	if err := os.MkdirAll(pkiDir, 0o700); err != nil {
		return err
	}
	pki, err := writePKI(pkiDir)
	if err != nil {
		return fmt.Errorf("generating certificates: %w", err)
	}

	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	etcdClientPort, etcdPeerPort, apiPort := ports[0], ports[1], ports[2]

	etcd, err := startEtcd(dir, etcdClientPort, etcdPeerPort)
	if err != nil {
		return fmt.Errorf("starting etcd: %w", err)
	}
	defer etcd.Close()

	admission := "--disable-admission-plugins=ServiceAccount"
	var aggregation []string
	if !opts.bare {
		// The ServiceAccount controller creates each namespace's "default"
		// account, as in any cluster.
		admission = "--disable-admission-plugins="
		// The aggregation layer proxies metrics.k8s.io to metrics-server
		// as the admin client, passing the caller's identity in headers.
		aggregation = []string{
			"--proxy-client-cert-file=" + pki.adminCert,
			"--proxy-client-key-file=" + pki.adminKey,
			"--requestheader-client-ca-file=" + pki.caCert,
			"--requestheader-allowed-names=klaxon-admin",
			"--requestheader-username-headers=X-Remote-User",
			"--requestheader-group-headers=X-Remote-Group",
			"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		}
	}
	args := []string{
		"--etcd-servers=" + fmt.Sprintf("http://127.0.0.1:%d", etcdClientPort),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", apiPort),
		"--cert-dir=" + pkiDir,
		"--tls-cert-file=" + pki.serverCert,
		"--tls-private-key-file=" + pki.serverKey,
		"--client-ca-file=" + pki.caCert,
		"--service-account-issuer=" + serviceAccountIssuer,
		"--service-account-key-file=" + pki.saKey,
		"--service-account-signing-key-file=" + pki.saKey,
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.96.0.0/16",
		admission,
		"--allow-privileged=true",
		// The kubernetes Service cannot point at a loopback address.
		"--endpoint-reconciler-type=none",
		"--profiling=false",
		"--etcd-compaction-interval=" + opts.compaction.String(),
		fmt.Sprintf("--v=%d", opts.verbosity),
	}
	args = append(args, aggregation...)
	if opts.audit {
		policy := filepath.Join(dir, "audit-policy.yaml")
		if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
			return err
		}
		args = append(args,
			"--audit-policy-file="+policy,
			"--audit-log-path="+filepath.Join(dir, "audit.log"),
			"--audit-log-format=json",
			"--audit-log-mode=batch",
		)
	}

	cmd := apiserver.NewAPIServerCommand()
	cmd.SetArgs(args)
	done := make(chan int, 1)
	go func() { done <- cli.Run(cmd) }()

	server := fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	ready := make(chan error, 1)
	go func() { ready <- waitReady(server, pki) }()

	select {
	case code := <-done:
		return fmt.Errorf("kube-apiserver exited with code %d before it was ready", code)
	case err := <-ready:
		if err != nil {
			return err
		}
	}

	died := make(chan error, 1)
	if !opts.bare {
		// The components use the admin identity; the public kubeconfig is
		// written only once the whole cluster is usable.
		componentConfig := filepath.Join(dir, "components.kubeconfig")
		if err := writeKubeconfig(componentConfig, server, pki); err != nil {
			return err
		}
		c, err := startComponents(opts, dir, componentConfig, server, pki)
		if err != nil {
			return err
		}
		defer c.stop()
		// SIGTERM or SIGINT also starts the apiserver's graceful shutdown,
		// which waits (up to a minute) for the components' watches to end:
		// stop them first.
		signals := make(chan os.Signal, 1)
		signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
		go func() {
			<-signals
			c.stop()
		}()
		started := make(chan error, 1)
		go func() { started <- c.ready() }()
		select {
		case code := <-done:
			return fmt.Errorf("kube-apiserver exited with code %d before the cluster was ready", code)
		case err := <-c.exited:
			return err
		case err := <-started:
			if err != nil {
				return err
			}
		}
		go func() {
			// A component that dies takes the cluster down with it, so no
			// test runs against a cluster that silently lost a controller.
			// The others go first: the apiserver's graceful shutdown
			// would wait for their watches.
			died <- <-c.exited
			c.stop()
			_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
		}()
	}

	if err := writeKubeconfig(kubeconfigPath, server, pki); err != nil {
		return err
	}
	mode := "kube-apiserver, etcd, kube-controller-manager, kube-scheduler and KWOK"
	if opts.bare {
		mode = "kube-apiserver and etcd only (bare)"
	}
	fmt.Printf("klaxon-controlplane: ready at %s (%s); kubeconfig %s\n", server, mode, kubeconfigPath)

	code := <-done
	select {
	case err := <-died:
		return err
	default:
	}
	if code != 0 {
		return fmt.Errorf("kube-apiserver exited with code %d", code)
	}
	return nil
}

const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
`

func startEtcd(dir string, clientPort, peerPort int) (*embed.Etcd, error) {
	cfg := embed.NewConfig()
	cfg.Name = "klaxon"
	cfg.Dir = filepath.Join(dir, "etcd")
	clientURL := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", clientPort)}
	peerURL := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", peerPort)}
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "error"
	cfg.LogOutputs = []string{filepath.Join(dir, "etcd.log")}
	// The data is thrown away at every start; durability buys nothing here
	// and fsync dominates the latency of every write.
	cfg.UnsafeNoFsync = true
	// As kubeadm and GKE run etcd: progress notifications every 5 s let the
	// apiserver's watch cache, and so the bookmarks it sends watchers, move
	// forward for kinds that are quiet. Without them a quiet kind's watch
	// resumes from a resourceVersion compaction has removed, and relists.
	cfg.WatchProgressNotifyInterval = 5 * time.Second
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, err
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, errors.New("etcd was not ready within 60s")
	}
}

// watchParent stops the control plane when its parent exits, so a test run
// that is killed does not leave a server behind.
func watchParent() {
	parent := os.Getppid()
	for range time.Tick(500 * time.Millisecond) {
		if os.Getppid() != parent {
			_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
			return
		}
	}
}

// freePorts finds n distinct free loopback ports; see freePort.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	seen := map[int]bool{}
	for len(ports) < n {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		if !seen[port] {
			seen[port] = true
			ports = append(ports, port)
		}
	}
	return ports, nil
}

// freePort finds a free loopback port below Linux's ephemeral range
// (32768-60999). A port from ":0" lies inside it, and between closing it
// here and etcd or kube-apiserver binding it, any outgoing connection on
// the machine may take it; below the range only another listener can.
func freePort() (int, error) {
	for attempt := 0; attempt < 200; attempt++ {
		port := 20000 + mathrand.Intn(12000)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		return port, nil
	}
	return 0, errors.New("no free port in 20000-31999")
}

func waitReady(server string, pki *pkiFiles) error {
	cert, err := tls.LoadX509KeyPair(pki.adminCert, pki.adminKey)
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(pki.caCert)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs:      pool,
			Certificates: []tls.Certificate{cert},
		}},
	}
	deadline := time.Now().Add(3 * time.Minute)
	var last string
	for time.Now().Before(deadline) {
		resp, err := client.Get(server + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("kube-apiserver was not ready within 3m (last answer: %s)", last)
}
