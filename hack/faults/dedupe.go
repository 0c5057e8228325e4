package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// seeder is compiled from the source tree under measurement, so that the
// database has exactly the format of the binary's store/bolt: n slash
// commands as the Slack adapter leaves them once handled, an inbox event
// marked done (its dedupe key kept 24 h) and the bot's own 24 h dedupe key.
const seeder = `package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/deploybot/deploybot/store"
	"github.com/deploybot/deploybot/store/bolt"
)

func main() {
	if err := seed(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		os.Exit(1)
	}
}

func seed(statePath, count string) error {
	n, err := strconv.Atoi(count)
	if err != nil {
		return err
	}
	dbPath, _ := bolt.Paths(statePath)
	s, err := bolt.Open(dbPath)
	if err != nil {
		return err
	}
	defer s.Close()
	ctx := context.Background()
	key := func(i int) string { return "command/seed." + strconv.Itoa(i) }
	body := []byte("team_id=T0FAULTS&user_id=U0NOBODY&user_name=nobody&channel_id=C0FAULTS&command=%2Fdeploy&text=help&response_url=http%3A%2F%2F127.0.0.1%3A9%2Fhooks%2Fseed&trigger_id=seed")
	for i := 0; i < n; i += 1000 {
		var evs []store.InboxEvent
		for j := i; j < min(i+1000, n); j++ {
			evs = append(evs, store.InboxEvent{Key: key(j), Platform: "slack", TTL: 24 * time.Hour, Payload: body})
		}
		if _, err := s.Enqueue(ctx, evs); err != nil {
			return err
		}
	}
	for i := range n {
		if err := s.InboxDone(ctx, key(i), "handled"); err != nil {
			return err
		}
		if _, err := s.Once(ctx, "event/slack/"+key(i), 24*time.Hour); err != nil {
			return err
		}
	}
	return nil
}
`

// seed writes a database with n handled events for statePath: built and
// filled on tmpfs (/dev/shm) where fsync is cheap, then copied.
func (p *probe) seed(ctx context.Context, statePath string, n int) (time.Duration, error) {
	dir := filepath.Join(p.tmp, "seeder")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, fmt.Errorf("creating the seeder's directory: %w", err)
	}
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte(seeder), 0o600); err != nil {
		return 0, fmt.Errorf("writing the seeder: %w", err)
	}
	bin := filepath.Join(dir, "seed")
	build := exec.Command("go", "build", "-o", bin, src)
	build.Dir = p.src // the module of the tree under measurement
	build.Env = append(os.Environ(), "GOWORK=off")
	if _, err := p.r.run(ctx, "building the seeder", build); err != nil {
		return 0, err
	}
	scratch := filepath.Join(p.tmp, "seed-scratch")
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "deploybot-faults-"); err == nil {
			scratch = d
			p.r.onExit(func() { _ = os.RemoveAll(d) })
		}
	}
	start := time.Now()
	seeded := filepath.Join(scratch, "state.json")
	if _, err := p.r.run(ctx, "seeding the store", exec.Command(bin, seeded, strconv.Itoa(n))); err != nil {
		return 0, err
	}
	took := time.Since(start)
	if err := os.MkdirAll(filepath.Dir(statePath), 0o700); err != nil {
		return 0, fmt.Errorf("creating the seeded state directory: %w", err)
	}
	if err := copyFile(filepath.Join(scratch, "state.db"), filepath.Join(filepath.Dir(statePath), "state.db")); err != nil {
		return 0, err
	}
	_ = os.RemoveAll(scratch)
	return took, nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return fmt.Errorf("copying the seeded database: %w", err)
	}
	defer func() { _ = in.Close() }()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("copying the seeded database: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return fmt.Errorf("copying the seeded database: %w", err)
	}
	if err := out.Sync(); err != nil {
		_ = out.Close()
		return fmt.Errorf("copying the seeded database: %w", err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("copying the seeded database: %w", err)
	}
	return nil
}

// load is what sending the help commands to one store saw.
type load struct {
	total time.Duration // first command sent → last answer
	p50   time.Duration // ack latency
	p99   time.Duration
}

