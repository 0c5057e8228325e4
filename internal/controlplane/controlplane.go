// Package controlplane runs a real, local Kubernetes control plane for tests:
// etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (which
// plays the kubelet of a fake node, so pods become Running and Ready without
// containers), all on free 127.0.0.1 ports with a temporary data directory.
//
// The binaries are built from the Go modules pinned in hack/tools by
// hack/controlplane/build.sh and cached under
// ${XDG_CACHE_HOME:-~/.cache}/deploybot/controlplane; set
// DEPLOYBOT_CONTROLPLANE_BIN to use a prebuilt bin dir instead. A cold build
// takes about 9 minutes on 2 cores, longer than go test's default 10-minute
// timeout leaves for tests, so CI should run the build script first.
//
// Typical use:
//
//	cp := controlplane.Start(t)
//	cs := kubernetes.NewForConfigOrDie(cp.AdminConfig())
//	alice := kubernetes.NewForConfigOrDie(cp.UserConfig("alice"))
//	out, err := cp.Kubectl(ctx, "get", "nodes").CombinedOutput()
//
// Users authenticate with bearer tokens (kube-apiserver --token-auth-file),
// and authorization is RBAC (plus Node): admin is in system:masters, every
// other user starts with no role at all (see DefaultUsers). Pods whose
// container image contains "broken" (e.g. "x:broken") become Running but never
// Ready; all other pods become Ready almost at once.
package controlplane

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// KeepEnv names the environment variable that, when set to a non-empty value,
// makes Start keep the data directory (logs, certificates, kubeconfigs) after
// the test instead of removing it.
const KeepEnv = "DEPLOYBOT_CONTROLPLANE_KEEP"

// User is an identity the API server accepts, by bearer token.
type User struct {
	Name   string
	Groups []string
}

// DefaultUsers are the users every control plane knows. Only admin has any
// permission (system:masters); tests grant the others what they need with
// RBAC objects. deploybot looks like a service account's user groups.
var DefaultUsers = []User{
	{Name: "admin", Groups: []string{"system:masters"}},
	{Name: "alice", Groups: []string{"deployers"}},
	{Name: "bob", Groups: []string{"deployers"}},
	{Name: "carol", Groups: []string{"viewers"}},
	{Name: "deploybot", Groups: []string{"system:serviceaccounts", "system:serviceaccounts:deploybot"}},
}

// componentUsers are the identities of the components started here.
var componentUsers = []User{
	{Name: "system:kube-controller-manager", Groups: []string{"system:masters"}},
	{Name: "system:kube-scheduler", Groups: []string{"system:masters"}},
	{Name: "system:kwok-controller", Groups: []string{"system:masters"}},
}

// serviceCIDR is the Service cluster IP range; serviceIP is the kubernetes
// Service's address in it.
const (
	serviceCIDR = "10.96.0.0/16"
	serviceIP   = "10.96.0.1"
	podCIDR     = "10.244.0.0/16"
)

// Option configures a control plane.
type Option func(*options)

type options struct {
	users        []User
	binDir       string
	startTimeout time.Duration
	progress     io.Writer
}

// WithUser adds a user (or replaces the default user of that name).
func WithUser(name string, groups ...string) Option {
	return func(o *options) {
		o.users = slices.DeleteFunc(o.users, func(u User) bool { return u.Name == name })
		o.users = append(o.users, User{Name: name, Groups: groups})
	}
}

// WithBinDir uses the binaries in dir instead of $DEPLOYBOT_CONTROLPLANE_BIN or
// the build script. dir/../stages must hold kwok's stage files.
func WithBinDir(dir string) Option { return func(o *options) { o.binDir = dir } }

// WithStartTimeout bounds how long starting may take once the binaries are
// there (default 2 minutes).
func WithStartTimeout(d time.Duration) Option { return func(o *options) { o.startTimeout = d } }

// WithProgress sends the build script's progress to w (default os.Stderr).
func WithProgress(w io.Writer) Option { return func(o *options) { o.progress = w } }

// ControlPlane is a running control plane. Its methods are safe for
// concurrent use.
type ControlPlane struct {
	dir        string
	binDir     string
	host       string // https://127.0.0.1:PORT
	caPEM      []byte
	users      map[string]User
	tokens     map[string]string
	kubeconfig string

	procs    []*process
	stopOnce sync.Once
}

