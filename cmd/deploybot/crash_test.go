package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/deploybot/deploybot/internal/poll"
)

// crashChildEnv makes the test binary run deploybot itself (main) with the
// arguments in the variable, JSON-encoded, so a test can kill -9 a real
// process.
const crashChildEnv = "DEPLOYBOT_TEST_MAIN_ARGS"

func TestMain(m *testing.M) {
	if raw := os.Getenv(crashChildEnv); raw != "" {
		var args []string
		if err := json.Unmarshal([]byte(raw), &args); err != nil {
			fmt.Fprintln(os.Stderr, "bad", crashChildEnv, err)
			os.Exit(2)
		}
		os.Args = append([]string{"deploybot"}, args...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// answers counts the response_url posts per trigger. Until release, every
// post is held unanswered (as a Slack that has stopped answering): the
// bot's workers all wait on one, so however fast or slow the machine, the
// commands acknowledged meanwhile are still unanswered at the kill. A post
// held across the kill came from the dead process and is not counted.
type answers struct {
	mu      sync.Mutex
	by      map[string][]string
	gate    chan struct{} // closed by release
	epoch   int           // bumped by release
	waiting int           // posts held now
}

func newAnswers() *answers { return &answers{by: map[string][]string{}, gate: make(chan struct{})} }

func (a *answers) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	epoch, gate := a.epoch, a.gate
	a.waiting++
	a.mu.Unlock()
	<-gate
	body, err := io.ReadAll(r.Body)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.waiting--
	if err != nil || epoch != a.epoch {
		return // from before the release: its sender is gone
	}
	a.by[strings.TrimPrefix(r.URL.Path, "/")] = append(a.by[strings.TrimPrefix(r.URL.Path, "/")], string(body))
	_, _ = io.WriteString(w, "ok")
}

// release ends the hold: posts from now on are answered and counted.
func (a *answers) release() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.epoch++
	close(a.gate)
	a.gate = make(chan struct{})
	close(a.gate)
}

func (a *answers) held() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.waiting
}

func (a *answers) count() (answered, notes, twice int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, msgs := range a.by {
		answered++
		helps := 0
		for _, m := range msgs {
			switch {
			case strings.Contains(m, "restarted while answering"):
				notes++
			case strings.Contains(m, "deploybot commands"):
				helps++
			}
		}
		if helps > 1 {
			twice++
		}
	}
	return answered, notes, twice
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServe runs `deploybot serve --demo` as a child process on state.
func startServe(t *testing.T, addr, state string) *exec.Cmd {
	t.Helper()
	args, _ := json.Marshal([]string{"serve", "--demo", "--state", state, "--listen", addr, "--log-level", "warn"})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+string(args), "SLACK_SIGNING_SECRET="+slackSecret)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() })
	poll.Until(t, 30*time.Second, "serve to answer /readyz", func() (bool, string) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	return cmd
}

// TestCrashAfterAcks: kill -9 of `serve --demo` right after 2,000 signed
// slash commands were acknowledged. Slack never sends an acknowledged
// command again, so the bot must: after the restart every one of them is
// answered, none twice (one cut off mid-answer gets an honest note).
func TestCrashAfterAcks(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts a deploybot process")
	}
	const n = 2000
	state := filepath.Join(t.TempDir(), "state.json")
	hooks := newAnswers()
	srv := httptest.NewServer(hooks)
	defer srv.Close()
	addr := freeAddr(t)
	first := startServe(t, addr, state)

	send := func(i int) int {
		trigger := fmt.Sprintf("crash.%d", i)
		req := slackCommandRequest(addr, "U0NOBODY", "help", srv.URL+"/"+trigger, trigger)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK && len(b) > 0 {
			return -1 // answered "busy" in the body: not acknowledged as accepted
		}
		return resp.StatusCode
	}
	var wg sync.WaitGroup
	work := make(chan int)
	var mu sync.Mutex
	refused := 0
	for range 8 {
		wg.Go(func() {
			for i := range work {
				if code := send(i); code != http.StatusOK {
					mu.Lock()
					refused++
					mu.Unlock()
				}
			}
		})
	}
	start := time.Now()
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	acked := time.Since(start)
	if refused > 0 {
		t.Fatalf("%d of %d commands were not acknowledged", refused, n)
	}
	if err := syscall.Kill(-first.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	before, _, _ := hooks.count()
	inFlight := hooks.held()
	hooks.release()
	t.Logf("%d commands acknowledged in %v; at the kill -9, %d answered and %d answers on their way", n, acked.Round(time.Millisecond), before, inFlight)
	if before != 0 {
		t.Fatalf("%d commands were answered while Slack was held", before)
	}

	restarted := time.Now()
	startServe(t, addr, state)
	poll.Until(t, 3*time.Minute, "every acknowledged command answered", func() (bool, string) {
		answered, notes, _ := hooks.count()
		return answered == n, fmt.Sprintf("%d of %d answered (%d with the restart note)", answered, n, notes)
	})
	answered, notes, twice := hooks.count()
	t.Logf("after the restart: all %d answered within %v (%d cut off mid-answer got the restart note)",
		answered, time.Since(restarted).Round(time.Millisecond), notes)
	if twice > 0 {
		t.Errorf("%d commands were answered twice", twice)
	}
	if notes > inFlight {
		t.Errorf("%d restart notes for %d answers cut off at the kill: a command the bot had not taken up got one", notes, inFlight)
	}
}
