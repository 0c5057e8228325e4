package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// faultFigures summarises the calls a fault schedule hit.
type faultFigures struct {
	calls   int
	byFault map[string]int
	window  time.Duration
}

func (f faultFigures) String() string {
	return fmt.Sprintf("%d calls in the %.0f s of faults = %.2f/s (429: %d, 500: %d, hanging: %d)",
		f.calls, f.window.Seconds(), float64(f.calls)/f.window.Seconds(), f.byFault["429"], f.byFault["500"], f.byFault["hang"])
}

// hits counts the faulted calls of methods.
func hits(rec *recorder, fs *faults, methods ...string) faultFigures {
	start, end := fs.window()
	out := faultFigures{byFault: map[string]int{}, window: end.Sub(start)}
	for _, c := range rec.all() {
		if c.fault == "" {
			continue
		}
		for _, m := range methods {
			if c.method == m {
				out.calls++
				out.byFault[c.fault]++
			}
		}
	}
	return out
}

// count is how many calls of method the fake got.
func count(rec *recorder, method string) int {
	n := 0
	for _, c := range rec.all() {
		if c.method == method {
			n++
		}
	}
	return n
}

// finalState says whether c is a successful write of request id's final
// state.
func finalState(c call, id string) bool {
	head := firstLine(c.text)
	return c.fault == "" && requestID(c.text) == id && (strings.Contains(head, "succeeded") || strings.Contains(head, "failed"))
}

// arrival tells when the final state of id arrived relative to recovery.
func arrival(ctx context.Context, rec *recorder, fs *faults, id string, method func(call) bool) (string, bool) {
	_, end := fs.window()
	c, ok := rec.waitFor(ctx, time.Until(end)+150*time.Second, func(c call) bool { return method(c) && finalState(c, id) })
	if !ok {
		return fmt.Sprintf("final state of #%s never arrived (waited 150 s after recovery)", id), false
	}
	if after := c.at.Sub(end); after < 0 {
		start, _ := fs.window()
		return fmt.Sprintf("final state %q arrived %.1f s into the faults, before recovery", firstLine(c.text), c.at.Sub(start).Seconds()), true
	}
	return fmt.Sprintf("final state %q arrived %.1f s after recovery", firstLine(c.text), c.at.Sub(end).Seconds()), true
}

// errorMetrics is the platform error counters of /metrics, compact.
func errorMetrics(b *proc) string {
	lines := b.metric("deploybot_platform_api_errors_total")
	if len(lines) == 0 {
		return "deploybot_platform_api_errors_total: (no series)"
	}
	return "/metrics: " + strings.Join(lines, ", ")
}

// giveUps quotes the first "giving up" line of the log, if any.
func giveUps(b *proc) string {
	n := strings.Count(b.log(), "giving up")
	if n == 0 {
		return "log: no \"giving up\""
	}
	return fmt.Sprintf("log: %d \"giving up\" lines, the first: %s", n, clip(lineWith(b.log(), "giving up"), 260))
}