// Start starts a control plane for the test and stops it (and removes its data
// directory, unless $DEPLOYBOT_CONTROLPLANE_KEEP is set) when the test ends.
// It builds the binaries first if needed, and fails the test, naming the build
// command, if they cannot be had. Interrupting the test binary (SIGINT,
// SIGTERM, SIGHUP) kills every process it started.
func Start(t testing.TB, opts ...Option) *ControlPlane {
	t.Helper()
	installInterruptHandler()

	var dir string
	if os.Getenv(KeepEnv) != "" {
		d, err := os.MkdirTemp("", "controlplane-")
		if err != nil {
			t.Fatalf("controlplane: creating data dir: %v", err)
		}
		dir = d
		t.Logf("controlplane: data dir %s is kept ($%s is set)", dir, KeepEnv)
	} else {
		dir = t.TempDir()
	}

	start := time.Now()
	cp, err := StartProcess(context.Background(), dir, opts...)
	if err != nil {
		t.Fatalf("controlplane: %v", err)
	}
	// Registered after t.TempDir, so it runs before the directory is removed.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("controlplane: control-plane logs in %s; their last lines:\n%s", dir, cp.LogTails(25))
		}
		cp.Stop()
	})
	t.Logf("controlplane: control plane up in %v at %s (kubeconfig %s)",
		time.Since(start).Round(time.Millisecond), cp.host, cp.kubeconfig)
	return cp
}

// StartProcess starts a control plane with its data in dir (created if
// missing) and returns once the API server is ready and the kwok node is
// Ready. ctx bounds the start only; the processes run until Stop. Unlike
// Start it installs no signal handler: callers stop it themselves. Its
// processes get SIGKILL should the calling process die.
func StartProcess(ctx context.Context, dir string, opts ...Option) (cp *ControlPlane, err error) {
	o := options{users: slices.Clone(DefaultUsers), startTimeout: 2 * time.Minute, progress: os.Stderr}
	for _, opt := range opts {
		opt(&o)
	}
	binDir := o.binDir
	if binDir == "" {
		if binDir, err = FindBinaries(o.progress); err != nil {
			return nil, err
		}
	} else if err := checkBinDir(binDir); err != nil {
		return nil, err
	}

	ctx, cancel := context.WithTimeout(ctx, o.startTimeout)
	defer cancel()

	if dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	// The ports are chosen free but released before the programs bind them,
	// so a concurrent test may take one first: then start afresh.
	for attempt := 1; ; attempt++ {
		cp, err = start(ctx, dir, binDir, &o)
		if err == nil {
			return cp, nil
		}
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			return nil, err
		}
		if err := cleanDataDir(dir); err != nil {
			return nil, err
		}
	}
}

// errPortTaken marks a start that failed because a port was taken.
var errPortTaken = errors.New("a port was taken by another process")

// cleanDataDir removes what start created in dir.
func cleanDataDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("cleaning data dir: %w", err)
	}
	for _, e := range entries {
		switch name := e.Name(); {
		case slices.Contains(dataSubdirs, name), name == ".kube", strings.HasPrefix(name, "kubeconfig"):
			if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
				return fmt.Errorf("cleaning data dir: %w", err)
			}
		}
	}
	return nil
}

var dataSubdirs = []string{"etcd", "pki", "logs", "kwok"}

