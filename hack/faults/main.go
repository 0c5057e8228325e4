// Command faults re-measures the fault table of issue 10 against the real
// deploybot binary, at process level, and prints it as one Markdown table:
//
//	go run ./hack/faults [-rev REV] [-rows 1,2,3] [-keys 40000] [-commands 1000]
//
// It builds ./cmd/deploybot (of the working tree, or with -rev of a git
// revision extracted with `git archive` into a temporary directory, so the
// repository is only read), starts `deploybot serve --demo` processes with
// a config that maps a Slack and a Discord user to the demo's alice, and
// talks to them as Slack and Discord would: signed slash commands and
// clicks, signed Discord interactions. The Slack Web API, the
// response_urls and Discord's REST API are fakes in this process that can
// answer 429 (Retry-After: 2), 500 or not at all, on a schedule.
//
// The rows:
//
//  1. SIGTERM while `import stg worker` executes, with the default
//     --shutdown-grace and with 1s: time from SIGTERM to exit, the last
//     chat.update the fake Slack got, and what the store says after a
//     restart (`/deploy audit`).
//  2. kill -9 while it executes, then a start on the same state: time from
//     exec to the chat.update that reports the orphan, and whether a new
//     import is then accepted.
//  3. 429, then 500, then hanging answers on chat.postMessage, chat.update
//     and (without a bot token) response_url, then recovery: calls per
//     second at the failing API, when the final state arrived, the
//     deploybot_platform_api_errors_total counters.
//  4. the same on Discord's interaction webhook edits (DISCORD_PUBLIC_KEY +
//     DISCORD_APP_ID, no bot token).
//  5. 200 connections sending a body one byte every 3 s and 100 idle
//     keep-alive connections: when the server cut them, and the open file
//     descriptors of serve before, during and after.
//  6. two replicas without a bot token: not measurable here (the shared
//     store is the Kubernetes backend); the in-process test is run.
//  7. a store holding 40,000 done inbox events and 40,000 dedupe keys
//     (seeded through store/bolt on tmpfs, then copied), then 1,000 signed
//     `/deploy help`: total handling time and ack p50 against a fresh store.
//  8. go test ./cmd/deploybot -run TestCrashAfterAcks.
//
// Figures are wall time on whatever machine runs it; on a shared machine,
// read the ratios. Every child runs in its own process group and is killed
// on exit, on error and on SIGINT/SIGTERM; the temporary directory is
// removed (-keep keeps it, with every deploybot log).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	rev      string
	rows     map[int]bool
	keys     int
	commands int
	workers  int
	scale    time.Duration
	keep     bool
	observe  time.Duration
}

// probe is one run: the binary, its source, the config and the scratch dir.
type probe struct {
	o      options
	r      *reaper
	root   string // the repository
	src    string // the tree the binary was built from
	bin    string
	tmp    string
	config string
	logs   int
}

// row is one line of the table.
type row struct {
	n        string
	scenario string
	now      string
	previous string
}

func main() {
	var o options
	rows := flag.String("rows", "1,2,3,4,5,6,7,8", "which rows to measure")
	flag.StringVar(&o.rev, "rev", "", "build this git revision (git archive) instead of the working tree")
	flag.IntVar(&o.keys, "keys", 40000, "row 7: dedupe keys (and done inbox events) in the seeded store")
	flag.IntVar(&o.commands, "commands", 1000, "row 7: signed /deploy help commands per store")
	flag.IntVar(&o.workers, "workers", 8, "row 7: concurrent senders")
	flag.DurationVar(&o.observe, "observe", 70*time.Second, "row 5: how long the slow and idle connections are watched")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (logs, state)")
	flag.Parse()
	o.scale = time.Second
	o.rows = map[int]bool{}
	for _, f := range strings.Split(*rows, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 8 {
			fmt.Fprintf(os.Stderr, "faults: -rows: %q is not a row 1..8\n", f)
			os.Exit(2)
		}
		o.rows[n] = true
	}

	r := newReaper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		sig := <-sigs
		fmt.Fprintf(os.Stderr, "faults: %v: stopping every child process\n", sig)
		cancel()
		r.close()
		os.Exit(130)
	}()
	start := time.Now()
	err := run(ctx, r, o)
	r.close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		os.Exit(1)
	}
	logf("done in %s", time.Since(start).Round(time.Second))
}

// logf reports progress on stderr; the table goes to stdout.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "faults: "+time.Now().Format("15:04:05 ")+format+"\n", args...)
}