// slackFaults is row 3: a failing chat.postMessage, chat.update and
// response_url, each against its own serve process, at the same time.
func (p *probe) slackFaults(ctx context.Context) ([]row, error) {
	type sub struct {
		name string
		run  func(context.Context) (row, error)
	}
	subs := []sub{
		{"post", p.slackPostFaults},
		{"update", func(ctx context.Context) (row, error) { return p.slackUpdateFaults(ctx, false) }},
		{"update+hook", func(ctx context.Context) (row, error) { return p.slackUpdateFaults(ctx, true) }},
		{"hook", p.slackHookFaults},
	}
	rows := make([]row, len(subs))
	errs := make([]error, len(subs))
	var wg sync.WaitGroup
	for i, s := range subs {
		wg.Go(func() { rows[i], errs[i] = s.run(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			rows[i] = row{n: "3", scenario: subs[i].name + " (probe failed)", now: "error: " + oneLine(err.Error())}
		}
	}
	return rows, nil
}

const slackPrevious = "previous: ~10 calls/s at a failing API; a failed final chat.update dropped; chat.postMessage not retried; a request with no message held its lock for 1 h"

// slackPostFaults: chat.postMessage fails from just before the command.
func (p *probe) slackPostFaults(ctx context.Context) (row, error) {
	s, err := newFakeSlack()
	if err != nil {
		return row{}, err
	}
	defer s.close()
	b, err := p.serve(ctx, serveOpts{env: s.env(true), name: "row3-post"})
	if err != nil {
		return row{}, err
	}
	defer b.stop()
	s.faults.begin(defaultPhases(p.o.scale), func(m string) bool { return m == "chat.postMessage" })
	sent := time.Now()
	if err := s.command(ctx, b.addr, slackAlice, "import stg worker", "row3-post.import"); err != nil {
		return row{}, err
	}
	_, end := s.faults.window()
	c, ok := s.rec.waitFor(ctx, time.Until(end)+60*time.Second, func(c call) bool {
		return c.fault == "" && (c.method == "chat.postMessage" || c.method == "response_url" || c.method == "chat.postEphemeral") && c.at.After(sent)
	})
	shown := "no message at all within 60 s of recovery"
	if ok {
		shown = fmt.Sprintf("the request message arrived through %s %.1f s after the command: %q", c.method, c.at.Sub(sent).Seconds(), firstLine(c.text))
	}
	time.Sleep(time.Until(end.Add(time.Second)))
	return row{
		n:        "3",
		scenario: "Slack, bot token: chat.postMessage answers 429 (Retry-After: 2) for 6 s, then 500 for 6 s, then hangs for 16 s, then recovers; `/deploy import stg worker` sent as the faults begin",
		now:      fmt.Sprintf("chat.postMessage: %s; %s; %s; %s", hits(s.rec, &s.faults, "chat.postMessage"), shown, errorMetrics(b), giveUps(b)),
		previous: slackPrevious,
	}, nil
}

// slackUpdateFaults: chat.update fails from the moment the request shows
// executing; with down, the response_urls too (all of Slack is down).
func (p *probe) slackUpdateFaults(ctx context.Context, down bool) (row, error) {
	s, err := newFakeSlack()
	if err != nil {
		return row{}, err
	}
	defer s.close()
	b, err := p.serve(ctx, serveOpts{env: s.env(true), name: "row3-update" + map[bool]string{true: "-down"}[down]})
	if err != nil {
		return row{}, err
	}
	defer b.stop()
	tag := "row3-update"
	if down {
		tag = "row3-down"
	}
	req, err := p.importAndConfirm(ctx, s, b, tag, true)
	if err != nil {
		return row{}, err
	}
	s.faults.begin(defaultPhases(p.o.scale), func(m string) bool { return m == "chat.update" || (down && m == "response_url") })
	got, _ := arrival(ctx, s.rec, &s.faults, req.id, func(c call) bool { return c.method == "chat.update" || c.method == "response_url" })
	for _, c := range s.rec.all() {
		if finalState(c, req.id) {
			got += " through " + c.method
			break
		}
	}
	what := "Slack, bot token: chat.update fails the same way from the moment the request shows executing (the rollout takes ~3 s, so the final state falls in the faults); response_url works"
	figure := fmt.Sprintf("chat.update: %s; response_url: %d posts", hits(s.rec, &s.faults, "chat.update"), count(s.rec, "response_url"))
	if down {
		what = "the same, and the response_urls fail the same way too (all of Slack down)"
		figure = fmt.Sprintf("chat.update: %s; response_url: %s", hits(s.rec, &s.faults, "chat.update"), hits(s.rec, &s.faults, "response_url"))
	}
	return row{
		n:        "3",
		scenario: what,
		now:      fmt.Sprintf("%s; %s; %s; %s", figure, got, errorMetrics(b), giveUps(b)),
		previous: slackPrevious,
	}, nil
}

// slackHookFaults: no bot token; the response_urls fail from the moment
// the request shows executing.
func (p *probe) slackHookFaults(ctx context.Context) (row, error) {
	s, err := newFakeSlack()
	if err != nil {
		return row{}, err
	}
	defer s.close()
	b, err := p.serve(ctx, serveOpts{env: s.env(false), name: "row3-hook"})
	if err != nil {
		return row{}, err
	}
	defer b.stop()
	req, err := p.importAndConfirm(ctx, s, b, "row3-hook", false)
	if err != nil {
		return row{}, err
	}
	s.faults.begin(defaultPhases(p.o.scale), func(m string) bool { return m == "response_url" })
	got, _ := arrival(ctx, s.rec, &s.faults, req.id, func(c call) bool { return c.method == "response_url" })
	uses := map[string]int{}
	for _, c := range s.rec.all() {
		if c.method == "response_url" {
			uses[c.path]++
		}
	}
	var u []string
	for path, n := range uses {
		u = append(u, fmt.Sprintf("%s %d", strings.TrimPrefix(path, "/hooks/row3-hook."), n))
	}
	return row{
		n:        "3",
		scenario: "Slack, no bot token: the response_urls (command's and click's) fail the same way from the moment the request shows executing",
		now: fmt.Sprintf("response_url: %s; %s; posts per URL (Slack allows 5): %s; %s; %s",
			hits(s.rec, &s.faults, "response_url"), got, strings.Join(u, ", "), errorMetrics(b), giveUps(b)),
		previous: slackPrevious,
	}, nil
}