// start is one attempt of StartProcess.
func start(ctx context.Context, dir, binDir string, o *options) (cp *ControlPlane, err error) {
	for _, sub := range dataSubdirs {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("creating data dir: %w", err)
		}
	}
	pki, err := newPKI(filepath.Join(dir, "pki"))
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	etcdClient, etcdPeer, apiPort := ports[0], ports[1], ports[2]

	cp = &ControlPlane{
		dir:    dir,
		binDir: binDir,
		host:   fmt.Sprintf("https://127.0.0.1:%d", apiPort),
		caPEM:  pki.caPEM,
		users:  map[string]User{},
		tokens: map[string]string{},
	}
	defer func() {
		if err != nil {
			cp.Stop()
			if cp.logsContain("address already in use") {
				err = fmt.Errorf("%w: %w", errPortTaken, err)
			}
			err = fmt.Errorf("%w\ncontrol-plane logs in %s; their last lines:\n%s", err, dir, cp.LogTails(20))
		}
	}()

	tokenFile := filepath.Join(dir, "pki", "tokens.csv")
	if err := cp.writeTokens(tokenFile, append(slices.Clone(o.users), componentUsers...)); err != nil {
		return cp, err
	}
	kubeconfigs := map[string]string{}
	for name := range cp.tokens {
		path := filepath.Join(dir, "kubeconfig-"+strings.ReplaceAll(name, ":", "-"))
		if err := cp.writeKubeconfig(path, name); err != nil {
			return cp, err
		}
		kubeconfigs[name] = path
	}
	cp.kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := cp.writeKubeconfig(cp.kubeconfig, "admin"); err != nil {
		return cp, err
	}

	run := func(name string, args []string, env ...string) error {
		p, err := startProcess(name, filepath.Join(binDir, name), args, env, filepath.Join(dir, "logs"))
		if err != nil {
			return err
		}
		cp.procs = append(cp.procs, p)
		return nil
	}

	// etcd, first: stopAll stops procs[0] last.
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPeer)
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", etcdClient)
	// A unique member name lets the readiness check tell our etcd from one
	// that a concurrent test started on the same port.
	etcdName, err := randomHex(6)
	if err != nil {
		return cp, err
	}
	etcdName = "controlplane-" + etcdName
	if err := run("etcd", []string{
		"--name=" + etcdName,
		"--data-dir=" + filepath.Join(dir, "etcd"),
		"--listen-client-urls=" + clientURL,
		"--advertise-client-urls=" + clientURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=" + etcdName + "=" + peerURL,
		"--unsafe-no-fsync",
		"--log-level=warn",
	}); err != nil {
		return cp, err
	}
	if err := cp.waitHTTP(ctx, "etcd member "+etcdName, http.MethodPost, clientURL+"/v3/cluster/member/list", nil, func(body string) bool {
		return strings.Contains(body, `"name":"`+etcdName+`"`)
	}); err != nil {
		return cp, err
	}
	if err := cp.waitHTTP(ctx, "etcd", http.MethodGet, clientURL+"/health", nil, func(body string) bool {
		return strings.Contains(body, `"health":"true"`)
	}); err != nil {
		return cp, err
	}

	if err := run("kube-apiserver", []string{
		"--etcd-servers=" + clientURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", apiPort),
		"--tls-cert-file=" + pki.servingCert,
		"--tls-private-key-file=" + pki.servKey,
		"--client-ca-file=" + pki.caCert,
		"--token-auth-file=" + tokenFile,
		"--authorization-mode=Node,RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + pki.saKey,
		"--service-account-signing-key-file=" + pki.saKey,
		"--service-cluster-ip-range=" + serviceCIDR,
		"--endpoint-reconciler-type=none",
		"--allow-privileged=true",
		"--profiling=false",
		"--cert-dir=" + filepath.Join(dir, "pki", "kube-apiserver"),
	}); err != nil {
		return cp, err
	}
	adminClient, err := cp.httpClient("admin")
	if err != nil {
		return cp, err
	}
	if err := cp.waitHTTP(ctx, "kube-apiserver", http.MethodGet, cp.host+"/readyz", adminClient, func(body string) bool {
		return strings.TrimSpace(body) == "ok"
	}); err != nil {
		return cp, err
	}

	if err := run("kube-controller-manager", []string{
		"--kubeconfig=" + kubeconfigs["system:kube-controller-manager"],
		"--bind-address=127.0.0.1",
		"--secure-port=0", // no serving: one port fewer to race for
		"--leader-elect=false",
		"--service-account-private-key-file=" + pki.saKey,
		"--root-ca-file=" + pki.caCert,
		"--cluster-signing-cert-file=" + pki.caCert,
		"--cluster-signing-key-file=" + pki.caKey,
		"--node-monitor-period=2s",
	}); err != nil {
		return cp, err
	}
	if err := run("kube-scheduler", []string{
		"--kubeconfig=" + kubeconfigs["system:kube-scheduler"],
		"--bind-address=127.0.0.1",
		"--secure-port=0",
		"--leader-elect=false",
	}); err != nil {
		return cp, err
	}
	kwokConfig := filepath.Join(dir, "kwok", "kwok.yaml")
	if err := writeKwokConfig(binDir, kwokConfig); err != nil {
		return cp, err
	}
	if err := run("kwok", []string{
		"--kubeconfig=" + kubeconfigs["system:kwok-controller"],
		"--config=" + kwokConfig,
		"--manage-nodes-with-annotation-selector=" + KwokNodeAnnotation + "=fake",
		"--node-ip=127.0.0.1",
		"--cidr=" + podCIDR,
		"--node-lease-duration-seconds=40",
	}, "KWOK_WORKDIR="+filepath.Join(dir, "kwok")); err != nil {
		return cp, err
	}

	cs, err := kubernetes.NewForConfig(cp.AdminConfig())
	if err != nil {
		return cp, fmt.Errorf("admin client: %w", err)
	}
	if err := createKwokNode(ctx, cs, NodeName); err != nil {
		return cp, err
	}
	if err := cp.poll(ctx, "node "+NodeName+" Ready without not-ready taint", func() (bool, error) {
		n, err := cs.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return false, nil // not there yet: keep polling until the deadline
		}
		return nodeReady(n), nil
	}); err != nil {
		return cp, err
	}
	if err := cp.waitServiceAccount(ctx, cs, metav1.NamespaceDefault); err != nil {
		return cp, err
	}
	return cp, nil
}