func run(ctx context.Context, r *reaper, o options) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "deploybot-faults-")
	if err != nil {
		return fmt.Errorf("creating the temporary directory: %w", err)
	}
	if o.keep {
		logf("keeping %s", tmp)
	} else {
		r.onExit(func() { _ = os.RemoveAll(tmp) })
	}
	p := &probe{o: o, r: r, root: root, src: root, tmp: tmp, bin: filepath.Join(tmp, "deploybot")}
	label := "working tree"
	if o.rev != "" {
		if p.src, label, err = p.extract(ctx, o.rev); err != nil {
			return err
		}
	}
	logf("building ./cmd/deploybot of %s", label)
	cmd := exec.Command("go", "build", "-trimpath", "-o", p.bin, "./cmd/deploybot")
	cmd.Dir = p.src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
	if _, err := r.run(ctx, "building deploybot ("+label+")", cmd); err != nil {
		return err
	}
	if err := p.writeConfig(); err != nil {
		return err
	}

	scenarios := []struct {
		n   int
		run func(context.Context) ([]row, error)
	}{
		{1, p.sigterm}, {2, p.restart}, {3, p.slackFaults}, {4, p.discordFaults},
		{5, p.slowClients}, {6, p.replicas}, {7, p.dedupeKeys}, {8, p.crashAfterAcks},
	}
	var table []row
	for _, s := range scenarios {
		if !o.rows[s.n] {
			continue
		}
		logf("row %d", s.n)
		start := time.Now()
		rows, err := s.run(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			rows = append(rows, row{n: strconv.Itoa(s.n), scenario: "(probe failed)", now: "error: " + oneLine(err.Error())})
			logf("row %d failed: %v", s.n, err)
		}
		logf("row %d took %s", s.n, time.Since(start).Round(time.Second))
		table = append(table, rows...)
	}
	fmt.Printf("Fault table of issue 10, re-measured with `go run ./hack/faults` against `deploybot serve --demo` built from %s, %s.\n\n", label, time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Println("| row | what was done | figure now | goal / previous |")
	fmt.Println("|---|---|---|---|")
	for _, t := range table {
		fmt.Printf("| %s | %s | %s | %s |\n", t.n, cell(t.scenario), cell(t.now), cell(t.previous))
	}
	return nil
}

// cell makes s fit in a Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", "<br>")
}

func oneLine(s string) string { return clip(strings.Join(strings.Fields(s), " "), 300) }

// repoRoot is the directory of the go.mod above the current directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the repository: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the current directory; run from the repository")
		}
		dir = parent
	}
}

// extract writes the tree of rev into a directory under tmp with git
// archive | tar -x (the repository is only read) and names it.
func (p *probe) extract(ctx context.Context, rev string) (string, string, error) {
	out, err := p.r.run(ctx, "resolving "+rev, exec.Command("git", "-C", p.root, "rev-parse", "--short", "--verify", rev+"^{commit}"))
	if err != nil {
		return "", "", err
	}
	short := strings.TrimSpace(out)
	dir := filepath.Join(p.tmp, "src-"+short)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("creating %s: %w", dir, err)
	}
	sh := exec.Command("sh", "-c", `git -C "$1" archive --format=tar "$2" | tar -x -C "$3"`, "sh", p.root, short, dir)
	if _, err := p.r.run(ctx, "extracting "+rev, sh); err != nil {
		return "", "", err
	}
	return dir, rev + " (" + short + ")", nil
}

// writeConfig writes the demo config of the source tree with a Slack and a
// Discord user mapped to alice and the fake Discord API's URL left to the
// Discord rows (which write their own).
func (p *probe) writeConfig() error {
	cfg, err := p.configText("")
	if err != nil {
		return err
	}
	p.config = filepath.Join(p.tmp, "deploybot.yaml")
	if err := os.WriteFile(p.config, []byte(cfg), 0o600); err != nil {
		return fmt.Errorf("writing the config: %w", err)
	}
	return nil
}

// configText is examples/packit.yaml with the probe's users and, when
// discordAPI is set, a discord section pointing at it.
func (p *probe) configText(discordAPI string) (string, error) {
	raw, err := os.ReadFile(filepath.Join(p.src, "examples", "packit.yaml"))
	if err != nil {
		return "", fmt.Errorf("reading the demo config: %w", err)
	}
	const anchor = "    - {platform: terminal, id: carol"
	text := string(raw)
	i := strings.Index(text, anchor)
	if i < 0 {
		return "", fmt.Errorf("examples/packit.yaml has no line %q to add the probe's users after", anchor)
	}
	users := "    - {platform: slack, id: " + slackTeam + "/" + slackAlice + ", user: alice, groups: [packit-devs]}\n" +
		"    - {platform: discord, id: \"" + discordGuild + "/" + discordAlice + "\", user: alice, groups: [packit-devs]}\n"
	text = text[:i] + users + text[i:]
	if discordAPI != "" {
		text += "\ndiscord:\n  apiURL: " + discordAPI + "\n"
	}
	return text, nil
}
