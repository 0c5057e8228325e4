package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// opened is a request the probe opened and confirmed through Slack.
type opened struct {
	id, ts    string    // request ID; the message's timestamp (bot token) or ""
	executing time.Time // when the fake got the "executing" update
}

// msgMethod says whether c wrote the request message: chat.postMessage and
// chat.update with a bot token, response_url without.
func msgMethod(c call, botToken bool) bool {
	if botToken {
		return c.method == "chat.postMessage" || c.method == "chat.update"
	}
	return c.method == "response_url"
}

// importAndConfirm sends alice's `/deploy import stg worker`, waits for the
// request message, clicks Confirm and waits until the message says
// executing. stg needs a confirm and no approval.
func (p *probe) importAndConfirm(ctx context.Context, s *fakeSlack, b *proc, tag string, botToken bool) (opened, error) {
	var o opened
	if err := s.command(ctx, b.addr, slackAlice, "import stg worker", tag+".import"); err != nil {
		return o, err
	}
	c, ok := s.rec.waitFor(ctx, 30*time.Second, func(c call) bool {
		return c.fault == "" && msgMethod(c, botToken) && strings.Contains(c.text, "waiting for the requester to confirm") && requestID(c.text) != ""
	})
	if !ok {
		return o, fmt.Errorf("no request message for `import stg worker` within 30s; deploybot's log (%s):\n%s", b.logPath, b.logTail(15))
	}
	o.id, o.ts = requestID(c.text), c.ts
	if err := s.click(ctx, b.addr, "confirm", o.id, o.ts, tag+".confirm"); err != nil {
		return o, err
	}
	c, ok = s.rec.waitFor(ctx, 30*time.Second, func(c call) bool {
		return c.fault == "" && msgMethod(c, botToken) && strings.Contains(c.text, "#"+o.id) && strings.Contains(c.text, "executing")
	})
	if !ok {
		return o, fmt.Errorf("#%s never showed executing after Confirm; deploybot's log (%s):\n%s", o.id, b.logPath, b.logTail(15))
	}
	o.executing = c.at
	return o, nil
}

// lastWrite is the last successful write of request id's message, as plain
// text's first line.
func lastWrite(s *fakeSlack, id string, botToken bool) (call, bool) {
	var last call
	found := false
	for _, c := range s.rec.all() {
		if c.fault == "" && msgMethod(c, botToken) && c.method != "chat.postMessage" && requestID(c.text) == id {
			last, found = c, true
		}
	}
	return last, found
}

// ask sends alice's slash command and returns the first answer through its
// response_url or chat.postEphemeral.
func (p *probe) ask(ctx context.Context, s *fakeSlack, b *proc, text, trigger string) (string, error) {
	since := time.Now()
	if err := s.command(ctx, b.addr, slackAlice, text, trigger); err != nil {
		return "", err
	}
	c, ok := s.rec.waitFor(ctx, 30*time.Second, func(c call) bool {
		return c.fault == "" && !c.at.Before(since) && (c.path == "/hooks/"+trigger || c.method == "chat.postEphemeral")
	})
	if !ok {
		return "", fmt.Errorf("no answer to /deploy %s within 30s", text)
	}
	return c.text, nil
}

// lineWith is the first line of text containing sub, trimmed, or "".
func lineWith(text, sub string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			return clip(strings.TrimSpace(l), 220)
		}
	}
	return ""
}

// sigterm is row 1: SIGTERM while an import executes, with the default
// grace and with --shutdown-grace 1s.
func (p *probe) sigterm(ctx context.Context) ([]row, error) {
	base, err := p.undisturbed(ctx)
	if err != nil {
		return nil, err
	}
	rows := []row{base}
	for i, grace := range []string{"", "1s"} {
		s, err := newFakeSlack()
		if err != nil {
			return rows, err
		}
		defer s.close()
		state := filepath.Join(p.tmp, fmt.Sprintf("row1-%d", i), "state.json")
		o := serveOpts{state: state, env: s.env(true), name: "row1-sigterm"}
		what := "SIGTERM 1 s into the execution of a confirmed `/deploy import stg worker` (bot token), default --shutdown-grace (25s)"
		if grace != "" {
			o.extra = []string{"--shutdown-grace", grace}
			what = "the same with --shutdown-grace " + grace
		}
		b, err := p.serve(ctx, o)
		if err != nil {
			return rows, err
		}
		req, err := p.importAndConfirm(ctx, s, b, fmt.Sprintf("row1-%d", i), true)
		if err != nil {
			b.kill()
			return rows, err
		}
		time.Sleep(time.Until(req.executing.Add(time.Second)))
		took, clean := b.terminate(60 * time.Second)
		status := "exit status 0"
		if b.err != nil {
			status = b.err.Error()
		}
		exit := fmt.Sprintf("exit %.2f s after SIGTERM (%s)", took.Seconds(), status)
		if !clean {
			exit = fmt.Sprintf("did not exit within %.0f s of SIGTERM (killed)", took.Seconds())
		}
		last := "(no chat.update after executing)"
		if c, ok := lastWrite(s, req.id, true); ok {
			last = fmt.Sprintf("%q (%.2f s after SIGTERM)", firstLine(c.text), c.at.Sub(b.exitAt.Add(-took)).Seconds())
			if why := lineWith(c.text, "Interrupted"); why != "" {
				last += ", saying " + strconv.Quote(clip(why, 120))
			}
		}

		logLine := lineWith(b.log(), "recorded as interrupted")
		if logLine == "" {
			logLine = "(no \"recorded as interrupted\" warning)"
		} else {
			logLine = "logged a warning that executions were recorded as interrupted"
		}
		// What the store says: a second life on the same state answers
		// /deploy audit.
		b2, err := p.serve(ctx, serveOpts{state: state, env: s.env(true), name: "row1-after"})
		if err != nil {
			return rows, err
		}
		audit, err := p.ask(ctx, s, b2, "audit 4", fmt.Sprintf("row1-%d.audit", i))
		b2.stop()
		if err != nil {
			return rows, err
		}
		after := lineWith(audit, req.id)
		if after == "" {
			after = "(no audit line for #" + req.id + ")"
		}
		rows = append(rows, row{
			n:        "1",
			scenario: what,
			now: fmt.Sprintf("%s; last chat.update of #%s: %s; %s; after a restart, `audit`: %q",
				exit, req.id, last, logLine, after),
			previous: "previous: exit in 10 ms, store kept Executing with no reason, last message \"executing\". Goal: finish within the grace, else recorded as interrupted",
		})
	}
	return rows, nil
}

