package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// components are the processes beside the apiserver: controller-manager,
// scheduler and KWOK.
type components struct {
	procs       []*process
	exited      chan error
	stopping    atomic.Bool
	config      *rest.Config
	health      []string
	metricsPort int
	nodes       int
}

type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

func startComponents(opts options, dir, kubeconfig, server string, pki *pkiFiles) (*components, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	kwok := opts.kwok
	if kwok == "" {
		kwok = filepath.Join(filepath.Dir(self), "kwok")
	}
	if _, err := os.Stat(kwok); err != nil {
		return nil, fmt.Errorf("kwok binary: %w (build.sh builds it; or pass --bare)", err)
	}
	// The stages (how pods run and fail) and the usage the nodes report:
	// tests/controlplane/kwok.yaml, read at each start so that changing it
	// needs no rebuild.
	if opts.kwokConfig == "" {
		return nil, errors.New("--kwok-config is required unless --bare")
	}
	kwokConfigPath, err := filepath.Abs(opts.kwokConfig)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(kwokConfigPath); err != nil {
		return nil, fmt.Errorf("kwok config: %w", err)
	}
	if err := writeContainerLogs(dir); err != nil {
		return nil, err
	}
	metricsServer := filepath.Join(filepath.Dir(self), "metrics-server")
	if opts.metricsServer != "" {
		metricsServer = opts.metricsServer
	}
	if _, err := os.Stat(metricsServer); err != nil {
		return nil, fmt.Errorf("metrics-server binary: %w (build.sh builds it; or pass --bare)", err)
	}
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	managerPort, schedulerPort, kwokPort, metricsPort := ports[0], ports[1], ports[2], ports[3]
	verbosity := fmt.Sprintf("--v=%d", opts.verbosity)
	c := &components{
		exited: make(chan error, 4),
		config: &rest.Config{
			Host: server,
			TLSClientConfig: rest.TLSClientConfig{
				CAFile:   pki.caCert,
				CertFile: pki.adminCert,
				KeyFile:  pki.adminKey,
			},
			QPS:   50,
			Burst: 100,
		},
		health: []string{
			fmt.Sprintf("https://127.0.0.1:%d/healthz", managerPort),
			fmt.Sprintf("https://127.0.0.1:%d/healthz", schedulerPort),
		},
		metricsPort: metricsPort,
		nodes:       opts.nodes,
	}
	specs := []struct {
		name string
		bin  string
		args []string
	}{
		{"kube-controller-manager", self, []string{
			"kube-controller-manager",
			"--kubeconfig=" + kubeconfig,
			"--authentication-kubeconfig=" + kubeconfig,
			"--authorization-kubeconfig=" + kubeconfig,
			"--bind-address=127.0.0.1",
			fmt.Sprintf("--secure-port=%d", managerPort),
			"--leader-elect=false",
			"--service-account-private-key-file=" + pki.saKey,
			"--root-ca-file=" + pki.caCert,
			"--use-service-account-credentials=false",
			"--cluster-name=klaxon-local",
			// Every default controller, less those that need a cloud, a
			// signing CA or node CIDRs this cluster does not have.
			"--controllers=*,-nodeipam,-service-lb-controller,-node-route-controller,-cloud-node-lifecycle-controller,-certificatesigningrequest-signing-controller",
			// Simulated nodes never go away; do not evict their pods on
			// a slow heartbeat while the machine is busy.
			"--node-monitor-grace-period=2m",
			"--profiling=false",
			verbosity,
		}},
		{"kube-scheduler", self, []string{
			"kube-scheduler",
			"--kubeconfig=" + kubeconfig,
			"--authentication-kubeconfig=" + kubeconfig,
			"--authorization-kubeconfig=" + kubeconfig,
			"--bind-address=127.0.0.1",
			fmt.Sprintf("--secure-port=%d", schedulerPort),
			"--leader-elect=false",
			// Retry unschedulable pods every 20s rather than every 5m, so
			// FailedScheduling events gather a series within a minute.
			"--pod-max-in-unschedulable-pods-duration=20s",
			"--profiling=false",
			verbosity,
		}},
		{"kwok", kwok, []string{
			"--kubeconfig=" + kubeconfig,
			"--config=" + kwokConfigPath,
			"--manage-all-nodes=false",
			"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
			// Every node's "kubelet" is this one server: its InternalIP
			// and port are KWOK's, and each node's annotation names its
			// own path for metrics-server (see nodes.go).
			"--node-ip=127.0.0.1",
			fmt.Sprintf("--node-port=%d", kwokPort),
			fmt.Sprintf("--server-address=127.0.0.1:%d", kwokPort),
			"--node-lease-duration-seconds=40",
		}},
		{"metrics-server", metricsServer, []string{
			"--kubeconfig=" + kubeconfig,
			"--authentication-kubeconfig=" + kubeconfig,
			"--authorization-kubeconfig=" + kubeconfig,
			"--bind-address=127.0.0.1",
			fmt.Sprintf("--secure-port=%d", metricsPort),
			"--cert-dir=" + filepath.Join(dir, "metrics-server"),
			"--kubelet-preferred-address-types=InternalIP",
			"--kubelet-use-node-status-port",
			// KWOK serves a self-signed certificate.
			"--kubelet-insecure-tls",
			"--metric-resolution=10s",
			"--kubelet-request-timeout=5s",
		}},
	}
	for _, spec := range specs {
		log, err := os.Create(filepath.Join(dir, spec.name+".log"))
		if err != nil {
			c.stop()
			return nil, err
		}
		cmd := exec.Command(spec.bin, spec.args...)
		cmd.Stdout, cmd.Stderr = log, log
		// KWOK keeps its own state under $HOME/.kwok; give it this one.
		cmd.Env = append(os.Environ(), "HOME="+dir)
		// Their own process group: a terminal's Ctrl-C reaches only this
		// process, which stops them in order.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
		if err := cmd.Start(); err != nil {
			log.Close()
			c.stop()
			return nil, fmt.Errorf("starting %s: %w", spec.name, err)
		}
		log.Close()
		p := &process{name: spec.name, cmd: cmd, done: make(chan struct{})}
		c.procs = append(c.procs, p)
		go func() {
			err := p.cmd.Wait()
			close(p.done)
			if !c.stopping.Load() {
				c.exited <- fmt.Errorf("%s exited (%v); see %s", p.name, err, filepath.Join(dir, p.name+".log"))
			}
		}()
	}
	return c, nil
}

