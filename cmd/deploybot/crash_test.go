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

// answers counts the response_url posts per trigger, slowly enough (as
// Slack's own latency would) that the bot falls behind the acks.
type answers struct {
	mu    sync.Mutex
	by    map[string][]string
	delay time.Duration
}

func (a *answers) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	time.Sleep(a.delay)
	a.mu.Lock()
	a.by[strings.TrimPrefix(r.URL.Path, "/")] = append(a.by[strings.TrimPrefix(r.URL.Path, "/")], string(body))
	a.mu.Unlock()
	_, _ = io.WriteString(w, "ok")
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
	hooks := &answers{by: map[string][]string{}, delay: 40 * time.Millisecond} // the bot falls behind the acks
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
	t.Logf("%d commands acknowledged in %v; %d answered before the kill -9", n, acked.Round(time.Millisecond), before)

	restarted := time.Now()
	startServe(t, addr, state)
	poll.Until(t, 3*time.Minute, "every acknowledged command answered", func() (bool, string) {
		answered, notes, _ := hooks.count()
		return answered == n, fmt.Sprintf("%d of %d answered (%d with the restart note)", answered, n, notes)
	})
	answered, notes, twice := hooks.count()
	t.Logf("after the restart: all %d answered within %v (%d before the kill, %d cut off mid-answer got the restart note)",
		answered, time.Since(restarted).Round(time.Millisecond), before, notes)
	if twice > 0 {
		t.Errorf("%d commands were answered twice", twice)
	}
}
