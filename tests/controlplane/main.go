// Command klaxon-controlplane runs a real Kubernetes control plane on
// loopback for Klaxon's integration tests, benchmarks and demo: an embedded
// etcd and an in-process kube-apiserver with RBAC, client-certificate
// authentication and working service-account tokens.
//
// It writes a private PKI under --dir, starts etcd and kube-apiserver on free
// 127.0.0.1 ports, and once /readyz answers writes --dir/kubeconfig (atomically,
// so a waiter that sees the file can use it). SIGTERM or SIGINT stops it.
//
// There are no nodes, no scheduler and no controller-manager: tests create
// ReplicaSets and Pods themselves and write Pod status as a kubelet would.
package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	mathrand "math/rand"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

const serviceAccountIssuer = "https://kubernetes.default.svc.cluster.local"

func main() {
	dir := flag.String("dir", "", "state directory: PKI, etcd data, logs and the kubeconfig (required)")
	audit := flag.Bool("audit", false, "write an audit log of every request (metadata level) to <dir>/audit.log")
	exitWithParent := flag.Bool("exit-with-parent", false, "stop when the process that started this one exits")
	verbosity := flag.Int("v", 0, "kube-apiserver log verbosity")
	sink := flag.String("sink", "", "also serve a notification sink on this address (e.g. 127.0.0.1:18081) that answers 200 and appends each request to <dir>/notifications.log")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "klaxon-controlplane: --dir is required")
		os.Exit(2)
	}
	if *sink != "" {
		if err := os.MkdirAll(*dir, 0o700); err != nil {
			fmt.Fprintln(os.Stderr, "klaxon-controlplane:", err)
			os.Exit(1)
		}
		if err := serveSink(*sink, filepath.Join(*dir, "notifications.log")); err != nil {
			fmt.Fprintln(os.Stderr, "klaxon-controlplane: notification sink:", err)
			os.Exit(1)
		}
	}
	if err := run(*dir, *audit, *exitWithParent, *verbosity); err != nil {
		fmt.Fprintln(os.Stderr, "klaxon-controlplane:", err)
		os.Exit(1)
	}
}

func run(dir string, audit, exitWithParent bool, verbosity int) error {
	dir, err := filepath.Abs(dir)
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

	etcdClientPort, err := freePort()
	if err != nil {
		return err
	}
	etcdPeerPort, err := freePort()
	if err != nil {
		return err
	}
	apiPort, err := freePort()
	if err != nil {
		return err
	}

	etcd, err := startEtcd(dir, etcdClientPort, etcdPeerPort)
	if err != nil {
		return fmt.Errorf("starting etcd: %w", err)
	}
	defer etcd.Close()

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
		// No controller-manager runs here to create each namespace's
		// "default" ServiceAccount, which this plugin would insist on.
		"--disable-admission-plugins=ServiceAccount",
		"--allow-privileged=true",
		// The kubernetes Service cannot point at a loopback address.
		"--endpoint-reconciler-type=none",
		"--profiling=false",
		fmt.Sprintf("--v=%d", verbosity),
	}
	if audit {
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

	cmd := app.NewAPIServerCommand()
	cmd.SetArgs(args)
	done := make(chan int, 1)
	go func() { done <- cli.Run(cmd) }()

	if exitWithParent {
		go watchParent()
	}

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
	if err := writeKubeconfig(kubeconfigPath, server, pki); err != nil {
		return err
	}
	fmt.Printf("klaxon-controlplane: ready at %s; kubeconfig %s\n", server, kubeconfigPath)

	if code := <-done; code != 0 {
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
// serveSink stands in for a team's webhook or Slack in the demo: it answers
// every request 200 and appends it, as one JSON line, to path.
func serveSink(addr, path string) error {
	file, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		var payload any = string(body)
		if json.Valid(body) {
			payload = json.RawMessage(body)
		}
		line, err := json.Marshal(map[string]any{
			"time":           time.Now().UTC().Format(time.RFC3339),
			"path":           r.URL.Path,
			"idempotencyKey": r.Header.Get("Idempotency-Key"),
			"body":           payload,
		})
		if err == nil {
			mu.Lock()
			_, _ = file.Write(append(line, '\n'))
			mu.Unlock()
		}
		w.WriteHeader(http.StatusOK)
	})
	go func() { _ = http.Serve(listener, handler) }()
	return nil
}

func watchParent() {
	parent := os.Getppid()
	for range time.Tick(500 * time.Millisecond) {
		if os.Getppid() != parent {
			_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
			return
		}
	}
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

type pkiFiles struct {
	caCert, serverCert, serverKey, adminCert, adminKey, saKey string
}

func writePKI(dir string) (*pkiFiles, error) {
	p := &pkiFiles{
		caCert:     filepath.Join(dir, "ca.crt"),
		serverCert: filepath.Join(dir, "apiserver.crt"),
		serverKey:  filepath.Join(dir, "apiserver.key"),
		adminCert:  filepath.Join(dir, "admin.crt"),
		adminKey:   filepath.Join(dir, "admin.key"),
		saKey:      filepath.Join(dir, "sa.key"),
	}
	caKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	now := time.Now().Add(-time.Hour)
	caTemplate := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "klaxon-controlplane-ca"},
		NotBefore:             now,
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	if err := writePEM(p.caCert, "CERTIFICATE", caDER); err != nil {
		return nil, err
	}

	leaf := func(serial int64, subject pkix.Name, usage x509.ExtKeyUsage, ips []net.IP, dns []string, certPath, keyPath string) error {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      subject,
			NotBefore:    now,
			NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  ips,
			DNSNames:     dns,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		if err := writePEM(certPath, "CERTIFICATE", der); err != nil {
			return err
		}
		return writePEM(keyPath, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key))
	}
	if err := leaf(2, pkix.Name{CommonName: "kube-apiserver"}, x509.ExtKeyUsageServerAuth,
		[]net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.96.0.1")},
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
		p.serverCert, p.serverKey); err != nil {
		return nil, err
	}
	if err := leaf(3, pkix.Name{CommonName: "klaxon-admin", Organization: []string{"system:masters"}},
		x509.ExtKeyUsageClientAuth, nil, nil, p.adminCert, p.adminKey); err != nil {
		return nil, err
	}
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	if err := writePEM(p.saKey, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(saKey)); err != nil {
		return nil, err
	}
	return p, nil
}

func writePEM(path, kind string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600)
}

func writeKubeconfig(path, server string, p *pkiFiles) error {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: v1
kind: Config
clusters:
  - name: klaxon-local
    cluster:
      server: %s
      certificate-authority: %s
users:
  - name: klaxon-admin
    user:
      client-certificate: %s
      client-key: %s
contexts:
  - name: klaxon-local
    context: {cluster: klaxon-local, user: klaxon-admin}
current-context: klaxon-local
`, server, p.caCert, p.adminCert, p.adminKey)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