// ready waits until the cluster can run workloads: the controller-manager
// and the scheduler answer, the simulated nodes are Ready, the default
// ServiceAccount exists and metrics-server serves metrics.k8s.io.
func (c *components) ready() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	client, err := kubernetes.NewForConfig(c.config)
	if err != nil {
		return err
	}
	names, err := createNodes(ctx, client, c.nodes)
	if err != nil {
		return fmt.Errorf("creating nodes: %w", err)
	}
	insecure := &http.Client{
		Timeout: 2 * time.Second,
		// The components serve a self-signed certificate; only whether
		// they answer matters here.
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec
	}
	checks := []struct {
		what string
		ok   func() error
	}{
		{"kube-controller-manager and kube-scheduler /healthz", func() error {
			for _, url := range c.health {
				resp, err := insecure.Get(url)
				if err != nil {
					return err
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("%s: %s", url, resp.Status)
				}
			}
			return nil
		}},
		{"every node Ready", func() error { return nodesReady(ctx, client, names) }},
		{"the default ServiceAccount", func() error {
			_, err := client.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
			return err
		}},
	}
	for _, check := range checks {
		for err := check.ok(); err != nil; err = check.ok() {
			select {
			case <-ctx.Done():
				return fmt.Errorf("waiting for %s (last: %v): %w", check.what, err, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return registerMetricsServer(ctx, c.config, client, c.metricsPort)
}

func nodesReady(ctx context.Context, client kubernetes.Interface, names []string) error {
	for _, name := range names {
		node, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		ready := false
		for _, cond := range node.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		if !ready {
			return fmt.Errorf("node %s is not Ready", name)
		}
	}
	return nil
}

// stop ends every component: SIGTERM, then SIGKILL after five seconds.
// Calling it again waits for the same processes.
func (c *components) stop() {
	c.stopping.Store(true)
	for _, p := range c.procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, p := range c.procs {
		select {
		case <-p.done:
		case <-time.After(time.Until(deadline)):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
}

// writeContainerLogs writes what KWOK serves as every simulated container's
// log (see the ClusterLogs in kwok.yaml): <dir>/logs/current.log for the
// running instance and <dir>/logs/previous.log for the one before a
// restart (kubectl logs -p), in the CRI format a kubelet reads. Tests may
// write them again; KWOK reads them on every request.
func writeContainerLogs(dir string) error {
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return err
	}
	at := func(s int) string {
		return time.Now().UTC().Add(time.Duration(s-60) * time.Second).Format(time.RFC3339Nano)
	}
	files := map[string][]string{
		"previous.log": {
			at(0) + " stdout F starting on :8080",
			at(1) + " stdout F connected to the database",
			at(2) + " stderr F panic: simulated crash (tests/controlplane/kwok.yaml)",
			at(2) + " stderr F goroutine 1 [running]:",
		},
		"current.log": {
			at(30) + " stdout F starting on :8080",
		},
	}
	for name, lines := range files {
		text := strings.Join(lines, "\n") + "\n"
		if err := os.WriteFile(filepath.Join(logs, name), []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}
