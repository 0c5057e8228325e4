package schedule

import (
	"strings"
	"testing"
	"time"
)

func TestRunID(t *testing.T) {
	at := time.Date(2026, 11, 24, 2, 0, 0, 0, time.FixedZone("CET", 3600))
	tests := []struct {
		name string
		env  string
		want string
	}{
		{"short env, in UTC", "prod", "prod-20261124-0100z"},
		{"long env is hashed", strings.Repeat("e", 63), ""},
	}
	for _, tt := range tests {
		got := RunID(tt.env, at)
		if tt.want != "" && got != tt.want {
			t.Errorf("%s: RunID = %q, want %q", tt.name, got, tt.want)
		}
		if len(got) > 64 || strings.Trim(got, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			t.Errorf("%s: RunID %q is not a valid request ID", tt.name, got)
		}
	}
}
