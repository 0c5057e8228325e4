package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/plan"
	"github.com/deploybot/deploybot/store"
)

// Environment of a child process of TestFileStoreCASAcrossProcesses.
const (
	casChildEnv = "DEPLOYBOT_E2E_CAS_STATE" // the shared state file
	casIDEnv    = "DEPLOYBOT_E2E_CAS_ID"    // the request both children race for
)

// Lines a child prints on stdout.
const (
	casReady = "ready"
	casWon   = "won"
	casLost  = "lost"
)

// TestFileStoreCASAcrossProcesses runs two OS processes (this test binary,
// re-executed) that both try to move the same Approved request to Executing
// in one shared state file, the situation of two bot replicas receiving the
// same approval: exactly one may win, every round.
func TestFileStoreCASAcrossProcesses(t *testing.T) {
	t.Parallel()
	const rounds = 20
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("finding the test binary: %v", err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	ctx := testContext(t, 2*time.Minute)

	for round := 1; round <= rounds; round++ {
		s, err := store.OpenFile(path)
		if err != nil {
			t.Fatal(err)
		}
		r := &store.Request{
			State:     store.Approved,
			Requester: store.Person{Platform: "terminal", ChatID: "alice", Name: "alice", User: "alice"},
			Command:   "undo worker prod",
			Plan:      plan.Plan{Action: plan.ActionRollback, Env: "prod", Namespace: "packit--prod"},
			Locks:     []string{fmt.Sprintf("prod/worker-%d", round)},
		}
		r.PlanHash = r.Plan.Hash()
		if err := s.Create(ctx, r); err != nil {
			t.Fatalf("round %d: creating the request: %v", round, err)
		}

		outs := raceChildren(ctx, t, exe, path, r.ID)

		var won, lost int
		for _, out := range outs {
			switch {
			case out == casWon:
				won++
			case strings.HasPrefix(out, casLost+" "):
				lost++
				// The loser must be told why in words, not a bare conflict.
				if !strings.Contains(out, "#"+r.ID) {
					t.Errorf("round %d: the losing process said %q, want the request's state in words", round, out)
				}
			default:
				t.Fatalf("round %d: a child process said %q", round, out)
			}
		}
		if won != 1 || lost != 1 {
			t.Fatalf("round %d: %d processes won and %d lost, want exactly one winner: %q", round, won, lost, outs)
		}
		got, err := s.Get(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != store.Executing || got.Version != 2 {
			t.Fatalf("round %d: request is %s at version %d, want Executing at version 2 (one successful swap)", round, got.State, got.Version)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d rounds, one winner each", rounds)
}

// raceChildren starts two children, waits until both have opened the store,
// then releases them together and returns each one's verdict line.
func raceChildren(ctx context.Context, t *testing.T, exe, path, id string) []string {
	t.Helper()
	type child struct {
		cmd    *exec.Cmd
		stdin  io.WriteCloser
		stdout *bufio.Reader
		stderr strings.Builder
	}
	children := make([]*child, 2)
	for i := range children {
		c := &child{cmd: exec.CommandContext(ctx, exe, "-test.run=^$")}
		c.cmd.Env = append(os.Environ(), casChildEnv+"="+path, casIDEnv+"="+id)
		c.cmd.Stderr = &c.stderr
		var err error
		if c.stdin, err = c.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		out, err := c.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		c.stdout = bufio.NewReader(out)
		if err := c.cmd.Start(); err != nil {
			t.Fatalf("starting a child process: %v", err)
		}
		children[i] = c
	}
	defer func() {
		for _, c := range children {
			_ = c.stdin.Close()
			_ = c.cmd.Wait()
		}
	}()
	for i, c := range children {
		line, err := c.stdout.ReadString('\n')
		if strings.TrimSpace(line) != casReady {
			t.Fatalf("child %d did not get ready: %q, %v; stderr:\n%s", i, line, err, c.stderr.String())
		}
	}
	// Closing stdin is the starting shot; both read EOF at about the same time.
	for _, c := range children {
		_ = c.stdin.Close()
	}
	outs := make([]string, len(children))
	var wg sync.WaitGroup
	for i, c := range children {
		wg.Go(func() {
			line, _ := c.stdout.ReadString('\n')
			err := c.cmd.Wait()
			outs[i] = strings.TrimSpace(line)
			if err != nil {
				outs[i] = fmt.Sprintf("exit %v: %s; stderr: %s", err, outs[i], c.stderr.String())
			}
		})
	}
	wg.Wait()
	return outs
}

// casChild is a child process's whole life: open the shared store, say
// ready, wait for the starting shot (stdin closing), then try the
// Approved → Executing swap and say whether it won.
func casChild() int {
	path, id := os.Getenv(casChildEnv), os.Getenv(casIDEnv)
	s, err := store.OpenFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Close()
	fmt.Println(casReady)
	_, _ = io.Copy(io.Discard, os.Stdin)

	_, err = s.Update(context.Background(), id, func(r *store.Request) error {
		return store.Transition(r, store.Executing)
	})
	var te *store.TransitionError
	switch {
	case err == nil:
		fmt.Println(casWon)
	case errors.As(err, &te):
		fmt.Println(casLost + " " + err.Error())
	default:
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
