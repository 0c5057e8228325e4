package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// reaper owns every child process: each runs in a process group of its own
// and is SIGKILLed on close (on exit, on error, on a signal), and the
// cleanups (temporary directories) run in reverse order of registration.
// Adapted from hack/footprint.
type reaper struct {
	mu        sync.Mutex
	groups    map[int]struct{}
	cleanups  []func()
	closed    bool
	closeOnce sync.Once
}

func newReaper() *reaper { return &reaper{groups: map[int]struct{}{}} }

// start starts cmd as the leader of a new process group; the child also
// gets SIGKILL should this process die without cleaning up.
func (r *reaper) start(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("shutting down")
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	r.groups[cmd.Process.Pid] = struct{}{}
	return nil
}

// reap kills what is left of the group pid leads and forgets it.
func (r *reaper) reap(pid int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.groups[pid]; ok {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		delete(r.groups, pid)
	}
}

// onExit registers f to run in close.
func (r *reaper) onExit(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}

// close SIGKILLs every tracked process group, then runs the cleanups.
func (r *reaper) close() {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		for pid := range r.groups {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
		r.groups = map[int]struct{}{}
		cleanups := r.cleanups
		r.cleanups = nil
		r.mu.Unlock()
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	})
}

// run runs cmd to completion in its own process group and returns its
// combined output; ctx ending kills the group.
func (r *reaper) run(ctx context.Context, what string, cmd *exec.Cmd) (string, error) {
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	if err := r.start(cmd); err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	pid := cmd.Process.Pid
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		case <-done:
		}
	}()
	err := cmd.Wait()
	close(done)
	r.reap(pid)
	if err != nil {
		if ctx.Err() != nil {
			return out.String(), fmt.Errorf("%s: %w", what, ctx.Err())
		}
		return out.String(), fmt.Errorf("%s: %s %s: %w\n%s", what, cmd.Path, strings.Join(cmd.Args[1:], " "), err, tailLines(out.String(), 30))
	}
	return out.String(), nil
}

// proc is one running `deploybot serve` process.
type proc struct {
	r       *reaper
	cmd     *exec.Cmd
	pid     int
	started time.Time // just before exec
	logPath string
	addr    string // host:port of its listener
	done    chan struct{}
	exitAt  time.Time
	err     error // Wait's result, valid after done
}

// serveOpts is how one serve process is started.
type serveOpts struct {
	state string   // --state; empty: a fresh temporary one (serve --demo's own)
	env   []string // SLACK_*, DISCORD_* for the child
	extra []string // more serve flags
	name  string   // for the log file
}

// serve starts `deploybot serve --demo` on a free port and waits until
// /readyz answers 200. A port taken meanwhile is retried.
func (p *probe) serve(ctx context.Context, o serveOpts) (*proc, error) {
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		args := []string{"serve", "--demo", "--config", p.config, "--listen", addr, "--log-level", "info"}
		if o.state != "" {
			args = append(args, "--state", o.state)
		}
		args = append(args, o.extra...)
		p.logs++
		logPath := filepath.Join(p.tmp, fmt.Sprintf("%02d-%s.log", p.logs, o.name))
		b, err := p.r.startProc(p.bin, args, childEnv(o.env...), logPath, addr)
		if err != nil {
			return nil, err
		}
		if err := b.waitReady(ctx, 60*time.Second); err == nil {
			return b, nil
		} else if attempt < 3 && strings.Contains(b.logTail(50), "address already in use") {
			b.kill()
			continue
		} else {
			b.kill()
			return nil, err
		}
	}
}

// startProc execs bin with args, its output going to logPath.
func (r *reaper) startProc(bin string, args, env []string, logPath, addr string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating the log file of deploybot: %w", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Dir = filepath.Dir(logPath)
	cmd.Stdout, cmd.Stderr = f, f
	b := &proc{r: r, cmd: cmd, logPath: logPath, addr: addr, done: make(chan struct{}), started: time.Now()}
	if err := r.start(cmd); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("starting deploybot %s: %w", strings.Join(args, " "), err)
	}
	b.pid = cmd.Process.Pid
	go func() {
		b.err = cmd.Wait()
		b.exitAt = time.Now()
		_ = f.Close()
		close(b.done)
	}()
	return b, nil
}

// exited describes the exit when the process has ended, else nil.
func (b *proc) exited() error {
	select {
	case <-b.done:
		return fmt.Errorf("deploybot exited: %v; the end of its log (%s):\n%s", b.err, b.logPath, b.logTail(20))
	default:
		return nil
	}
}

func (b *proc) logTail(n int) string {
	data, err := os.ReadFile(b.logPath)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return tailLines(string(data), n)
}

// log is the whole log of the process.
func (b *proc) log() string {
	data, _ := os.ReadFile(b.logPath)
	return string(data)
}

// terminate sends SIGTERM to the process (only the process: its group
// would get it from a terminal, a pod gets it alone) and returns how long
// it took to exit, waiting at most limit before SIGKILL.
func (b *proc) terminate(limit time.Duration) (time.Duration, bool) {
	start := time.Now()
	_ = syscall.Kill(b.pid, syscall.SIGTERM)
	select {
	case <-b.done:
		b.r.reap(b.pid)
		return b.exitAt.Sub(start), true
	case <-time.After(limit):
		b.kill()
		return time.Since(start), false
	}
}

// kill is kill -9 of the process group, then waiting for it.
func (b *proc) kill() {
	_ = syscall.Kill(-b.pid, syscall.SIGKILL)
	<-b.done
	b.r.reap(b.pid)
}

// stop ends the process politely, then by force.
func (b *proc) stop() {
	if _, ok := b.terminate(40 * time.Second); !ok {
		logf("deploybot (pid %d) did not exit within 40s of SIGTERM; killed", b.pid)
	}
}

// waitReady polls GET /readyz until it answers 200.
func (b *proc) waitReady(ctx context.Context, timeout time.Duration) error {
	url := "http://" + b.addr + "/readyz"
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	deadline := b.started.Add(timeout)
	last := "no answer yet"
	for {
		if err := b.exited(); err != nil {
			return fmt.Errorf("waiting for %s: %w", url, err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("building the request for %s: %w", url, err)
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status + ": " + strings.TrimSpace(string(body))
		} else {
			last = err.Error()
		}
		if ctx.Err() != nil {
			return fmt.Errorf("waiting for %s: %w", url, ctx.Err())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer 200 within %v (last: %s); the end of deploybot's log (%s):\n%s", url, timeout, last, b.logPath, b.logTail(20))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fds counts the open file descriptors of the process.
func (b *proc) fds() int {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(b.pid) + "/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// metric returns the lines of GET /metrics that start with prefix.
func (b *proc) metric(prefix string) []string {
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://" + b.addr + "/metrics")
	if err != nil {
		return []string{"(GET /metrics: " + err.Error() + ")"}
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	var out []string
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	return port, nil
}

// childEnv is this process's environment without anything that would
// configure deploybot behind our back, plus extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "SLACK_"), strings.HasPrefix(name, "DISCORD_"),
			strings.HasPrefix(name, "KUBERNETES_"), strings.HasPrefix(name, "DEPLOYBOT_"),
			name == "KUBECONFIG", name == "POD_NAME", name == "POD_NAMESPACE", name == "XDG_STATE_HOME":
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// tailLines returns the last n lines of s.
func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
