package store_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/store"
	"github.com/deploybot/deploybot/store/storetest"
)

func TestMemoryContract(t *testing.T) {
	storetest.Run(t, func() store.Store { return store.NewMemory() })
}

func TestFileContract(t *testing.T) {
	storetest.Run(t, func() store.Store { return openFile(t, filepath.Join(t.TempDir(), "state.json")) })
}

func TestFileContractSharedByTwoHandles(t *testing.T) {
	// Two FileStores on one file behave like one store: their locks exclude
	// each other, as two processes' would. Calls alternate between them.
	storetest.Run(t, func() store.Store {
		path := filepath.Join(t.TempDir(), "state.json")
		return storetest.Alternate(openFile(t, path), openFile(t, path))
	})
}

func openFile(t testing.TB, path string, opts ...store.Option) *store.FileStore {
	t.Helper()
	s, err := store.OpenFile(path, opts...)
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestTransition(t *testing.T) {
	all := []store.State{store.Planned, store.AwaitingConfirm, store.AwaitingApproval, store.Approved,
		store.Executing, store.Succeeded, store.Failed, store.Cancelled, store.Denied, store.Expired}
	// The state machine of DESIGN.md, written out independently of the code.
	allowed := map[store.State][]store.State{
		store.Planned:          {store.AwaitingConfirm, store.AwaitingApproval, store.Approved, store.Cancelled},
		store.AwaitingConfirm:  {store.AwaitingApproval, store.Approved, store.Cancelled, store.Expired, store.Denied},
		store.AwaitingApproval: {store.Approved, store.Denied, store.Cancelled, store.Expired},
		store.Approved:         {store.Executing, store.Cancelled, store.Expired},
		store.Executing:        {store.Succeeded, store.Failed},
	}
	for _, from := range all {
		for _, to := range all {
			want := false
			for _, s := range allowed[from] {
				want = want || s == to
			}
			r := &store.Request{ID: "abc123", State: from}
			err := store.Transition(r, to)
			switch {
			case want && err != nil:
				t.Errorf("%s → %s refused: %v", from, to, err)
			case want && r.State != to:
				t.Errorf("%s → %s left state %s", from, to, r.State)
			case !want && err == nil:
				t.Errorf("%s → %s allowed, want refused", from, to)
			case !want && r.State != from:
				t.Errorf("refused %s → %s changed the state to %s", from, to, r.State)
			case !want:
				var te *store.TransitionError
				if !errors.As(err, &te) || te.From != from || te.To != to || te.ID != "abc123" {
					t.Errorf("%s → %s error = %#v, want *TransitionError{abc123, %s, %s}", from, to, err, from, to)
				}
			}
		}
	}
}

func TestTransitionErrorText(t *testing.T) {
	tests := []struct {
		from, to store.State
		want     string
	}{
		{store.Approved, store.Approved, "request #abc123 was already approved"},
		{store.Executing, store.Executing, "request #abc123 is already running"},
		{store.Executing, store.Cancelled, "request #abc123 is already running"},
		{store.Succeeded, store.Approved, "request #abc123 already ran and succeeded"},
		{store.Denied, store.Approved, "request #abc123 was denied"},
		{store.Expired, store.Approved, "request #abc123 expired"},
		{store.Cancelled, store.Cancelled, "request #abc123 was cancelled"},
		{store.AwaitingConfirm, store.Executing, "request #abc123 is waiting for its requester to confirm, so it cannot be started"},
		{store.AwaitingApproval, store.AwaitingApproval, "request #abc123 is waiting for approval"},
		{store.AwaitingApproval, store.Executing, "request #abc123 is waiting for approval, so it cannot be started"},
	}
	for _, tt := range tests {
		err := store.Transition(&store.Request{ID: "abc123", State: tt.from}, tt.to)
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s → %s: %v, want %q", tt.from, tt.to, err, tt.want)
		}
	}
}

