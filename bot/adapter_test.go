package bot_test

import (
	"slices"
	"strings"
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

// TestImportOffer: an Import button's value names the env and services and
// reads back; names too long for a Discord custom_id offer the whole env,
// and nothing but names is read.
func TestImportOffer(t *testing.T) {
	long := []string{"packit-service", "packit-worker", "packit-service-fedmsg", "packit-dashboard", "packit-sandcastle-builder"}
	for _, tc := range []struct {
		env      string
		services []string
		want     string
		back     []string
	}{
		{"prod", []string{"packit-worker"}, "prod+packit-worker", []string{"packit-worker"}},
		{"stg", []string{"a", "b.c"}, "stg+a+b.c", []string{"a", "b.c"}},
		{"prod", nil, "prod", nil},
		{"prod", long, "prod", nil},
	} {
		v := bot.ImportOffer(tc.env, tc.services)
		if v != tc.want {
			t.Errorf("ImportOffer(%s, %v) = %q, want %q", tc.env, tc.services, v, tc.want)
		}
		env, services, ok := bot.ParseImportOffer(v)
		if !ok || env != tc.env || !slices.Equal(services, tc.back) {
			t.Errorf("ParseImportOffer(%q) = %s %v %v", v, env, services, ok)
		}
	}
	for _, bad := range []string{"", "+", "prod+", "+web", "prod web", "Prod", "prod+web;rm", "#abc", "prod+-web", strings.Repeat("a", 81)} {
		if env, services, ok := bot.ParseImportOffer(bad); ok {
			t.Errorf("ParseImportOffer(%q) = %s %v, want refused", bad, env, services)
		}
	}
}

func FuzzParseImportOffer(f *testing.F) {
	f.Add("prod+packit-worker")
	f.Add("prod")
	f.Add("“prod”+web")
	f.Fuzz(func(t *testing.T, v string) {
		env, services, ok := bot.ParseImportOffer(v)
		if !ok {
			return
		}
		if back := bot.ImportOffer(env, services); back != v {
			t.Fatalf("ParseImportOffer(%q) reads %s %v, which offers %q", v, env, services, back)
		}
	})
}
