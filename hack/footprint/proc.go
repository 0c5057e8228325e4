package main

import (
	"bufio"
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

// reaper owns every child process: each runs in its own process group and
// is tracked until it has been waited for, so close (on exit, on error, on
// a signal) can SIGKILL whatever is left. It also runs the cleanups
// (temporary directories, the control plane) in reverse order of
// registration.
type reaper struct {
	mu        sync.Mutex
	groups    map[int]struct{}
	cleanups  []func()
	closed    bool
	closeOnce sync.Once
}

func newReaper() *reaper { return &reaper{groups: map[int]struct{}{}} }

// start starts cmd as the leader of a new process group. The child also
// gets SIGKILL should this process die without cleaning up (Pdeathsig).
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
		return err
	}
	r.groups[cmd.Process.Pid] = struct{}{}
	return nil
}

// reap kills what is left of the group pid leads and forgets it; call it
// once the leader has been waited for.
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

// close SIGKILLs every tracked process group, then runs the cleanups, last
// registered first. Later and concurrent calls wait for the first to finish.
func (r *reaper) close() { r.closeOnce.Do(r.doClose) }

func (r *reaper) doClose() {
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
}

// run runs cmd to completion in its own process group; ctx ending kills the
// group. what names the command in errors, which carry its output's tail.
func (r *reaper) run(ctx context.Context, what string, cmd *exec.Cmd) ([]byte, error) {
	var out strings.Builder
	var stdout strings.Builder
	if cmd.Stdout == nil {
		cmd.Stdout = &stdout
	}
	if cmd.Stderr == nil {
		cmd.Stderr = &out
	}
	cmd.WaitDelay = 5 * time.Second
	if err := r.start(cmd); err != nil {
		return nil, fmt.Errorf("%s: starting %s: %w", what, cmd.Path, err)
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
		msg := strings.TrimSpace(out.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w", what, ctx.Err())
		}
		err = fmt.Errorf("%s: %s %s: %w", what, cmd.Path, strings.Join(cmd.Args[1:], " "), err)
		if msg != "" {
			err = fmt.Errorf("%w\n%s", err, tailLines(msg, 40))
		}
		return nil, err
	}
	return []byte(stdout.String()), nil
}

// bot is one running deploybot process.
type bot struct {
	r       *reaper
	cmd     *exec.Cmd
	pid     int
	started time.Time // just before exec
	logPath string
	addr    string // host:port of its HTTP listener
	done    chan struct{}
	err     error // Wait's result, valid after done
}

// startBot execs bin with args (its stdout and stderr go to logPath) in a
// process group of its own.
func (r *reaper) startBot(bin string, args, env []string, logPath, addr string) (*bot, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating the log file of deploybot: %w", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Dir = filepath.Dir(logPath)
	cmd.Stdout = f
	cmd.Stderr = f
	b := &bot{r: r, cmd: cmd, logPath: logPath, addr: addr, done: make(chan struct{})}
	b.started = time.Now()
	if err := r.start(cmd); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("starting %s %s: %w", bin, strings.Join(args, " "), err)
	}
	b.pid = cmd.Process.Pid
	go func() {
		b.err = cmd.Wait()
		_ = f.Close()
		close(b.done)
	}()
	return b, nil
}

// exited returns an error describing the exit when the process has ended,
// else nil.
func (b *bot) exited() error {
	select {
	case <-b.done:
		return fmt.Errorf("deploybot (%s) exited: %v; the end of its log (%s):\n%s",
			strings.Join(b.cmd.Args, " "), b.err, b.logPath, b.logTail(20))
	default:
		return nil
	}
}

// logTail returns the last n lines of the process's log.
func (b *bot) logTail(n int) string {
	data, err := os.ReadFile(b.logPath)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return tailLines(string(data), n)
}

// stop asks the process to end (SIGTERM to its group), SIGKILLs the group
// after grace, and waits.
func (b *bot) stop(grace time.Duration) {
	_ = syscall.Kill(-b.pid, syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(grace):
	}
	_ = syscall.Kill(-b.pid, syscall.SIGKILL)
	<-b.done
	b.r.reap(b.pid)
}

// waitReady polls GET /readyz every 2 ms until it answers 200 and returns
// the time from exec to that answer.
func (b *bot) waitReady(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	url := "http://" + b.addr + "/readyz"
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	deadline := b.started.Add(timeout)
	last := "no answer yet"
	for {
		if err := b.exited(); err != nil {
			return 0, fmt.Errorf("waiting for %s to answer 200: %w", url, err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return 0, fmt.Errorf("building the request for %s: %w", url, err)
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(b.started), nil
			}
			last = resp.Status + ": " + strings.TrimSpace(string(body))
		} else {
			last = err.Error()
		}
		if ctx.Err() != nil {
			return 0, fmt.Errorf("waiting for %s: %w", url, ctx.Err())
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s did not answer 200 within %v of exec (last answer: %s); the end of deploybot's log (%s):\n%s",
				url, timeout, last, b.logPath, b.logTail(20))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// memory is what /proc/PID/status says of a process's resident memory.
type memory struct {
	rss, hwm int64 // bytes: VmRSS now, VmHWM (the peak)
}

// readMemory reads VmRSS and VmHWM of the running process.
func (b *bot) readMemory() (memory, error) {
	if err := b.exited(); err != nil {
		return memory{}, fmt.Errorf("reading the memory of deploybot: %w", err)
	}
	path := "/proc/" + strconv.Itoa(b.pid) + "/status"
	f, err := os.Open(path)
	if err != nil {
		return memory{}, fmt.Errorf("reading the memory of deploybot: %w", err)
	}
	defer func() { _ = f.Close() }()
	var m memory
	var haveRSS, haveHWM bool
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		fields := strings.Fields(val)
		if len(fields) != 2 || fields[1] != "kB" {
			return memory{}, fmt.Errorf("%s: unexpected %s line %q", path, key, sc.Text())
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return memory{}, fmt.Errorf("%s: parsing %s: %w", path, key, err)
		}
		if key == "VmRSS" {
			m.rss, haveRSS = kb<<10, true
		} else {
			m.hwm, haveHWM = kb<<10, true
		}
	}
	if err := sc.Err(); err != nil {
		return memory{}, fmt.Errorf("reading %s: %w", path, err)
	}
	if !haveRSS || !haveHWM {
		return memory{}, fmt.Errorf("%s has no VmRSS or VmHWM line (is this Linux?)", path)
	}
	return m, nil
}

// serveBot starts deploybot on a free 127.0.0.1 port (args gets the listen
// address) and waits for /readyz. A port taken between choosing and binding
// it is retried.
func serveBot(ctx context.Context, r *reaper, bin string, args func(addr string) []string, env []string, logPath string, timeout time.Duration) (*bot, time.Duration, error) {
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, 0, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		b, err := r.startBot(bin, args(addr), env, logPath, addr)
		if err != nil {
			return nil, 0, err
		}
		took, err := b.waitReady(ctx, timeout)
		if err == nil {
			return b, took, nil
		}
		b.stop(5 * time.Second)
		if attempt < 3 && strings.Contains(b.logTail(50), "address already in use") {
			continue
		}
		return nil, 0, err
	}
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
// configure deploybot behind our back (chat secrets, kubeconfig, in-cluster
// settings), plus extra.
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
