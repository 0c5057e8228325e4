package kube

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/internal/kubefake"
)

// subdomain is what the API server accepts as a ConfigMap name (DNS-1123 subdomain).
var subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

func validName(n string) bool { return len(n) <= 253 && subdomain.MatchString(n) }

func newTestStore(t testing.TB, opts ...Option) *Store {
	t.Helper()
	s, err := New(kubefake.NewClientset(), "deploybot", opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		ns      string
		opts    []Option
		wantErr string
	}{
		{name: "defaults", ns: "deploybot"},
		{name: "instance", ns: "deploybot", opts: []Option{WithInstance("bot-2")}},
		{name: "no namespace", wantErr: "no namespace"},
		{name: "bad instance", ns: "deploybot", opts: []Option{WithInstance("Bot_2")}, wantErr: `instance "Bot_2"`},
		{name: "long instance", ns: "deploybot", opts: []Option{WithInstance(strings.Repeat("a", 41))}, wantErr: "at most 40"},
	}
	for _, tt := range tests {
		_, err := New(kubefake.NewClientset(), tt.ns, tt.opts...)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.wantErr)
		}
	}
}

func TestObjectNames(t *testing.T) {
	s := newTestStore(t)
	tests := []struct {
		name string
		got  string
		want string // exact, or a prefix when it ends in "*"
	}{
		{"store.NewID request", s.requestName("abc234defg"), "deploybot-req-abc234defg"},
		{"request ID that is no name", s.requestName("Abc_1"), "deploybot-req-x-*"},
		{"request ID that looks hashed", s.requestName("x-abc"), "deploybot-req-x-*"},
		{"lock", s.lockName("prod/packit-worker"), "deploybot-lock-prod-packit-worker-*"},
		{"lock of odd characters", s.lockName("Prod/Ünïcode..x"), "deploybot-lock-prod-n-code-x-*"},
		{"empty lock key", s.lockName(""), "deploybot-lock-*"},
		{"long lock key", s.lockName(strings.Repeat("ab/", 50)), "deploybot-lock-ab-ab-*"},
		{"dedupe key", s.onceName("event/slack/Ev1"), "deploybot-once-*"},
		{"pauses", s.pausesName(), "deploybot-pauses"},
	}
	for _, tt := range tests {
		if !validName(tt.got) {
			t.Errorf("%s: %q is not a valid ConfigMap name", tt.name, tt.got)
		}
		if prefix, ok := strings.CutSuffix(tt.want, "*"); ok {
			if !strings.HasPrefix(tt.got, prefix) {
				t.Errorf("%s: %q, want prefix %q", tt.name, tt.got, prefix)
			}
		} else if tt.got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, tt.got, tt.want)
		}
	}
	if s.lockName("prod/a.b") == s.lockName("prod/a-b") {
		t.Errorf("two lock keys that read alike share a ConfigMap")
	}
}

// TestAuditNamesSortInRecordingOrder: names sort as events were recorded,
// even when the clock stands still or steps back.
func TestAuditNamesSortInRecordingOrder(t *testing.T) {
	at := time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)
	s := newTestStore(t)
	clock := []time.Time{at, at, at.Add(time.Second), at.Add(-time.Hour), at.Add(2 * time.Second)}
	var names []string
	for _, c := range clock {
		n := s.auditName(c)
		if !validName(n) {
			t.Fatalf("%q is not a valid ConfigMap name", n)
		}
		names = append(names, n)
	}
	if !slices.IsSorted(names) {
		t.Errorf("audit names do not sort in recording order:\n%s", strings.Join(names, "\n"))
	}
	if got, ok := s.auditTime(names[2]); !ok || !got.Equal(at.Add(time.Second)) {
		t.Errorf("auditTime(%s) = %v %v, want %v", names[2], got, ok, at.Add(time.Second))
	}
	if _, ok := s.auditTime("deploybot-req-abc"); ok {
		t.Errorf("auditTime read a time from a request's name")
	}
}

// FuzzObjectNames: whatever the key, every name is a valid ConfigMap name,
// the same key always gives the same name, and the recording time encoded
// in an audit name reads back.
func FuzzObjectNames(f *testing.F) {
	for _, seed := range []string{"prod/packit-worker", "", "x-abc", "Abc_1", "ÄÖ/..//--", strings.Repeat("z", 300), "abc234defg"} {
		f.Add(seed, int64(1_790_000_000_000_000_000))
	}
	s := newTestStore(f)
	f.Fuzz(func(t *testing.T, key string, nanos int64) {
		for _, n := range []string{s.requestName(key), s.lockName(key), s.onceName(key)} {
			if !validName(n) {
				t.Fatalf("key %q gives invalid name %q", key, n)
			}
		}
		// Another replica's Store names the same objects.
		other := newTestStore(t)
		if s.lockName(key) != other.lockName(key) || s.requestName(key) != other.requestName(key) || s.onceName(key) != other.onceName(key) {
			t.Fatalf("two Stores name the objects of %q differently", key)
		}
		if nanos < 0 {
			return // before 1970: not a time the store records at
		}
		at := time.Unix(0, nanos)
		n := other.auditName(at)
		if !validName(n) {
			t.Fatalf("audit name %q is invalid", n)
		}
		if got, ok := other.auditTime(n); !ok || !got.Equal(at) {
			t.Fatalf("auditTime(%q) = %v %v, want %v", n, got, ok, at)
		}
	})
}