func TestNewID(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z2-7]{10}$`)
	seen := map[string]bool{}
	for range 10000 {
		id := store.NewID()
		if !valid.MatchString(id) {
			t.Fatalf("NewID() = %q, want 10 lowercase base32 characters", id)
		}
		if seen[id] {
			t.Fatalf("NewID() repeated %q within 10000 calls", id)
		}
		seen[id] = true
	}
}

func TestFileRestartKeepsPendingRequests(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	s1, err := store.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := storetest.NewRequest(store.AwaitingApproval, "prod/packit-worker")
	if err := s1.Create(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	if err := s1.Record(t.Context(), store.AuditEvent{RequestID: r.ID, Actor: "alice", Action: "request"}); err != nil {
		t.Fatal(err)
	}
	if first, _ := s1.Once(t.Context(), "k", time.Hour); !first {
		t.Fatal("Once(k) first call = false")
	}
	s1.Close()

	s2 := openFile(t, path)
	got, err := s2.Get(t.Context(), r.ID)
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if got.State != store.AwaitingApproval || got.PlanHash != r.PlanHash || got.Version != 1 {
		t.Errorf("after restart: state %s hash %s version %d", got.State, got.PlanHash, got.Version)
	}
	var be *store.BusyError
	if err := s2.Create(t.Context(), storetest.NewRequest(store.Planned, "prod/packit-worker")); !errors.As(err, &be) {
		t.Errorf("after restart the lock is not held: Create = %v", err)
	}
	if evs, _ := s2.Audit(t.Context(), 10); len(evs) != 1 || evs[0].RequestID != r.ID {
		t.Errorf("after restart audit = %+v", evs)
	}
	if first, _ := s2.Once(t.Context(), "k", time.Hour); first {
		t.Errorf("after restart Once(k) = true; the dedupe key was lost")
	}
}

// TestFileRestartKeepsImages: image records are in the state file, read
// back by the next process as they were, and by ReadFileState for a
// migration.
func TestFileRestartKeepsImages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	s1 := openFile(t, path)
	at := time.Date(2026, 3, 3, 2, 0, 0, 0, time.UTC)
	web := storetest.NewImage("prod", "web", "v1", at)
	web.Imported, web.By, web.Request = at.Add(time.Minute), "alice", "abc1234567"
	recs := []store.ImageRecord{web, storetest.NewImage("prod", "web", "v2", at.Add(time.Hour)), storetest.NewImage("stg", "worker", "v1", at)}
	for _, r := range recs {
		if err := s1.RecordImage(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	s1.Close()

	s2 := openFile(t, path)
	for _, tt := range []struct {
		env, service string
		want         []store.ImageRecord
	}{
		{"prod", "web", []store.ImageRecord{recs[1], recs[0]}},
		{"stg", "worker", []store.ImageRecord{recs[2]}},
	} {
		got, err := s2.Images(t.Context(), tt.env, tt.service)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(tt.want) {
			t.Fatalf("after restart Images(%s, %s) = %+v, want %+v", tt.env, tt.service, got, tt.want)
		}
		for i := range got {
			if !storetest.SameImage(got[i], tt.want[i]) {
				t.Errorf("after restart Images(%s, %s)[%d] = %+v, want %+v", tt.env, tt.service, i, got[i], tt.want[i])
			}
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"images":{"prod":{"web":[{"env":"prod","service":"web","digest":"`+recs[1].Digest) {
		t.Errorf("the state file does not hold the records by environment and service, newest first:\n%s", b)
	}
	fst, err := store.ReadFileState(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(fst.Images) != 3 || !storetest.SameImage(fst.Images[0], recs[1]) || !storetest.SameImage(fst.Images[1], recs[0]) || !storetest.SameImage(fst.Images[2], recs[2]) {
		t.Errorf("ReadFileState images = %+v, want prod/web newest first, then stg/worker", fst.Images)
	}
}

