package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestFrozenAt: a recurring window from its cron start for its duration,
// in the env's time zone, and a one-off window of whole days, both ends
// included.
func TestFrozenAt(t *testing.T) {
	prague, err := time.LoadLocation("Europe/Prague")
	if err != nil {
		t.Fatal(err)
	}
	e := &Environment{Name: "prod", TimeZone: "Europe/Prague", Freeze: []FreezeWindow{
		{Cron: "0 15 * * 5", Duration: Duration{64 * time.Hour}, Reason: "weekend"},
		{From: "2026-12-23", To: "2026-12-30", Reason: "holidays"},
	}}
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.ParseInLocation("2006-01-02 15:04", s, prague)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		at          string
		reason      string
		start, end  string
		notFrozenAt bool
	}{
		{at: "2026-12-03 12:00", notFrozenAt: true}, // Thursday
		{at: "2026-12-04 14:59", notFrozenAt: true}, // Friday before 15:00
		{at: "2026-12-04 15:00", reason: "weekend", start: "2026-12-04 15:00", end: "2026-12-07 07:00"},
		{at: "2026-12-06 23:00", reason: "weekend", start: "2026-12-04 15:00", end: "2026-12-07 07:00"},
		{at: "2026-12-07 07:00", notFrozenAt: true}, // Monday 07:00: over
		{at: "2026-12-23 00:00", reason: "holidays", start: "2026-12-23 00:00", end: "2026-12-31 00:00"},
		{at: "2026-12-30 23:59", reason: "holidays", start: "2026-12-23 00:00", end: "2026-12-31 00:00"},
		{at: "2026-12-25 16:00", reason: "holidays", start: "2026-12-23 00:00", end: "2026-12-31 00:00"}, // a Friday: the one that ends last
		{at: "2026-12-31 00:00", notFrozenAt: true},
		{at: "2027-01-02 10:00", reason: "weekend", start: "2027-01-01 15:00", end: "2027-01-04 07:00"},
	} {
		f, ok := e.FrozenAt(at(tc.at).UTC())
		switch {
		case tc.notFrozenAt && ok:
			t.Errorf("%s: frozen %+v, want not", tc.at, f)
		case !tc.notFrozenAt && (!ok || f.Reason != tc.reason || !f.Start.Equal(at(tc.start)) || !f.End.Equal(at(tc.end))):
			t.Errorf("%s: %+v, %v; want %s from %s to %s", tc.at, f, ok, tc.reason, tc.start, tc.end)
		}
	}
	if f, ok := e.NextFreeze(at("2026-12-03 12:00")); !ok || f.Reason != "weekend" || !f.Start.Equal(at("2026-12-04 15:00")) {
		t.Errorf("NextFreeze = %+v, %v", f, ok)
	}
}

// TestValidateFreeze pins the checks of environments[].freeze.
func TestValidateFreeze(t *testing.T) {
	yaml := `environments:
  - name: prod
    namespace: p
    freeze:
      - {cron: "0 15 * * 5", duration: 64h, reason: weekend}
      - {from: "2026-12-23", to: "2027-01-02", reason: holidays}
      - {cron: "0 15 * * 5", reason: ""}
      - {cron: "every friday", duration: 2000h, reason: x}
      - {from: "2027-01-02", to: "2026-12-23", duration: 1h, reason: x}
      - {from: "23.12.2026", to: "2027-01-02", cron: "0 0 * * *", reason: x}
      - {reason: nothing}
services:
  - {name: web, repository: quay.io/x/web}
`
	got := snippetProblems(t, yaml)
	want := []string{
		"environments[0].freeze[2].reason: required: people told of the freeze read why",
		"environments[0].freeze[2].duration: required with cron: how long each window lasts, e.g. 64h",
		`environments[0].freeze[3].cron: "every friday" is not a cron expression`,
		"environments[0].freeze[3].duration: 2000h0m0s is longer than 744h0m0s; write a long freeze as from and to dates",
		"environments[0].freeze[4].to: 2026-12-23 is before from 2027-01-02",
		"environments[0].freeze[4].duration: only with cron; from and to are whole days",
		"environments[0].freeze[5]: give either cron and duration (a recurring window) or from and to (dates), not both",
		"environments[0].freeze[6]: give cron and duration (a recurring window) or from and to (dates)",
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g string) bool { return strings.HasPrefix(g, w) }) {
			t.Errorf("missing problem %q in:\n  %s", w, strings.Join(got, "\n  "))
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d problems, want %d:\n  %s", len(got), len(want), strings.Join(got, "\n  "))
	}
}

// TestFrozenAtAcrossClockChanges: a recurring window's duration is
// wall-clock time, so "Friday 15:00 for 64h" ends Monday 07:00 on the
// weekends the clocks change too; and a window another one continues ends
// when the last of them does.
func TestFrozenAtAcrossClockChanges(t *testing.T) {
	prague, err := time.LoadLocation("Europe/Prague")
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, prague)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	e := &Environment{Name: "prod", TimeZone: "Europe/Prague", Freeze: []FreezeWindow{
		{Cron: "0 15 * * 5", Duration: Duration{64 * time.Hour}, Reason: "weekend"},
	}}
	for _, tc := range []struct {
		at     string
		frozen bool
	}{
		{"2026-03-30 06:59", true}, {"2026-03-30 07:00", false}, // spring forward on Sunday 03-29
		{"2026-10-26 06:30", true}, {"2026-10-26 07:00", false}, // fall back on Sunday 10-25
	} {
		f, ok := e.FrozenAt(at(tc.at))
		if ok != tc.frozen || ok && !f.End.Equal(at(tc.at[:10]+" 07:00")) {
			t.Errorf("%s: %+v, %v; want frozen %v until 07:00", tc.at, f, ok, tc.frozen)
		}
	}

	chained := &Environment{Name: "prod", Freeze: []FreezeWindow{
		{From: "2026-12-28", To: "2027-01-01", Reason: "holidays"},                 // until Saturday 00:00 UTC
		{Cron: "0 0 * * 6", Duration: Duration{48 * time.Hour}, Reason: "weekend"}, // Saturday and Sunday
	}}
	f, ok := chained.FrozenAt(time.Date(2027, 1, 1, 12, 0, 0, 0, time.UTC))
	if !ok || f.Reason != "holidays" || !f.End.Equal(time.Date(2027, 1, 4, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("holidays into a weekend: %+v, %v; want frozen until Monday 2027-01-04", f, ok)
	}

	for _, tc := range []struct{ yaml, want string }{
		{`{cron: "0 2 * * *", duration: 24h, reason: x}`, "the windows would run into one that never ends"},
		{`{cron: "0 15 * * 5", duration: 64h30s, reason: x}`, "is not whole minutes"},
		{`{from: "2026-12-23", to: "2072-01-02", reason: x}`, "is more than a year"},
	} {
		got := snippetProblems(t, "environments:\n  - name: prod\n    namespace: p\n    freeze:\n      - "+tc.yaml+"\nservices:\n  - {name: web, repository: quay.io/x/web}\n")
		if len(got) != 1 || !strings.Contains(got[0], tc.want) {
			t.Errorf("%s: %q, want one problem with %q", tc.yaml, got, tc.want)
		}
	}
}