// Stop stops every process, SIGTERM first and SIGKILL after a grace period,
// and waits for them. It is idempotent.
func (c *ControlPlane) Stop() {
	c.stopOnce.Do(func() { stopAll(c.procs, 5*time.Second) })
}

// AdminConfig returns a client config for the admin user (system:masters).
func (c *ControlPlane) AdminConfig() *rest.Config { return c.UserConfig("admin") }

// UserConfig returns a client config authenticating as the named user with its
// bearer token. It panics for a user the control plane does not know (add one
// with WithUser).
func (c *ControlPlane) UserConfig(name string) *rest.Config {
	token, ok := c.tokens[name]
	if !ok {
		panic(fmt.Sprintf("controlplane: unknown user %q (add it with controlplane.WithUser)", name))
	}
	return &rest.Config{
		Host:            c.host,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: slices.Clone(c.caPEM)},
		QPS:             100,
		Burst:           200,
	}
}

// Users returns the users the API server accepts (without the components').
func (c *ControlPlane) Users() []User {
	var us []User
	for _, u := range c.users {
		us = append(us, u)
	}
	slices.SortFunc(us, func(a, b User) int { return strings.Compare(a.Name, b.Name) })
	return us
}

// Token returns the named user's bearer token, if the user exists.
func (c *ControlPlane) Token(name string) (string, bool) {
	t, ok := c.tokens[name]
	return t, ok
}

// Host returns the API server URL (https://127.0.0.1:PORT).
func (c *ControlPlane) Host() string { return c.host }

// CAPEM returns the PEM CA certificate that signed the API server's certificate.
func (c *ControlPlane) CAPEM() []byte { return slices.Clone(c.caPEM) }

// KubeconfigPath returns the path of an admin kubeconfig file in the data dir.
func (c *ControlPlane) KubeconfigPath() string { return c.kubeconfig }

// UserKubeconfigPath returns the path of a kubeconfig file for the named user
// (one is written for every user), or "" for an unknown user.
func (c *ControlPlane) UserKubeconfigPath(name string) string {
	if _, ok := c.tokens[name]; !ok {
		return ""
	}
	return filepath.Join(c.dir, "kubeconfig-"+strings.ReplaceAll(name, ":", "-"))
}

// BinDir returns the directory holding the binaries, kubectl included.
func (c *ControlPlane) BinDir() string { return c.binDir }

// Dir returns the data directory: logs/ (one file per process), pki/,
// etcd/, kwok/ and the kubeconfig files.
func (c *ControlPlane) Dir() string { return c.dir }

// Kubectl returns a command running this build's kubectl as admin, for use
// as an oracle. Add --kubeconfig=UserKubeconfigPath(name) to act as another
// user (a later --kubeconfig wins).
func (c *ControlPlane) Kubectl(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, "kubectl"),
		append([]string{"--kubeconfig=" + c.kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.kubeconfig, "HOME="+c.dir)
	return cmd
}

