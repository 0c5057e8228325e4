package bot_test

import (
	"context"
	"testing"
	"time"

	"github.com/deploybot/deploybot/demo"
)

// BenchmarkDryRunImportProd measures one chat request through the whole read
// path: identify, parse, plan from live state (5 tags, their registry
// lookups and triggered workloads), the access checks and rendering.
func BenchmarkDryRunImportProd(b *testing.B) {
	h := newHarness(b)
	b.ReportAllocs()
	for b.Loop() {
		if reply := h.say("alice", "import prod --dry-run"); reply == "" {
			b.Fatal("no reply")
		}
	}
}

// BenchmarkStatusProd measures the status command on the demo cluster.
func BenchmarkStatusProd(b *testing.B) {
	h := newHarness(b)
	b.ReportAllocs()
	for b.Loop() {
		if reply := h.say("carol", "status prod"); reply == "" {
			b.Fatal("no reply")
		}
	}
}

// BenchmarkFeedFiveServiceImport is the deploy feed's noise on a five-
// service, seven-workload import made without the bot (OpenShift's
// scheduled import of stg on the demo, its pods slower than in the other
// tests, the feed at its default timings): the messages it sends against
// the progress events the rollout reported, which a feed passing each on
// would send.
func BenchmarkFeedFiveServiceImport(b *testing.B) {
	for b.Loop() {
		h := newHarness(b, withFeed(demo.WithTick(250*time.Millisecond)), func(o *harnessOptions) { o.feedDefaults = true })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); h.bot.RunFeed(ctx) }()
		time.Sleep(1500 * time.Millisecond) // the first read finds nothing
		start := time.Now()
		if err := h.demo.ImageServer("stg").ImportScheduled(); err != nil {
			b.Fatal(err)
		}
		waitUntil(b, "the rollout's end", func() bool { rs := h.observed(); return len(rs) == 1 && rs[0].State.Terminal() })
		took := time.Since(start)
		time.Sleep(1500 * time.Millisecond) // the last update is out
		cancel()
		<-done
		rec := h.observed()[0]
		h.platform.mu.Lock()
		updates := len(h.platform.updates[rec.ID])
		h.platform.mu.Unlock()
		h.exec.mu.Lock()
		events := h.exec.progress
		h.exec.mu.Unlock()
		b.ReportMetric(float64(h.platform.count()), "posts/op")
		b.ReportMetric(float64(updates), "updates/op")
		b.ReportMetric(float64(events), "progress-events/op")
		b.ReportMetric(took.Seconds(), "s-to-end/op")
		b.ReportMetric(float64(updates)/took.Seconds(), "updates/s")
	}
}