// helps sends n signed `/deploy help` of an unmapped user from workers
// senders and waits until every response_url got its answer.
func (p *probe) helps(ctx context.Context, s *fakeSlack, b *proc, run string, n, workers int) (load, error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	defer client.CloseIdleConnections()
	acks := make([]time.Duration, n)
	var next atomic.Int64
	var failed atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				trigger := run + "." + strconv.Itoa(i)
				body := []byte(url.Values{
					"team_id": {slackTeam}, "channel_id": {slackChannel}, "user_id": {slackNobody}, "user_name": {"nobody"},
					"command": {"/deploy"}, "text": {"help"}, "response_url": {s.hookURL(trigger)}, "trigger_id": {trigger},
				}.Encode())
				t := time.Now()
				code, answer, err := s.post(ctx, client, b.addr, "/slack/commands", body)
				acks[i] = time.Since(t)
				if err != nil || code != http.StatusOK || answer != "" {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %q %v", code, answer, err))
				}
			}
		})
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		return load{}, fmt.Errorf("%d of %d help commands were not acknowledged; the first: %v", f, n, firstErr.Load())
	}
	prefix := []byte("/hooks/" + run + ".")
	answered := func() (int, time.Time) {
		seen := map[string]bool{}
		var last time.Time
		for _, c := range s.rec.all() {
			if c.method == "response_url" && bytes.HasPrefix([]byte(c.path), prefix) {
				seen[c.path] = true
				if c.at.After(last) {
					last = c.at
				}
			}
		}
		return len(seen), last
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		got, last := answered()
		if got >= n {
			slices.Sort(acks)
			return load{total: last.Sub(start), p50: acks[n/2], p99: acks[n*99/100]}, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return load{}, fmt.Errorf("only %d of %d help commands answered within 5 minutes", got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dedupeKeys is row 7: the same 1,000 help commands against a fresh store
// and one holding 40,000 handled events, alternating, twice each.
func (p *probe) dedupeKeys(ctx context.Context) ([]row, error) {
	seededState := filepath.Join(p.tmp, "row7-seeded", "state.json")
	took, err := p.seed(ctx, seededState, p.o.keys)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(filepath.Join(filepath.Dir(seededState), "state.db"))
	if err != nil {
		return nil, fmt.Errorf("the seeded database: %w", err)
	}
	logf("row 7: seeded %d events in %s (%.1f MB)", p.o.keys, took.Round(time.Millisecond), float64(fi.Size())/1e6)
	s, err := newFakeSlack()
	if err != nil {
		return nil, err
	}
	defer s.close()
	var fresh, seeded []load
	for round := range 2 {
		for _, kind := range []string{"fresh", "seeded"} {
			state := seededState
			if kind == "fresh" {
				state = filepath.Join(p.tmp, fmt.Sprintf("row7-fresh-%d", round), "state.json")
			}
			b, err := p.serve(ctx, serveOpts{state: state, env: s.env(false), name: "row7-" + kind})
			if err != nil {
				return nil, err
			}
			l, err := p.helps(ctx, s, b, fmt.Sprintf("row7-%s-%d", kind, round), p.o.commands, p.o.workers)
			b.stop()
			if err != nil {
				return nil, fmt.Errorf("%s store: %w", kind, err)
			}
			logf("row 7: %s store, round %d: %d helps answered in %s, ack p50 %s p99 %s", kind, round+1, p.o.commands, l.total.Round(time.Millisecond), l.p50.Round(time.Microsecond*100), l.p99.Round(time.Microsecond*100))
			if kind == "fresh" {
				fresh = append(fresh, l)
			} else {
				seeded = append(seeded, l)
			}
		}
	}
	f, sd := best(fresh), best(seeded)
	return []row{{
		n: "7",
		scenario: fmt.Sprintf("bbolt store holding %d handled Slack events (done inbox events with their 24 h keys, and the bot's 24 h dedupe keys; %.1f MB), then %d signed `/deploy help` from %d senders; against a fresh store in the same run, alternating, twice each (the better run of each shown)",
			p.o.keys, float64(fi.Size())/1e6, p.o.commands, p.o.workers),
		now: fmt.Sprintf("handling time %.2f s seeded vs %.2f s fresh = %.2f×; ack p50 %.1f ms vs %.1f ms = %.2f×; ack p99 %.1f ms vs %.1f ms",
			sd.total.Seconds(), f.total.Seconds(), sd.total.Seconds()/f.total.Seconds(),
			ms(sd.p50), ms(f.p50), float64(sd.p50)/float64(f.p50), ms(sd.p99), ms(f.p99)),
		previous: "goal ≤ 1.2×; previous 39× (74.4 s vs 1.9 s), ack p50 4.5 → 16 ms",
	}}, nil
}

// best is the run with the shortest handling time.
func best(ls []load) load {
	return slices.MinFunc(ls, func(a, b load) int { return int(a.total - b.total) })
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