// TestFileImplausibleImageRefusedAtOpen: a damaged image record is refused
// at open, naming the file and the line of the records.
func TestFileImplausibleImageRefusedAtOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	doc := "{\"format\": 1, \"requests\": {},\n\"images\": {\"prod\": {\"web\": [{\"env\": \"prod\", \"service\": \"web\", \"digest\": \"sha256:abc\", \"seen\": \"2026-03-03T02:00:00Z\"}]}}}"
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := store.OpenFile(path); err == nil || !strings.Contains(err.Error(), path+": line 2") || !strings.Contains(err.Error(), "not a sha256 digest") {
		t.Errorf("OpenFile = %v, want an error naming %s line 2 and the digest", err, path)
	}
}

func TestFileLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "dir")
	s := openFile(t, filepath.Join(dir, "state.json"))
	if s.AuditPath() != filepath.Join(dir, "state.audit.jsonl") {
		t.Errorf("AuditPath() = %s", s.AuditPath())
	}
	for range 20 {
		if err := s.Create(t.Context(), storetest.NewRequest(store.Planned)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Record(t.Context(), store.AuditEvent{Action: "x"}); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		info, _ := e.Info()
		if perm := info.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s has mode %v; state holds chat identities and must be private", e.Name(), perm)
		}
	}
	// No temp files left behind by the atomic writes.
	if got, want := strings.Join(names, " "), "state.audit.jsonl state.json state.json.lock"; got != want {
		t.Errorf("files = %s, want %s", got, want)
	}
}

func TestFileCorruptStateRefusedAtOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(path, []byte(`{"requests": [`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := store.OpenFile(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("OpenFile(corrupt) = %v, want an error naming the file", err)
	}
}

// TestFileImplausibleStateRefusedAtOpen: a state file that holds nothing a
// file store writes is refused, naming the file, not opened as empty.
func TestFileImplausibleStateRefusedAtOpen(t *testing.T) {
	for _, doc := range []string{`null`, `{}`, `{"format": 1}`, `[]`, "\n"} {
		path := filepath.Join(t.TempDir(), "state.json")
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := store.OpenFile(path); err == nil || !strings.Contains(err.Error(), path+": line 1") {
			t.Errorf("OpenFile(%q) = %v, want an error naming %s line 1", doc, err, path)
		}
	}
}

// TestFileOpenRemovesStaleTempFiles: the full-size temporary copies that
// writers killed mid-write leave are removed at the next open.
func TestFileOpenRemovesStaleTempFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	s := openFile(t, path)
	if err := s.Create(t.Context(), storetest.NewRequest(store.Planned)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, name := range []string{"state.json.tmp-123", "state.json.tmp-456"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("half a state"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	openFile(t, path)
	if left, _ := filepath.Glob(filepath.Join(dir, "*.tmp-*")); len(left) != 0 {
		t.Errorf("temporary files left after open: %v", left)
	}
}

// TestFileAuditRefusesDamage: a bad line in the middle of the trail, or a
// trail of garbage, is an error naming where, never a shorter or empty trail.
func TestFileAuditRefusesDamage(t *testing.T) {
	good := `{"time":"2026-03-03T02:00:00Z","actor":"alice","action":"request"}` + "\n"
	tests := []struct {
		name, trail, want string
	}{
		{"bad line in the middle", good + "{\"time\": 5}\n" + good, "line 2"},
		{"garbage", "\x00\x01\x02 not an audit trail at all", "line 1"},
		{"null record", good + "null\n", "no time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openFile(t, filepath.Join(t.TempDir(), "state.json"))
			if err := os.WriteFile(s.AuditPath(), []byte(tt.trail), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, n := range []int{0, 1, 20} {
				evs, err := s.Audit(t.Context(), n)
				if err == nil || !strings.Contains(err.Error(), s.AuditPath()) || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("Audit(%d) = %v, %v; want an error naming %s and saying %q", n, evs, err, s.AuditPath(), tt.want)
				}
			}
		})
	}
}

func TestFileAuditSurvivesTornLine(t *testing.T) {
	s := openFile(t, filepath.Join(t.TempDir(), "state.json"))
	for _, a := range []string{"a0", "a1"} {
		if err := s.Record(t.Context(), store.AuditEvent{Action: a}); err != nil {
			t.Fatal(err)
		}
	}
	// A crash in the middle of an append leaves half a line.
	f, err := os.OpenFile(s.AuditPath(), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"time":"2026-03-03T02:00:00Z","act`)
	f.Close()
	if err := s.Record(t.Context(), store.AuditEvent{Action: "a2"}); err != nil {
		t.Fatal(err)
	}
	evs, err := s.Audit(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		got = append(got, e.Action)
	}
	if strings.Join(got, ",") != "a2,a1,a0" {
		t.Errorf("Audit after a torn line = %v, want [a2 a1 a0]", got)
	}
}

func TestFileAuditTailOfLargeTrail(t *testing.T) {
	// More than one 64 KiB read chunk, so Audit(n) reads backwards across chunks.
	s := openFile(t, filepath.Join(t.TempDir(), "state.json"))
	const total = 2000
	for i := range total {
		e := store.AuditEvent{Action: "import", RequestID: strconv.Itoa(i), Outcome: strings.Repeat("x", 40)}
		if err := s.Record(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := os.Stat(s.AuditPath()); st.Size() < 2*64<<10 {
		t.Fatalf("audit file only %d bytes; the test needs several chunks", st.Size())
	}
	tests := []int{1, 5, 1000, 1999, 2000, 5000, 0}
	for _, n := range tests {
		evs, err := s.Audit(t.Context(), n)
		if err != nil {
			t.Fatal(err)
		}
		want := n
		if n <= 0 || n > total {
			want = total
		}
		if len(evs) != want {
			t.Errorf("Audit(%d) returned %d events, want %d", n, len(evs), want)
			continue
		}
		for i, e := range evs {
			if e.RequestID != strconv.Itoa(total-1-i) {
				t.Errorf("Audit(%d)[%d] = event %s, want %d", n, i, e.RequestID, total-1-i)
				break
			}
		}
	}
}

func TestFilePrunesExpiredOnceKeysAndOldRequests(t *testing.T) {
	now := time.Date(2026, 3, 3, 2, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	path := filepath.Join(t.TempDir(), "state.json")
	s := openFile(t, path, store.WithClock(clock), store.WithRetention(24*time.Hour))
	ctx := t.Context()

	old := storetest.NewRequest(store.Succeeded)
	pending := storetest.NewRequest(store.AwaitingApproval)
	for _, r := range []*store.Request{old, pending} {
		if err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		if _, err := s.Once(ctx, fmt.Sprintf("webhook-%d", i), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(48 * time.Hour)
	if first, _ := s.Once(ctx, "webhook-1", time.Minute); !first {
		t.Errorf("Once(webhook-1) after its ttl = false, want true")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "webhook-"); n != 1 {
		t.Errorf("state file holds %d dedupe keys, want 1 (expired keys pruned)", n)
	}
	if _, err := s.Get(ctx, old.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("finished request older than the retention still stored (Get error %v)", err)
	}
	if _, err := s.Get(ctx, pending.ID); err != nil {
		t.Errorf("pending request pruned: %v", err)
	}
}

// childEnv makes the test binary act as one of the racing processes.
const childEnv = "DEPLOYBOT_STORE_TEST_CHILD"

// TestFileTwoProcesses races several OS processes on one state file: each
// moves the same request Approved→Executing (exactly one may win) and appends
// approvals to another request (none may be lost).
func TestFileTwoProcesses(t *testing.T) {
	if spec := os.Getenv(childEnv); spec != "" {
		runChild(spec)
		return
	}
	const procs, appends = 4, 25
	path := filepath.Join(t.TempDir(), "state.json")
	s := openFile(t, path)
	exec1 := storetest.NewRequest(store.Approved, "prod/packit-worker")
	counter := storetest.NewRequest(store.AwaitingApproval)
	for _, r := range []*store.Request{exec1, counter} {
		if err := s.Create(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}

	type child struct {
		cmd   *exec.Cmd
		stdin interface{ Close() error }
		out   *strings.Builder
		done  chan struct{} // closed when stdout is drained
	}
	var children []child
	ready := make(chan struct{}, procs)
	for i := range procs {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFileTwoProcesses$", "-test.count=1")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%s,%s,%d,%d", childEnv, path, exec1.ID, counter.ID, i, appends))
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		out := &strings.Builder{}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if sc.Text() == "ready" {
					ready <- struct{}{}
				}
				out.WriteString(sc.Text() + "\n")
			}
		}()
		children = append(children, child{cmd, stdin, out, done})
	}
	// Release all children at once, after each has opened the store.
	timeout := time.After(30 * time.Second)
	for range procs {
		select {
		case <-ready:
		case <-timeout:
			t.Fatal("children did not start within 30s")
		}
	}
	for _, c := range children {
		c.stdin.Close()
	}
	wins := 0
	for i, c := range children {
		<-c.done // stdout must be read to the end before Wait closes it
		if err := c.cmd.Wait(); err != nil {
			t.Fatalf("child %d: %v\n%s", i, err, c.out)
		}
		switch {
		case strings.Contains(c.out.String(), "result=won"):
			wins++
		case strings.Contains(c.out.String(), "result=lost"):
		default:
			t.Errorf("child %d said neither won nor lost:\n%s", i, c.out)
		}
	}
	if wins != 1 {
		t.Errorf("%d of %d processes moved the request to Executing, want exactly 1", wins, procs)
	}
	got, err := s.Get(t.Context(), exec1.ID)
	if err != nil || got.State != store.Executing || got.Version != 2 {
		t.Errorf("raced request: %+v, %v; want Executing version 2", got, err)
	}
	cnt, err := s.Get(t.Context(), counter.ID)
	if err != nil || len(cnt.Approvals) != procs*appends || cnt.Version != int64(procs*appends+1) {
		t.Errorf("counter request: %d approvals version %d (%v); want %d and %d", len(cnt.Approvals), cnt.Version, err, procs*appends, procs*appends+1)
	}
}

// runChild is the body of one racing process.
func runChild(spec string) {
	parts := strings.Split(spec, ",")
	path, execID, counterID, name := parts[0], parts[1], parts[2], parts[3]
	appends, _ := strconv.Atoi(parts[4])
	s, err := store.OpenFile(path)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	fmt.Println("ready")
	// Wait for the parent to close stdin: the start signal.
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	ctx := context.Background()
	_, err = s.Update(ctx, execID, func(r *store.Request) error { return store.Transition(r, store.Executing) })
	var te *store.TransitionError
	switch {
	case err == nil:
		fmt.Println("result=won")
	case errors.As(err, &te):
		fmt.Println("result=lost")
	default:
		fmt.Println("error:", err)
		os.Exit(2)
	}
	for i := range appends {
		_, err := s.Update(ctx, counterID, func(r *store.Request) error {
			r.Approvals = append(r.Approvals, store.Approval{By: store.Person{User: fmt.Sprintf("p%s-%d", name, i)}})
			return nil
		})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(2)
		}
	}
}

func BenchmarkFileStoreUpdate(b *testing.B) {
	s := openFile(b, filepath.Join(b.TempDir(), "state.json"))
	// A realistic amount of history beside the request being updated.
	for range 50 {
		if err := s.Create(b.Context(), storetest.NewRequest(store.Succeeded)); err != nil {
			b.Fatal(err)
		}
	}
	r := storetest.NewRequest(store.AwaitingApproval)
	if err := s.Create(b.Context(), r); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.Update(b.Context(), r.ID, func(r *store.Request) error {
			r.Reason = "bench"
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}