// undisturbed runs the import of row 1 without a signal: how long the
// execution takes when nothing interrupts it.
func (p *probe) undisturbed(ctx context.Context) (row, error) {
	s, err := newFakeSlack()
	if err != nil {
		return row{}, err
	}
	defer s.close()
	b, err := p.serve(ctx, serveOpts{env: s.env(true), name: "row1-baseline"})
	if err != nil {
		return row{}, err
	}
	defer b.stop()
	req, err := p.importAndConfirm(ctx, s, b, "row1-base", true)
	if err != nil {
		return row{}, err
	}
	c, ok := s.rec.waitFor(ctx, 120*time.Second, func(c call) bool {
		return c.fault == "" && c.method == "chat.update" && requestID(c.text) == req.id &&
			(strings.Contains(firstLine(c.text), "succeeded") || strings.Contains(firstLine(c.text), "failed"))
	})
	now := "no final state within 120 s"
	if ok {
		now = fmt.Sprintf("%q %.2f s after \"executing\"", firstLine(c.text), c.at.Sub(req.executing).Seconds())
	}
	return row{n: "1", scenario: "baseline: the same `/deploy import stg worker`, confirmed, no signal", now: now, previous: "(how long the execution takes undisturbed)"}, nil
}

// restart is row 2: kill -9 while an import executes, then a new start on
// the same state directory.
func (p *probe) restart(ctx context.Context) ([]row, error) {
	s, err := newFakeSlack()
	if err != nil {
		return nil, err
	}
	defer s.close()
	state := filepath.Join(p.tmp, "row2", "state.json")
	b, err := p.serve(ctx, serveOpts{state: state, env: s.env(true), name: "row2-killed"})
	if err != nil {
		return nil, err
	}
	req, err := p.importAndConfirm(ctx, s, b, "row2", true)
	if err != nil {
		b.kill()
		return nil, err
	}
	time.Sleep(time.Until(req.executing.Add(time.Second)))
	b.kill()
	killed := time.Now()

	b2, err := p.serve(ctx, serveOpts{state: state, env: s.env(true), name: "row2-restarted"})
	if err != nil {
		return nil, err
	}
	defer b2.stop()
	ready := time.Since(b2.started)
	c, ok := s.rec.waitFor(ctx, 150*time.Second, func(c call) bool {
		return c.fault == "" && c.method == "chat.update" && c.at.After(killed) && requestID(c.text) == req.id &&
			!strings.Contains(firstLine(c.text), "executing")
	})
	if !ok {
		return []row{{n: "2", scenario: "kill -9 1 s into the execution, start again on the same state",
			now: fmt.Sprintf("no update of #%s within 150 s of the new start", req.id), previous: "previous: 60–90 s"}}, nil
	}
	reported := c.at.Sub(b2.started)
	// Is the env/service lock free? A new import must open a request.
	sent := time.Now()
	if err := s.command(ctx, b2.addr, slackAlice, "import stg worker", "row2.again"); err != nil {
		return nil, err
	}
	lock := "no answer to a new `import stg worker` within 30 s"
	if a, ok := s.rec.waitFor(ctx, 30*time.Second, func(a call) bool {
		return a.fault == "" && !a.at.Before(sent) && (a.method == "chat.postMessage" || a.method == "chat.postEphemeral" || a.path == "/hooks/row2.again")
	}); ok {
		switch {
		case a.method == "chat.postMessage" && strings.Contains(a.text, "waiting for the requester to confirm"):
			lock = fmt.Sprintf("a new `import stg worker` opened #%s (lock released), %.2f s after the new start", requestID(a.text), a.at.Sub(b2.started).Seconds())
		default:
			lock = fmt.Sprintf("a new `import stg worker` was answered %q", firstLine(a.text))
		}
	}
	return []row{{
		n:        "2",
		scenario: "kill -9 1 s into the execution of a confirmed `import stg worker`, then a new `serve` on the same state",
		now: fmt.Sprintf("orphan #%s reported %.2f s after the new exec (ready after %.2f s): chat.update %q; %s",
			req.id, reported.Seconds(), ready.Seconds(), firstLine(c.text), lock),
		previous: "previous: 60–90 s (lock held until the heartbeat went stale)",
	}}, nil
}
