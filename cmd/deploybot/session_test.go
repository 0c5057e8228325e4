package main

import (
	"context"
	"flag"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/demo"
	"github.com/deploybot/deploybot/examples"
)

var transcript = flag.String("transcript", "", "write the scripted session's output to this file")

// chatSession drives `deploybot chat --demo` through a pipe, like a user
// typing, and reads what it prints.
type chatSession struct {
	t    *testing.T
	in   *io.PipeWriter
	out  *output
	done chan error
	mark int
}

type output struct {
	mu     sync.Mutex
	buf    strings.Builder
	change chan struct{}
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	select {
	case o.change <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

func startChat(t *testing.T, args ...string) *chatSession {
	t.Helper()
	pr, pw := io.Pipe()
	s := &chatSession{t: t, in: pw, out: &output{change: make(chan struct{}, 1)}, done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		s.done <- run(ctx, append([]string{"chat", "--demo", "--demo-tick", "10ms", "--demo-self-import", "0"}, args...), pr, s.out, io.Discard)
	}()
	return s
}

func (s *chatSession) send(line string) {
	s.t.Helper()
	if _, err := io.WriteString(s.in, line+"\n"); err != nil {
		s.t.Fatalf("sending %q: %v", line, err)
	}
}

// expect waits until output printed since the last expect matches re and
// returns the submatches.
func (s *chatSession) expect(re string) []string {
	s.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(30 * time.Second)
	for {
		all := s.out.String()
		if loc := rx.FindStringSubmatchIndex(all[s.mark:]); loc != nil {
			m := rx.FindStringSubmatch(all[s.mark:])
			s.mark += loc[1]
			return m
		}
		select {
		case <-s.out.change:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			s.t.Fatalf("no output matching %q; output since the last match:\n%s", re, all[s.mark:])
		}
	}
}

// TestScriptedSession is the acceptance script of the core issue, typed
// through stdin as alice, bob and carol against the demo cluster.
func TestScriptedSession(t *testing.T) {
	cfg, err := config.Parse(examples.Packit)
	if err != nil {
		t.Fatal(err)
	}
	// The demo's digests are deterministic: ask a second demo which prod worker image never becomes Ready.
	d, err := demo.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.TrimPrefix(d.BrokenDigest("packit-worker", "prod"), "sha256:")

	s := startChat(t)
	s.send("status prod")
	s.expect(`packit-worker:\s+image\s+[0-9a-f]{12}`)
	s.send("@carol import prod")
	s.expect(`carol may not do this in prod; the cluster's RBAC refuses`)

	s.send("import prod")
	m := s.expect(`#([a-z2-7]{10}) import prod: waiting for the requester to confirm`)
	id := m[1]
	p := s.expect(`(?s)packit-worker: ([0-9a-f]{12}) → ([0-9a-f]{12}).*expires in 1h`)
	newWorker := p[2]
	s.send("confirm #" + id)
	s.expect(`#` + id + ` import prod: waiting for approval`)
	s.send("approve #" + id)
	s.expect(`you requested #` + id + `; someone else must approve it`)
	s.send("@bob approve #" + id)
	s.expect(`#` + id + ` import prod: succeeded`)
	s.expect(`Done: .*7/7 workloads settled; approved by bob\.`)
	s.send("@bob approve #" + id)
	s.expect(`#` + id + `.*already`)
	s.send("status prod")
	s.expect(`packit-worker:\s+image\s+` + newWorker + `\s+imported [^\n]*\s+source\s+tracking quay.io/packit/packit-worker:prod`)

	// The seed's step 1 (move_stable.py) as one flow: release moves the
	// stable branches of the demo's repositories, its CI builds labelled
	// images from them, and the offered import lists the same commits.
	s.send("release")
	id = s.expect(`#([a-z2-7]{10}) release: waiting for the requester to confirm`)[1]
	s.expect(`(?s)packit-service: stable 62391af → 61099d0\s+6 commits in packit-service 62391af..61099d0:.*sandcastle: stable at f44e79a, even with the rolling branch, skipped`)
	s.send("confirm #" + id)
	s.send("@bob approve #" + id)
	s.expect(`packit-worker image: built [0-9a-f]{12} from 61099d0 after`)
	s.expect(`#` + id + ` release: succeeded`)
	offer := s.expect("Built: `(import prod packit-service packit-worker packit-service-fedmsg packit-dashboard)` imports them.")[1]
	s.send(offer)
	id = s.expect(`#([a-z2-7]{10}) ` + offer + `: waiting for the requester to confirm`)[1]
	newWorker = s.expect(`(?s)packit-worker: [0-9a-f]{12} → ([0-9a-f]{12}).*?built from packit-service@61099d0\s+6 commits in packit-service 62391af..61099d0:`)[1]
	s.send("confirm #" + id)
	s.send("@bob approve #" + id)
	s.expect(`#` + id + ` ` + offer + `: succeeded`)
	s.send("status prod")
	s.expect(`packit-worker:\s+image\s+` + newWorker + `\s+imported [^\n]*\s+source[^\n]*\s+import[^\n]*\s+build\s+built from packit-service@61099d0`)

	s.send("images worker prod")
	hist := s.expect(`(?s)\* ` + newWorker + `.*?\n((?:\s+[0-9a-f]{12}\s+\S+ ago\s*\n)+)`)
	var older string
	for _, l := range strings.Split(hist[1], "\n") {
		if f := strings.Fields(l); len(f) > 0 && !strings.HasPrefix(broken, f[0]) {
			older = f[0]
		}
	}
	if older == "" {
		t.Fatalf("no older, working digest in the history:\n%s", hist[0])
	}
	// As pasted from a phone: curly quotes, and the ID in upper case.
	s.send("revert worker prod “" + older[:7] + "”")
	id = s.expect(`#([a-z2-7]{10}) revert worker prod "` + older[:7] + `": waiting for the requester to confirm`)[1]
	s.send("CONFIRM #" + strings.ToUpper(id))
	s.send("@bob approve #" + id)
	s.expect(`#` + id + ` revert worker prod "\w+": succeeded`)
	s.send("status prod")
	s.expect(`packit-worker:\s+image\s+` + older + `.*\n\s+source\s+pinned quay.io/packit/packit-worker@sha256:` + older)

	s.send("track worker prod")
	id = s.expect(`#([a-z2-7]{10}) track worker prod: waiting for the requester to confirm`)[1]
	s.send("confirm #" + id)
	s.send("@bob approve #" + id)
	s.expect(`#` + id + ` track worker prod: succeeded`)
	s.send("status prod")
	s.expect(`packit-worker:\s+image\s+` + newWorker + `.*\n\s+source\s+tracking quay.io/packit/packit-worker:prod\s+import\s+scheduled off`)

	s.send("undo service prod")
	id = s.expect(`#([a-z2-7]{10}) undo service prod: waiting for the requester to confirm`)[1]
	s.expect(`image-trigger controller would re-apply the tag's image`)
	s.send("confirm #" + id)
	s.send("@bob approve #" + id)
	s.expect(`#` + id + ` undo service prod: succeeded`)
	s.send("history service prod")
	s.expect(`REVISION\s+IMAGE\s+CHANGE-CAUSE`)

	// Promote by digest: prod gets the bytes stg has run healthy for 26h.
	s.send("promote worker stg prod")
	id = s.expect(`#([a-z2-7]{10}) promote worker stg prod: waiting for the requester to confirm`)[1]
	stgWorker := s.expect(`packit-worker: [0-9a-f]{12} → ([0-9a-f]{12})  \(pinned, scheduled import off\)`)[1]
	s.expect(`Promotes what stg runs: ` + stgWorker + ` on 3 workloads, every pod Ready for 26h`)
	s.send("confirm #" + id)
	s.send("@bob approve #" + id)
	s.expect(`#` + id + ` promote worker stg prod: succeeded`)
	s.send("status prod worker")
	s.expect(`packit-worker:\s+image\s+` + stgWorker + `.*\n\s+source\s+pinned quay.io/packit/packit-worker@sha256:` + stgWorker)

	// Hold stg's worker where it is, with why; unhold restores it.
	s.send(`hold stg worker --reason "crash-loops since a244bf4; fix in review" --until 2d`)
	id = s.expect(`#([a-z2-7]{10}) hold stg worker --reason "crash-loops since a244bf4; fix in review" --until 2d: waiting for the requester to confirm`)[1]
	s.expect(`packit-worker: held at [0-9a-f]{12} until [^\n]*, then unheld by itself  \(scheduled import on → off, image triggers paused: deployment/packit-service-beat, statefulset/packit-worker-long-running, statefulset/packit-worker-short-running\)`)
	s.send("confirm #" + id)
	s.expect(`#` + id + ` hold stg worker [^\n]*: succeeded`)
	s.send("holds")
	s.expect(`stg packit-worker: held by alice since [^\n]* until [^\n]*: crash-loops since a244bf4; fix in review`)
	s.send("track worker stg")
	s.expect("A held service changes only through `unhold stg packit-worker`.")
	s.send("unhold stg worker")
	id = s.expect(`#([a-z2-7]{10}) unhold stg worker: waiting for the requester to confirm`)[1]
	s.send("confirm #" + id)
	s.expect(`#` + id + ` unhold stg worker: succeeded`)
	s.send("status stg worker")
	s.expect(`source\s+tracking quay.io/packit/packit-worker:stg\s+import\s+scheduled on`)

	// Refusals: each says why and opens nothing.
	s.send("import prod servce")
	s.expect(`Unknown service "servce". Did you mean service \(packit-service\)\?`)
	s.send("revert worker prod sha256:12345")
	s.expect(`Malformed digest "sha256:12345"`)
	s.send(`status "prod`)
	s.expect(`Unbalanced quotes`)
	s.send("pending")
	s.send("audit 5")
	s.expect(`Last 5 audit events`)
	s.send("status")
	s.expect(`status of every environment`)

	if err := s.in.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("chat ended with %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("chat did not end after its input closed")
	}
	if *transcript != "" {
		if err := os.WriteFile(*transcript, []byte(s.out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestChatExitsAtEndOfInput: piped input is read to its end; the chat
// returns 0 once running work has settled.
func TestChatExitsAtEndOfInput(t *testing.T) {
	var out output
	out.change = make(chan struct{}, 1)
	in := strings.NewReader("import stg worker\nconfirm\n")
	if err := run(context.Background(), []string{"chat", "--demo", "--demo-tick", "10ms"}, in, &out, io.Discard); err != nil {
		t.Fatalf("chat: %v", err)
	}
	if !regexp.MustCompile(`import stg worker: succeeded`).MatchString(out.String()) {
		t.Errorf("the chat returned before the import settled:\n%s", out.String())
	}
}

// TestVersionAndUsage: the non-chat entry points.
func TestVersionAndUsage(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), []string{"version"}, nil, &out, io.Discard); err != nil || !strings.HasPrefix(out.String(), "deploybot ") {
		t.Errorf("version: %q, %v", out.String(), err)
	}
	if err := run(context.Background(), []string{"frobnicate"}, nil, io.Discard, io.Discard); err == nil {
		t.Error("an unknown command succeeded")
	}
	if err := run(context.Background(), []string{"chat"}, strings.NewReader(""), io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "--demo") {
		t.Errorf("chat without a config: %v, want a hint at --config/--demo", err)
	}
}

var feedTranscript = flag.String("feed-transcript", "", "write the deploy feed session's output to this file")

// TestFeedSession: the demo's stg imports by itself (as OpenShift's
// scheduled import does) and packit-service's new image crash-loops. The
// deploy feed posts the change once, follows it to FAILED and says what
// goes back; alice types it (the Undo button's request) and stg settles.
func TestFeedSession(t *testing.T) {
	s := startChat(t, "--demo-self-import", "2s")
	id := s.expect(`#([a-z2-7]{10}) stg: changed without deploybot, rolling out`)[1]
	s.expect(`packit-service: [0-9a-f]{12} → [0-9a-f]{12}  \(by scheduled import\)`)
	s.expect(`packit-worker: [0-9a-f]{12} → [0-9a-f]{12}  \(by scheduled import\)`)
	s.expect(`#` + id + ` stg: changed without deploybot, FAILED`)
	s.expect(`Failed: deployment/packit-service failed: packit-service-[^\n]*CrashLoopBackOff`)
	undo := s.expect("To go back: `(undo packit-service stg)`")[1]
	s.send(undo)
	rid := s.expect(`#([a-z2-7]{10}) undo packit-service stg: waiting for the requester to confirm`)[1]
	s.send("confirm #" + rid)
	s.expect(`#` + rid + ` undo packit-service stg: succeeded`)
	s.send("status stg service")
	s.expect(`source\s+pinned quay.io/packit/packit-service@sha256:`)
	if err := s.in.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("chat ended with %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("chat did not end after its input closed")
	}
	out := s.out.String()
	if n := strings.Count(out, "stg: changed without deploybot, rolling out"); n != 1 {
		t.Errorf("the change was posted %d times, want once:\n%s", n, out)
	}
	if *feedTranscript != "" {
		if err := os.WriteFile(*feedTranscript, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
