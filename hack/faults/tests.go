package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"time"
)

// goTest runs `go test -run ^name$ -count=1 -v pkg` in the source tree and
// returns its verdict line and output.
func (p *probe) goTest(ctx context.Context, pkg, name string) (string, string, time.Duration, error) {
	cmd := exec.Command("go", "test", "-count=1", "-v", "-run", "^"+name+"$", pkg)
	cmd.Dir = p.src
	cmd.Env = append(os.Environ(), "GOWORK=off")
	start := time.Now()
	out, err := p.r.run(ctx, "go test "+pkg+" -run "+name, cmd)
	took := time.Since(start)
	verdict := lineWith(out, "--- ")
	if err != nil && verdict == "" {
		return "", out, took, err
	}
	return verdict, out, took, nil
}

// replicas is row 6: two replicas without a bot token share the store only
// through the Kubernetes backend, which needs a cluster with ImageStreams;
// the in-process test covers it.
func (p *probe) replicas(ctx context.Context) ([]row, error) {
	verdict, out, took, err := p.goTest(ctx, "./bot/slack", "TestAnotherReplicaUpdates")
	if err != nil {
		return nil, err
	}
	return []row{{
		n: "6",
		scenario: "two replicas without a bot token: not measurable at process level here (the shared store is the Kubernetes backend, ConfigMaps beside a cluster with ImageStreams; the single-replica bbolt store is locked by one process). " +
			"In-process: TestAnotherReplicaUpdates (bot/slack): replica B updates, through the response_url kept in the stored ref, the message replica A posted",
		now:      fmt.Sprintf("`go test ./bot/slack -run TestAnotherReplicaUpdates -count=1`: %s (go test took %.0f s)%s", strings.TrimSpace(verdict), took.Seconds(), failure(out)),
		previous: "previous: the message stayed \"waiting for approval\" on a deploy that succeeded",
	}}, nil
}

// failure quotes the first failure of a go test output, if any.
func failure(out string) string {
	if l := lineWith(out, "_test.go:"); l != "" && strings.Contains(out, "--- FAIL") {
		return "; " + l
	}
	return ""
}

var crashLogRE = regexp.MustCompile(`crash_test\.go:\d+: (.*)`)

// crashAfterAcks is row 8: the crash test of cmd/deploybot.
func (p *probe) crashAfterAcks(ctx context.Context) ([]row, error) {
	verdict, out, took, err := p.goTest(ctx, "./cmd/deploybot", "TestCrashAfterAcks")
	if err != nil {
		return nil, err
	}
	var logs []string
	for _, m := range crashLogRE.FindAllStringSubmatch(out, -1) {
		logs = append(logs, strings.TrimSpace(m[1]))
	}
	return []row{{
		n:        "8",
		scenario: "kill -9 of `serve --demo` right after 2,000 acknowledged signed slash commands (response_urls answering in 40 ms each), then a restart: `go test ./cmd/deploybot -run TestCrashAfterAcks -count=1`",
		now:      fmt.Sprintf("%s (go test took %.0f s): %s%s", strings.TrimSpace(verdict), took.Seconds(), strings.Join(logs, "; "), failure(out)),
		previous: "previous: 261 of 2,000 answered, 1,739 lost. Goal: every one answered (or honestly reported), none twice",
	}}, nil
}
