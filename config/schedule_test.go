package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// scheduled is minimal with a Tuesday-night prod schedule announced in Slack.
const scheduled = minimal + `
store:
  backend: kubernetes
  namespace: deploybot
  retention: {age: 240h, requests: 50, auditEvents: 500}
`

func TestParseSchedulingFields(t *testing.T) {
	cfg, err := Parse([]byte(strings.Replace(scheduled, "    approvals: {count: 1}\n", `    approvals: {count: 1}
    schedule: "0 2 * * 2"
    timeZone: Europe/Prague
    channel: {platform: slack, id: C0123DEPLOY}
    scheduleHeadsUp: 30m
    autoApproveScheduled: true
    catchUp: true
`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	prod, _ := cfg.Env("prod")
	checks := []struct {
		name      string
		got, want any
	}{
		{"channel", *prod.Channel, ChannelRef{Platform: "slack", ID: "C0123DEPLOY"}},
		{"heads-up", prod.ScheduleHeadsUp.Duration, 30 * time.Minute},
		{"auto-approve", prod.AutoApproveScheduled, true},
		{"catch-up", prod.CatchUp, true},
		{"store namespace", cfg.Store.Namespace, "deploybot"},
		{"retention age", cfg.Store.Retention.Age.Duration, 240 * time.Hour},
		{"retention requests", cfg.Store.Retention.Requests, 50},
		{"retention audit", cfg.Store.Retention.AuditEvents, 500},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	s, err := prod.Cron()
	if err != nil {
		t.Fatal(err)
	}
	// 02:00 in Prague on a Tuesday in winter is 01:00 UTC.
	from := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	if got, want := s.Next(from), time.Date(2026, 11, 24, 1, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("next run after %v = %v, want %v", from, got, want)
	}
}

func TestValidateScheduling(t *testing.T) {
	sched := func(c *Config) *Environment {
		e := &c.Environments[1]
		e.Schedule = "0 2 * * 2"
		return e
	}
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   []string
	}{
		{name: "schedule with everything", mutate: func(c *Config) {
			e := sched(c)
			e.Channel = &ChannelRef{Platform: "discord", ID: "123"}
			e.ScheduleHeadsUp.Duration = time.Hour
			e.AutoApproveScheduled, e.CatchUp = true, true
		}},
		{name: "schedule without a channel or heads-up", mutate: func(c *Config) { sched(c) }},
		{name: "options without a schedule", mutate: func(c *Config) {
			e := &c.Environments[0]
			e.Channel = &ChannelRef{Platform: "slack", ID: "C1"}
			e.ScheduleHeadsUp.Duration = time.Minute
			e.AutoApproveScheduled, e.CatchUp = true, true
		}, want: []string{
			"environments[0].scheduleHeadsUp: has no effect without a schedule",
			"environments[0].catchUp: has no effect without a schedule",
			"environments[0].autoApproveScheduled: has no effect without a schedule or scheduled: true",
		}},
		{name: "auto-approval of the imports of pushes and polls, without a cron", mutate: func(c *Config) {
			e := &c.Environments[0]
			e.Scheduled, e.AutoApproveScheduled = true, true
		}},
		{name: "heads-up without a channel", mutate: func(c *Config) { sched(c).ScheduleHeadsUp.Duration = time.Minute },
			want: []string{"environments[1].scheduleHeadsUp: needs environments[1].channel to post the heads-up to"}},
		{name: "negative heads-up", mutate: func(c *Config) { sched(c).ScheduleHeadsUp.Duration = -time.Minute },
			want: []string{"environments[1].scheduleHeadsUp: must not be negative, got -1m0s"}},
		{name: "heads-up beyond a week", mutate: func(c *Config) {
			e := sched(c)
			e.Channel = &ChannelRef{Platform: "slack", ID: "C1"}
			e.ScheduleHeadsUp.Duration = 8 * 24 * time.Hour
		}, want: []string{"environments[1].scheduleHeadsUp: 192h0m0s is more than a week ahead"}},
		{name: "heads-up longer than the gap between runs", mutate: func(c *Config) {
			e := sched(c)
			e.Schedule = "0 * * * *"
			e.Channel = &ChannelRef{Platform: "slack", ID: "C1"}
			e.ScheduleHeadsUp.Duration = time.Hour
		}, want: []string{`environments[1].scheduleHeadsUp: 1h0m0s is not shorter than the 1h0m0s between two runs of "0 * * * *"`}},
		{name: "bad channel", mutate: func(c *Config) { sched(c).Channel = &ChannelRef{Platform: "irc"} },
			want: []string{
				`environments[1].channel.platform: "irc" is not one of slack, discord, terminal`,
				"environments[1].channel.id: required (the channel scheduled imports are announced in)",
			}},
		{name: "store namespace and retention", mutate: func(c *Config) {
			c.Store.Namespace = "Deploy_Bot"
			c.Store.Retention = Retention{Age: Duration{-time.Hour}, Requests: -1, AuditEvents: -2}
		}, want: []string{
			`store.namespace: "Deploy_Bot" is not a valid namespace name`,
			"store.retention.age: must not be negative, got -1h0m0s",
			"store.retention.requests: must not be negative, got -1",
			"store.retention.auditEvents: must not be negative, got -2",
		}},
		{name: "store namespace with the file backend", mutate: func(c *Config) {
			c.Store.Backend, c.Store.Namespace = "file", "deploybot"
		}, want: []string{"store.namespace: is only used by the kubernetes backend, but backend is file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(minimal))
			if err != nil {
				t.Fatal(err)
			}
			tt.mutate(cfg)
			var got []string
			if err := cfg.Validate(); err != nil {
				for _, p := range err.(*ValidationError).Problems {
					got = append(got, p.String())
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

func TestScheduleGap(t *testing.T) {
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		spec string
		want time.Duration
	}{
		{"weekly", "0 2 * * 2", 7 * 24 * time.Hour},
		{"hourly", "0 * * * *", time.Hour},
		{"twice on Tuesdays", "0 2,4 * * 2", 2 * time.Hour},
		{"every minute", "* * * * *", time.Minute},
	}
	for _, tt := range tests {
		e := Environment{Name: "prod", Schedule: tt.spec}
		s, err := e.Cron()
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := ScheduleGap(s, from); got != tt.want {
			t.Errorf("%s: gap = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// FuzzSchedulingConfig: a config Parse accepts has schedules that parse in
// their zone, heads-ups that fit between runs and go somewhere, and store
// settings that are not negative.
func FuzzSchedulingConfig(f *testing.F) {
	f.Add([]byte(strings.Replace(scheduled, "    approvals: {count: 1}\n", `    approvals: {count: 1}
    schedule: "0 2 * * 2"
    timeZone: Europe/Prague
    channel: {platform: slack, id: C0123DEPLOY}
    scheduleHeadsUp: 30m
    autoApproveScheduled: true
    catchUp: true
`, 1)))
	f.Add([]byte(minimal + "store: {backend: kubernetes, retention: {age: 1h, requests: 1}}\n"))
	f.Add([]byte("environments: [{name: p, namespace: p, schedule: '*/5 * * * *', scheduleHeadsUp: 4m, channel: {platform: terminal, id: x}}]\nservices: [{name: a, repository: r/a}]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := Parse(b)
		if err != nil {
			return
		}
		for _, e := range cfg.Environments {
			s, err := e.Cron()
			if err != nil || (s == nil) != (e.Schedule == "") {
				t.Fatalf("env %s: schedule %q accepted but Cron() = %v, %v", e.Name, e.Schedule, s, err)
			}
			lead := e.ScheduleHeadsUp.Duration
			if lead < 0 || (lead > 0 && (e.Channel == nil || s == nil)) {
				t.Fatalf("env %s: heads-up %v accepted with channel %v and schedule %q", e.Name, lead, e.Channel, e.Schedule)
			}
			if gap := ScheduleGap(s, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)); s != nil && lead > 0 && gap > 0 && lead >= gap {
				t.Fatalf("env %s: heads-up %v accepted though runs are %v apart", e.Name, lead, gap)
			}
		}
		if r := cfg.Store.Retention; r.Age.Duration < 0 || r.Requests < 0 || r.AuditEvents < 0 {
			t.Fatalf("negative retention accepted: %+v", r)
		}
	})
}
