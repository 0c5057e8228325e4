package metrics_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/metrics"
)

// scrape fetches the registry's /metrics page as Prometheus would.
func scrape(t *testing.T, r *metrics.Registry) string {
	t.Helper()
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatalf("scraping: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the scrape: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s\n%s", resp.Status, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want the text exposition format", ct)
	}
	return string(body)
}

func TestExposition(t *testing.T) {
	pending := func(context.Context) (map[metrics.PendingKey]int, error) {
		return map[metrics.PendingKey]int{
			{Env: "prod", State: "AwaitingApproval"}: 2,
			{Env: "stg", State: "AwaitingConfirm"}:   1,
		}, nil
	}
	r := metrics.New(metrics.WithPending(pending, time.Second), metrics.WithVersion("v1.2.3"))
	r.Request("slack", "import", "ok")
	r.Request("slack", "import", "ok")
	r.Request("discord", "approve", "refused")
	r.Ack("slack", 40*time.Millisecond)
	r.Ack("slack", 4*time.Second)
	r.Rollout("prod", "import", "Succeeded", 95*time.Second)
	r.PlatformError("slack", "update")
	page := scrape(t, r)

	tests := []struct {
		name string
		want string // a line of the exposition
	}{
		{"requests by platform, command and outcome", `deploybot_requests_total{command="import",outcome="ok",platform="slack"} 2`},
		{"a refused button", `deploybot_requests_total{command="approve",outcome="refused",platform="discord"} 1`},
		{"a fast ack in the 50ms bucket", `deploybot_ack_latency_seconds_bucket{platform="slack",le="0.05"} 1`},
		{"a slow ack past Slack's 3s", `deploybot_ack_latency_seconds_bucket{platform="slack",le="3"} 1`},
		{"every ack counted", `deploybot_ack_latency_seconds_count{platform="slack"} 2`},
		{"a rollout in the 2-minute bucket", `deploybot_rollout_duration_seconds_bucket{action="import",env="prod",outcome="Succeeded",le="120"} 1`},
		{"not in the 1-minute bucket", `deploybot_rollout_duration_seconds_bucket{action="import",env="prod",outcome="Succeeded",le="60"} 0`},
		{"rollout seconds summed", `deploybot_rollout_duration_seconds_sum{action="import",env="prod",outcome="Succeeded"} 95`},
		{"platform API errors", `deploybot_platform_api_errors_total{op="update",platform="slack"} 1`},
		{"pending approvals", `deploybot_approvals_pending{env="prod",state="AwaitingApproval"} 2`},
		{"pending confirmations", `deploybot_approvals_pending{env="stg",state="AwaitingConfirm"} 1`},
		{"the store was read", `deploybot_approvals_pending_up 1`},
		{"build info", `deploybot_build_info{version="v1.2.3"} 1`},
		{"process memory for sizing requests", `# TYPE process_resident_memory_bytes gauge`},
		{"Go runtime", `# TYPE go_goroutines gauge`},
	}
	lines := strings.Split(page, "\n")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, l := range lines {
				if l == tt.want {
					return
				}
			}
			t.Errorf("no line %q in the scrape:\n%s", tt.want, page)
		})
	}
}

// TestPendingUnreadable pins that a store that cannot be read gives no
// pending series (rather than a wrong zero) and _up 0.
func TestPendingUnreadable(t *testing.T) {
	tests := []struct {
		name    string
		pending metrics.PendingFunc
	}{
		{"the store fails", func(context.Context) (map[metrics.PendingKey]int, error) {
			return nil, errors.New("configmaps is forbidden")
		}},
		{"the store is too slow", func(ctx context.Context) (map[metrics.PendingKey]int, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := metrics.New(metrics.WithPending(tt.pending, 50*time.Millisecond), metrics.WithoutRuntime())
			page := scrape(t, r)
			if !strings.Contains(page, "\ndeploybot_approvals_pending_up 0\n") {
				t.Errorf("want deploybot_approvals_pending_up 0 in:\n%s", page)
			}
			if strings.Contains(page, "deploybot_approvals_pending{") {
				t.Errorf("pending series reported though the store could not be read:\n%s", page)
			}
		})
	}
}

func TestWithoutRuntime(t *testing.T) {
	page := scrape(t, metrics.New(metrics.WithoutRuntime()))
	if strings.Contains(page, "go_goroutines") || strings.Contains(page, "process_") {
		t.Errorf("runtime metrics present with WithoutRuntime:\n%s", page)
	}
	// A vector with no observations yet has no series; the metrics are
	// still described, so the first request's series appears on its own.
	r := metrics.New(metrics.WithoutRuntime())
	r.Request("terminal", "status", "ok")
	if page := scrape(t, r); !strings.Contains(page, `deploybot_requests_total{command="status",outcome="ok",platform="terminal"} 1`) {
		t.Errorf("request not counted:\n%s", page)
	}
}