// CreateNamespace creates a namespace and waits until its default service
// account exists, so pods can be created in it at once.
func (c *ControlPlane) CreateNamespace(ctx context.Context, name string) error {
	cs, err := kubernetes.NewForConfig(c.AdminConfig())
	if err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	return c.waitServiceAccount(ctx, cs, name)
}

// logsContain reports whether any process's log contains s.
func (c *ControlPlane) logsContain(s string) bool {
	for _, p := range c.procs {
		if data, err := os.ReadFile(p.logPath); err == nil && strings.Contains(string(data), s) {
			return true
		}
	}
	return false
}

// LogTails returns the last n lines of each process's log.
func (c *ControlPlane) LogTails(n int) string {
	var b strings.Builder
	for _, p := range c.procs {
		data, err := os.ReadFile(p.logPath)
		if err != nil {
			fmt.Fprintf(&b, "=== %s: %v\n", p.name, err)
			continue
		}
		fmt.Fprintf(&b, "=== %s (%s)\n%s\n", p.name, p.logPath, tail(string(data), n))
	}
	return b.String()
}

func (c *ControlPlane) waitServiceAccount(ctx context.Context, cs kubernetes.Interface, ns string) error {
	return c.poll(ctx, "service account "+ns+"/default", func() (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
}

// writeTokens generates a token for each user and writes kube-apiserver's
// --token-auth-file: token,user,uid,"group1,group2".
func (c *ControlPlane) writeTokens(path string, users []User) error {
	var b strings.Builder
	for _, u := range users {
		token, err := randomHex(16)
		if err != nil {
			return err
		}
		c.tokens[u.Name] = token
		if !slices.ContainsFunc(componentUsers, func(cu User) bool { return cu.Name == u.Name }) {
			c.users[u.Name] = u
		}
		fmt.Fprintf(&b, "%s,%s,%s,%q\n", token, u.Name, u.Name, strings.Join(u.Groups, ","))
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("writing token file: %w", err)
	}
	return nil
}

// randomHex returns n random bytes in hex.
func randomHex(n int) (string, error) {
	raw := make([]byte, n)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return hex.EncodeToString(raw), nil
}

func (c *ControlPlane) writeKubeconfig(path, user string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["clustertest"] = &clientcmdapi.Cluster{Server: c.host, CertificateAuthorityData: c.caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: c.tokens[user]}
	cfg.Contexts["clustertest"] = &clientcmdapi.Context{Cluster: "clustertest", AuthInfo: user, Namespace: metav1.NamespaceDefault}
	cfg.CurrentContext = "clustertest"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("writing kubeconfig for %s: %w", user, err)
	}
	return nil
}

// httpClient returns an HTTP client trusting the control plane's CA that
// sends the user's token.
func (c *ControlPlane) httpClient(user string) (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(c.caPEM) {
		return nil, errors.New("parsing the control plane's CA certificate")
	}
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &bearerTransport{
			token: c.tokens[user],
			base:  &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
		},
	}, nil
}

type bearerTransport struct {
	token string
	base  http.RoundTripper
}

func (b *bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

// waitHTTP polls url until it answers 200 with a body ok accepts.
func (c *ControlPlane) waitHTTP(ctx context.Context, what, method, url string, client *http.Client, ok func(string) bool) error {
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	var last string
	err := c.poll(ctx, what+" ready ("+url+")", func() (bool, error) {
		var reqBody io.Reader
		if method == http.MethodPost {
			reqBody = strings.NewReader("{}")
		}
		req, err := http.NewRequestWithContext(ctx, method, url, reqBody)
		if err != nil {
			return false, fmt.Errorf("request for %s: %w", url, err)
		}
		resp, err := client.Do(req)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		defer func() { _ = resp.Body.Close() }()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		last = fmt.Sprintf("%s: %s", resp.Status, tail(string(body), 10))
		return resp.StatusCode == http.StatusOK && ok(string(body)), nil
	})
	if err != nil && last != "" {
		return fmt.Errorf("%w (last answer: %s)", err, last)
	}
	return err
}

// poll calls cond every 100ms until it returns true or an error, ctx ends,
// or one of the processes exits.
func (c *ControlPlane) poll(ctx context.Context, what string, cond func() (bool, error)) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, p := range c.procs {
			if gone, err := p.exited(); gone {
				return fmt.Errorf("waiting for %s: %w", what, err)
			}
		}
		done, err := cond()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-tick.C:
		}
	}
}
