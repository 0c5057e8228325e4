package deploy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"

	"github.com/deploybot/deploybot/bot/slack"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/examples"
)

// The chart's resource requests are sized from this measurement: the
// image's binary running `serve --demo` (Slack over HTTP), idle and after a
// burst of signed slash commands. It checks that the chart's memory request
// covers the idle RSS and its limit leaves room over the peak, and logs the
// figures the chart's README quotes.

const footprintSecret = "footprint-signing-secret"

// footprintLoad is the burst: 200 slash commands, 8 at a time, a mix of the
// reads and dry-run plans that make the bot read the (demo) cluster.
var footprintLoad = []string{"status prod", "images worker prod", "history worker prod", "import prod --dry-run", "whoami", "status stg"}

const (
	footprintRequests    = 200
	footprintConcurrency = 8
)

// rss reads a process's resident set size and its peak (VmRSS, VmHWM).
func rss(t *testing.T, pid int) (now, peak int64) {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("reading the process status: %v", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			now = kb << 10
		case "VmHWM:":
			peak = kb << 10
		}
	}
	return now, peak
}

// cpuTime reads the CPU time a process has used (utime + stime of
// /proc/PID/stat, in clock ticks of 1/100 s on Linux).
func cpuTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("reading the process stat: %v", err)
	}
	// The command name (field 2) may hold spaces: count from the ')'.
	fields := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func TestServeFootprint(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc to read RSS")
	}
	bin, _ := builtBinary(t)

	// The demo config, with a Slack user mapped to alice.
	cfg, err := config.Parse(examples.Packit)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Identities.Users = append(cfg.Identities.Users, config.UserMapping{Platform: "slack", ID: "T0PACKIT/U0ALICE", User: "alice", Groups: []string{"packit-devs"}})
	cfg.Slack = &config.Slack{Mode: "http"}
	raw, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(t.TempDir(), "deploybot.yaml")
	if err := os.WriteFile(cfgPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}

	// response_url: every command's answer arrives here.
	var answered atomic.Int64
	hooks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		answered.Add(1)
	}))
	defer hooks.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, bin, "serve", "--demo", "--config", cfgPath, "--listen", "127.0.0.1:0", "--log-level", "info")
	cmd.Env = append(os.Environ(), "SLACK_SIGNING_SECRET="+footprintSecret)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting deploybot serve --demo: %v", err)
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}()
	// The listening address is in the "serving" log line.
	addrs := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "serving" {
				addrs <- rec.Addr
			}
		}
	}()
	var base string
	select {
	case a := <-addrs:
		base = "http://" + a
	case <-ctx.Done():
		t.Fatal("deploybot serve --demo logged no \"serving\" line")
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("/readyz not 200 within 2 minutes: %v", err)
		case <-tick.C:
		}
	}
	ready := time.Since(start)
	pid := cmd.Process.Pid
	cpuReady := cpuTime(t, pid)
	// Idle is what the process holds once its start-up garbage is gone and
	// the demo cluster's controllers have settled: measured after a fixed
	// quiet period, since "idle" is a span of time, not an event.
	select {
	case <-time.After(5 * time.Second):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	idle, _ := rss(t, pid)
	cpuIdle := cpuTime(t, pid) - cpuReady

	// The burst.
	var (
		mu        sync.Mutex
		latencies []time.Duration
		failures  []string
	)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range footprintConcurrency {
		wg.Go(func() {
			for i := range jobs {
				text := footprintLoad[i%len(footprintLoad)]
				body := url.Values{"team_id": {"T0PACKIT"}, "user_id": {"U0ALICE"}, "user_name": {"alice"}, "channel_id": {"C0DEPLOY"},
					"command": {"/deploy"}, "text": {text}, "response_url": {hooks.URL + "/" + strconv.Itoa(i)}, "trigger_id": {"t" + strconv.Itoa(i)}}.Encode()
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/slack/commands", strings.NewReader(body))
				ts := time.Now().Unix()
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("X-Slack-Request-Timestamp", strconv.FormatInt(ts, 10))
				req.Header.Set("X-Slack-Signature", slack.Sign(footprintSecret, ts, []byte(body)))
				t0 := time.Now()
				resp, err := http.DefaultClient.Do(req)
				d := time.Since(t0)
				mu.Lock()
				switch {
				case err != nil:
					failures = append(failures, err.Error())
				case resp.StatusCode != http.StatusOK:
					failures = append(failures, fmt.Sprintf("%q: HTTP %d", text, resp.StatusCode))
				default:
					latencies = append(latencies, d)
				}
				mu.Unlock()
				if resp != nil {
					_ = resp.Body.Close()
				}
			}
		})
	}
	loadStart := time.Now()
	for i := range footprintRequests {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d commands failed, e.g. %s", len(failures), footprintRequests, failures[0])
	}
	for answered.Load() < footprintRequests {
		select {
		case <-ctx.Done():
			t.Fatalf("%d of %d commands answered through response_url", answered.Load(), footprintRequests)
		case <-tick.C:
		}
	}
	loadTime := time.Since(loadStart)
	cpuLoad := cpuTime(t, pid) - cpuReady - cpuIdle
	after, peak := rss(t, pid)
	slices.Sort(latencies)
	p := func(q float64) time.Duration { return latencies[int(q*float64(len(latencies)-1))] }

	// The /metrics page agrees: the commands were counted.
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if !strings.Contains(string(page), `deploybot_ack_latency_seconds_count{platform="slack"} `+strconv.Itoa(footprintRequests)) {
		t.Errorf("/metrics does not count %d slack acks:\n%s", footprintRequests, grepLines(string(page), "deploybot_ack_latency_seconds_count"))
	}

	t.Logf("deploybot serve --demo: ready (/readyz 200) %v after exec (CPU %v); idle 5s: RSS %s, CPU %v; "+
		"%d slash commands (%d at a time) answered in %v: CPU %v, RSS after %s, peak %s; ack latency p50 %v p99 %v max %v",
		ready.Round(time.Millisecond), cpuReady, mib(idle), cpuIdle, footprintRequests, footprintConcurrency, loadTime.Round(time.Millisecond), cpuLoad,
		mib(after), mib(peak), p(0.5).Round(time.Microsecond), p(0.99).Round(time.Microsecond), latencies[len(latencies)-1].Round(time.Microsecond))

	// The chart's requests must cover what was measured.
	d := chartDeployment(t)
	res := d.Spec.Template.Spec.Containers[0].Resources
	request, limit := res.Requests.Memory().Value(), res.Limits.Memory().Value()
	if request < idle {
		t.Errorf("the chart requests %s of memory; idle RSS is %s", mib(request), mib(idle))
	}
	if limit < 2*peak {
		t.Errorf("the chart's memory limit %s leaves less than twice the peak RSS %s", mib(limit), mib(peak))
	}
	if ready > 5*time.Second {
		t.Errorf("ready after %v; the readiness probe's first check comes at 10s, start-up should be well within it", ready)
	}
}

// chartDeployment renders the chart with its defaults and returns the Deployment.
func chartDeployment(t *testing.T) *appsv1.Deployment {
	t.Helper()
	r := render(t)
	return one[*appsv1.Deployment](t, r)
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
