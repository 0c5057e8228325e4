package bot_test

import (
	"testing"
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
