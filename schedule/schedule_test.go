package schedule

import (
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/plan"
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

// An unhold is auto-approved at a hold's --until time only while it rolls
// nothing: one that would roll a tag moved during the hold waits for the
// env's approvals.
func TestMovesNoImage(t *testing.T) {
	a, b := plan.Image{Digest: "sha256:" + strings.Repeat("a", 64)}, plan.Image{Digest: "sha256:" + strings.Repeat("b", 64)}
	for _, tc := range []struct {
		name    string
		targets []plan.Target
		want    bool
	}{
		{"restores only", []plan.Target{{Service: "x", From: a, To: a}}, true},
		{"an unchanged target", []plan.Target{{Service: "x", From: a, To: b, Unchanged: true}, {Service: "y", From: b, To: b}}, true},
		{"rolls a moved tag", []plan.Target{{Service: "x", From: a, To: a}, {Service: "y", From: a, To: b}}, false},
	} {
		if got := movesNoImage(plan.Plan{Action: plan.ActionUnhold, Targets: tc.targets}); got != tc.want {
			t.Errorf("%s: movesNoImage = %v, want %v", tc.name, got, tc.want)
		}
	}
}
