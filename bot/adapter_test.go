package bot_test

import (
	"testing"
	"time"

	"github.com/deploybot/deploybot/bot"
)

// TestBackoff: doubling from the base, capped, within ±20%.
func TestBackoff(t *testing.T) {
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 8: bot.RetryCap, 50: bot.RetryCap} {
		for range 100 {
			if got := bot.Backoff(time.Second, n); got < want*8/10 || got > want*12/10 {
				t.Fatalf("Backoff(1s, %d) = %v, want %v ±20%%", n, got, want)
			}
		}
	}
}

// TestReplaceMarkup: accepted markup is replaced, the rest is text, and a
// "<" that opens nothing does not hide markup after it.
func TestReplaceMarkup(t *testing.T) {
	upper := func(s string) string { return "[" + s + "]" }
	mention := func(inner string) (string, bool) {
		if len(inner) > 1 && inner[0] == '@' {
			return "@user", true
		}
		return "", false
	}
	for in, want := range map[string]string{
		"deny <@U1> wrong": "[deny ]@user[ wrong]",
		"a < b <@U2>":      "[a ][<][ b ]@user[]",
		"<x>":              "[][<][x>]",
		"no markup":        "[no markup]",
	} {
		if got := bot.ReplaceMarkup(in, upper, mention); got != want {
			t.Errorf("ReplaceMarkup(%q) = %q, want %q", in, got, want)
		}
	}
}
