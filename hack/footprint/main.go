// Command footprint measures deploybot's footprint on this machine and
// prints it as a Markdown table, for the working tree and, with -base REV,
// also for that revision side by side with the ratio after/before. It backs
// `make footprint`:
//
//	go run ./hack/footprint [-base REV] [-skip-controlplane] [-runs 5] [-commands 2000]
//	make footprint [BASE=REV] [SKIP_CONTROLPLANE=1] [FOOTPRINT_FLAGS=...]
//
// Every figure is measured in this run; none is remembered or estimated, and
// a measurement that fails ends the program with an error instead of a
// figure. The figures:
//
//   - stripped binary: the size of ./cmd/deploybot built the way the
//     Dockerfile builds it (CGO_ENABLED=0 go build -trimpath -ldflags
//     "-s -w -X main.version=dev", and -buildvcs=false because the Docker
//     build context has no .git).
//   - start-up to /readyz: the time from exec of `deploybot serve --demo`
//     (Slack over HTTP, on a free 127.0.0.1 port) until GET /readyz on its
//     listener answers 200, polled every 2 ms; the median of -runs starts.
//   - idle RSS: VmRSS from /proc/PID/status -settle (3 s) after /readyz
//     first answered 200, in the same starts; the median.
//   - RSS after slash commands: a fresh `serve --demo` gets -commands
//     `/deploy help` slash commands posted to /slack/commands by -workers
//     senders, each signed with Slack's v0 scheme and carrying its own
//     trigger_id and response_url; once a stand-in response_url has
//     received an answer to every one and half a second has passed without
//     another, VmRSS and VmHWM (the peak) are read.
//   - the control-plane rows: `deploybot serve --config` against a real
//     control plane (internal/controlplane: etcd, kube-apiserver,
//     kube-controller-manager, kube-scheduler, kwok), with the packit
//     layout in two namespaces and the state in ConfigMaps (store backend
//     kubernetes, as the chart runs it): start-up to /readyz and VmRSS
//     -settle after it, the medians of -runs starts. -skip-controlplane
//     leaves them out.
//
// The revision is extracted with `git archive REV | tar -x` into a
// temporary directory, so the repository is only read. With two builds the
// starts alternate (before, after, before, after, ...) so that noise on the
// machine hits both alike. Slack is a local stand-in: the Web API answers
// {"ok":true} to every call and the response_urls answer 200; nothing leaves
// the machine. Every child process runs in a process group of its own and
// is killed on exit, on error and on SIGINT/SIGTERM/SIGHUP; the temporary
// directory (under $TMPDIR) is removed.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/deploybot/deploybot/internal/controlplane"
)

type options struct {
	base             string
	runs             int
	commands         int
	workers          int
	settle           time.Duration
	replyTimeout     time.Duration
	readyTimeout     time.Duration
	skipControlPlane bool
}

func main() {
	var o options
	flag.StringVar(&o.base, "base", "", "also measure this git revision (built from `git archive REV`) and compare")
	flag.IntVar(&o.runs, "runs", 5, "starts per build for the start-up and idle figures (their median is shown)")
	flag.IntVar(&o.commands, "commands", 2000, "signed slash commands sent for the RSS-after-commands figure")
	flag.IntVar(&o.workers, "workers", 8, "concurrent senders of the slash commands")
	flag.DurationVar(&o.settle, "settle", 3*time.Second, "how long a ready bot idles before its RSS is read")
	flag.DurationVar(&o.replyTimeout, "reply-timeout", 60*time.Second, "how long the answers to all slash commands may take")
	flag.DurationVar(&o.readyTimeout, "ready-timeout", 60*time.Second, "how long a start may take to /readyz 200")
	flag.BoolVar(&o.skipControlPlane, "skip-controlplane", false, "skip the real-control-plane rows (no etcd or kube-apiserver needed)")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: footprint [-base REV] [-skip-controlplane] [flags]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if o.runs < 1 || o.commands < 1 || o.workers < 1 {
		fmt.Fprintln(os.Stderr, "footprint: -runs, -commands and -workers must be at least 1")
		os.Exit(2)
	}

	r := newReaper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var interrupted atomic.Bool
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		sig := <-sigs
		interrupted.Store(true)
		fmt.Fprintf(os.Stderr, "footprint: %v: stopping every child process\n", sig)
		cancel()
		r.close()
		os.Exit(130)
	}()

	err := run(ctx, r, o, os.Stdout)
	r.close()
	if interrupted.Load() {
		os.Exit(130)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "footprint:", err)
		os.Exit(1)
	}
}

// logf reports progress on stderr; the table goes to stdout.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "footprint: "+format+"\n", args...)
}

// figures are the measurements of one build.
type figures struct {
	startup   []time.Duration
	idle      []int64
	load      loadResult
	loadMem   memory
	cpStartup []time.Duration
	cpIdle    []int64
}

func run(ctx context.Context, r *reaper, o options, out io.Writer) error {
	root, err := controlplane.RepoRoot()
	if err != nil {
		return fmt.Errorf("finding the repository: %w", err)
	}
	tmp, err := os.MkdirTemp("", "deploybot-footprint-")
	if err != nil {
		return fmt.Errorf("creating the temporary directory: %w", err)
	}
	r.onExit(func() { _ = os.RemoveAll(tmp) })

	header, err := machineHeader(ctx, r, root)
	if err != nil {
		return err
	}

	var builds []*build
	if o.base != "" {
		logf("building %s (git archive into %s)", o.base, tmp)
		b, err := buildRevision(ctx, r, root, o.base, tmp)
		if err != nil {
			return err
		}
		builds = append(builds, b)
	}
	logf("building the working tree %s", root)
	after, err := buildWorkingTree(ctx, r, root, tmp)
	if err != nil {
		return err
	}
	builds = append(builds, after)
	for _, b := range builds {
		logf("%s: %s, %d bytes", b.name, b.bin, b.size)
	}

	slack, err := newFakeSlack()
	if err != nil {
		return err
	}
	defer slack.close()

	figs := make([]figures, len(builds))
	for round := range o.runs {
		for i, b := range builds {
			took, rss, err := demoStart(ctx, r, o, b, slack, tmp, round)
			if err != nil {
				return fmt.Errorf("%s, serve --demo start %d: %w", b.name, round+1, err)
			}
			figs[i].startup = append(figs[i].startup, took)
			figs[i].idle = append(figs[i].idle, rss)
			logf("%s serve --demo start %d/%d: /readyz 200 after %s, VmRSS %s %v later", b.name, round+1, o.runs, fmtMS(took), fmtMiB(rss), o.settle)
		}
	}
	for i, b := range builds {
		res, mem, err := demoLoad(ctx, r, o, b, slack, tmp)
		if err != nil {
			return fmt.Errorf("%s, serve --demo with %d slash commands: %w", b.name, o.commands, err)
		}
		figs[i].load, figs[i].loadMem = res, mem
		logf("%s serve --demo: %d slash commands, %d answers in %s; VmRSS %s, VmHWM %s", b.name, res.sent, res.answers,
			res.took.Round(time.Millisecond), fmtMiB(mem.rss), fmtMiB(mem.hwm))
	}
	if !o.skipControlPlane {
		logf("starting the control plane (the first build of its binaries takes a while)")
		cp, err := startControlPlane(ctx, r, tmp)
		if err != nil {
			return err
		}
		logf("control plane up at %s", cp.Host())
		for round := range o.runs {
			for i, b := range builds {
				took, rss, err := controlPlaneStart(ctx, r, o, b, cp, slack, tmp, round)
				if err != nil {
					return fmt.Errorf("%s, serve on the control plane, start %d: %w", b.name, round+1, err)
				}
				figs[i].cpStartup = append(figs[i].cpStartup, took)
				figs[i].cpIdle = append(figs[i].cpIdle, rss)
				logf("%s serve on the control plane start %d/%d: /readyz 200 after %s, VmRSS %s %v later", b.name, round+1, o.runs, fmtMS(took), fmtMiB(rss), o.settle)
			}
		}
	}

	printTable(out, header, o, builds, figs)
	return nil
}

// machineHeader names the Go toolchain, the CPUs and the load.
func machineHeader(ctx context.Context, r *reaper, root string) (string, error) {
	goEnv := exec.Command("go", "env", "GOVERSION", "GOOS", "GOARCH")
	goEnv.Dir = root
	gv, err := r.run(ctx, "asking go for its version", goEnv)
	if err != nil {
		return "", err
	}
	f := strings.Fields(string(gv))
	if len(f) != 3 {
		return "", fmt.Errorf("go env GOVERSION GOOS GOARCH printed %q", gv)
	}
	np, err := r.run(ctx, "counting CPUs", exec.Command("nproc"))
	if err != nil {
		return "", err
	}
	h := fmt.Sprintf("%s %s/%s, nproc %s", f[0], f[1], f[2], strings.TrimSpace(string(np)))
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		if l := strings.Fields(string(la)); len(l) >= 3 {
			h += ", load average " + strings.Join(l[:3], " ") + " at start"
		}
	}
	return h + ", " + time.Now().UTC().Format("2006-01-02 15:04 UTC"), nil
}

// demoStart starts `serve --demo` once: the time to /readyz 200 and VmRSS
// o.settle after it.
func demoStart(ctx context.Context, r *reaper, o options, b *build, slack *fakeSlack, tmp string, round int) (time.Duration, int64, error) {
	dir, err := runDir(tmp, fmt.Sprintf("demo-%s-%d", b.name, round))
	if err != nil {
		return 0, 0, err
	}
	bt, took, err := serveBot(ctx, r, b.bin, demoArgs(dir), childEnv(slack.env()...), filepath.Join(dir, "deploybot.log"), o.readyTimeout)
	if err != nil {
		return 0, 0, err
	}
	defer bt.stop(15 * time.Second)
	if err := sleep(ctx, o.settle); err != nil {
		return 0, 0, err
	}
	m, err := bt.readMemory()
	if err != nil {
		return 0, 0, err
	}
	return took, m.rss, nil
}

// demoLoad starts `serve --demo`, sends it the slash commands and reads its
// memory once it has answered them all.
func demoLoad(ctx context.Context, r *reaper, o options, b *build, slack *fakeSlack, tmp string) (loadResult, memory, error) {
	dir, err := runDir(tmp, "load-"+b.name)
	if err != nil {
		return loadResult{}, memory{}, err
	}
	bt, _, err := serveBot(ctx, r, b.bin, demoArgs(dir), childEnv(slack.env()...), filepath.Join(dir, "deploybot.log"), o.readyTimeout)
	if err != nil {
		return loadResult{}, memory{}, err
	}
	defer bt.stop(30 * time.Second)
	res, err := sendCommands(ctx, bt, slack, "footprint-"+b.name+"-"+filepath.Base(tmp), "help", o.commands, o.workers, o.replyTimeout)
	if err != nil {
		return loadResult{}, memory{}, err
	}
	m, err := bt.readMemory()
	if err != nil {
		return loadResult{}, memory{}, err
	}
	return res, m, nil
}

// demoArgs are the arguments of `serve --demo`; the state file is ours, in
// dir, so a killed bot leaves nothing behind outside it.
func demoArgs(dir string) func(addr string) []string {
	return func(addr string) []string {
		return []string{"serve", "--demo", "--listen=" + addr, "--state=" + filepath.Join(dir, "state.json")}
	}
}

// controlPlaneStart starts `serve --config` against the control plane once,
// with a store namespace of its own: the time to /readyz 200 and VmRSS
// o.settle after it.
func controlPlaneStart(ctx context.Context, r *reaper, o options, b *build, cp *controlplane.ControlPlane, slack *fakeSlack, tmp string, round int) (time.Duration, int64, error) {
	name := fmt.Sprintf("cp-%s-%d", b.name, round)
	dir, err := runDir(tmp, name)
	if err != nil {
		return 0, 0, err
	}
	stateNS := "footprint-state-" + name
	if err := cp.CreateNamespace(ctx, stateNS); err != nil {
		return 0, 0, fmt.Errorf("preparing the control plane: %w", err)
	}
	cfg := filepath.Join(dir, "deploybot.yaml")
	if err := os.WriteFile(cfg, []byte(controlPlaneConfig(cp.KubeconfigPath(), stateNS)), 0o600); err != nil {
		return 0, 0, fmt.Errorf("writing the deploybot config: %w", err)
	}
	args := func(addr string) []string { return []string{"serve", "--config=" + cfg, "--listen=" + addr} }
	env := childEnv(append(slack.env(), "KUBECONFIG="+cp.KubeconfigPath())...)
	bt, took, err := serveBot(ctx, r, b.bin, args, env, filepath.Join(dir, "deploybot.log"), o.readyTimeout)
	if err != nil {
		return 0, 0, err
	}
	defer bt.stop(15 * time.Second)
	if err := sleep(ctx, o.settle); err != nil {
		return 0, 0, err
	}
	m, err := bt.readMemory()
	if err != nil {
		return 0, 0, err
	}
	return took, m.rss, nil
}

func runDir(tmp, name string) (string, error) {
	dir := filepath.Join(tmp, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("creating %s: %w", dir, err)
	}
	return dir, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// row is one figure: a cell and a value (for the ratio) per build.
type row struct {
	figure string
	cells  []string
	values []float64
}

func printTable(out io.Writer, header string, o options, builds []*build, figs []figures) {
	var rows []row
	add := func(figure string, cell func(f figures, b *build) (string, float64)) {
		rw := row{figure: figure}
		for i, b := range builds {
			c, v := cell(figs[i], b)
			rw.cells = append(rw.cells, c)
			rw.values = append(rw.values, v)
		}
		rows = append(rows, rw)
	}
	add("stripped binary (Dockerfile flags)", func(_ figures, b *build) (string, float64) {
		return fmt.Sprintf("%.2f MB (%d bytes)", float64(b.size)/1e6, b.size), float64(b.size)
	})
	add(fmt.Sprintf("start-up to /readyz 200, serve --demo (median of %d)", o.runs), func(f figures, _ *build) (string, float64) {
		return durations(f.startup)
	})
	add(fmt.Sprintf("idle RSS %v after ready, serve --demo (median of %d)", o.settle, o.runs), func(f figures, _ *build) (string, float64) {
		return sizes(f.idle)
	})
	add(fmt.Sprintf("RSS after %d signed slash commands, serve --demo", o.commands), func(f figures, _ *build) (string, float64) {
		return fmtMiB(f.loadMem.rss), float64(f.loadMem.rss)
	})
	add(fmt.Sprintf("peak RSS (VmHWM) after %d slash commands", o.commands), func(f figures, _ *build) (string, float64) {
		return fmtMiB(f.loadMem.hwm), float64(f.loadMem.hwm)
	})
	cpRows := []struct {
		figure string
		cell   func(f figures) (string, float64)
	}{
		{fmt.Sprintf("start-up to /readyz 200, serve on a real control plane (median of %d)", o.runs), func(f figures) (string, float64) { return durations(f.cpStartup) }},
		{fmt.Sprintf("idle RSS %v after ready, serve on a real control plane (median of %d)", o.settle, o.runs), func(f figures) (string, float64) { return sizes(f.cpIdle) }},
	}
	for _, cr := range cpRows {
		if o.skipControlPlane {
			add(cr.figure, func(figures, *build) (string, float64) { return "skipped", math.NaN() })
		} else {
			add(cr.figure, func(f figures, _ *build) (string, float64) { return cr.cell(f) })
		}
	}

	heads := []string{"figure"}
	for _, b := range builds {
		heads = append(heads, b.label)
	}
	if len(builds) == 2 {
		heads = append(heads, "after/before")
	}
	var table [][]string
	for _, rw := range rows {
		line := append([]string{rw.figure}, rw.cells...)
		if len(builds) == 2 {
			ratio := "–"
			if b, a := rw.values[0], rw.values[1]; !math.IsNaN(a) && !math.IsNaN(b) && b != 0 {
				ratio = fmt.Sprintf("%.2f", a/b)
			}
			line = append(line, ratio)
		}
		table = append(table, line)
	}

	fmt.Fprintf(out, "deploybot footprint, measured on this machine: %s\n\n", header)
	writeMarkdown(out, heads, table)
	fmt.Fprintln(out)
	if o.runs == 1 {
		fmt.Fprint(out, "Start-up and idle figures: one start per build")
	} else {
		fmt.Fprintf(out, "Start-up and idle figures: median of %d starts per build, (min–max) after it", o.runs)
	}
	if len(builds) == 2 && o.runs > 1 {
		fmt.Fprint(out, "; the builds' starts alternated")
	}
	fmt.Fprintln(out, ".")
	for i, b := range builds {
		l := figs[i].load
		fmt.Fprintf(out, "%s: %d `/deploy help` slash commands from %d senders drew %d answers in %s.\n",
			b.name, l.sent, o.workers, l.answers, l.took.Round(time.Millisecond))
	}
	if !o.skipControlPlane {
		fmt.Fprintln(out, "Control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (internal/controlplane); deploybot with two environments and store backend kubernetes.")
	}
}

// writeMarkdown writes a Markdown table with its columns padded, so it also
// reads as plain text.
func writeMarkdown(out io.Writer, heads []string, rows [][]string) {
	widths := make([]int, len(heads))
	for _, line := range append([][]string{heads}, rows...) {
		for i, c := range line {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	write := func(line []string) {
		var b strings.Builder
		b.WriteString("|")
		for i, c := range line {
			b.WriteString(" " + c + strings.Repeat(" ", widths[i]-len([]rune(c))) + " |")
		}
		fmt.Fprintln(out, b.String())
	}
	write(heads)
	sep := make([]string, len(heads))
	for i := range sep {
		sep[i] = strings.Repeat("-", widths[i])
	}
	write(sep)
	for _, line := range rows {
		write(line)
	}
}

// durations formats the median of ds with its range.
func durations(ds []time.Duration) (string, float64) {
	if len(ds) == 0 {
		return "none", math.NaN()
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	m := medianOf(s)
	if len(s) == 1 {
		return fmtMS(m), float64(m)
	}
	return fmt.Sprintf("%s (%s–%s)", fmtMS(m), fmtMS(s[0]), fmtMS(s[len(s)-1])), float64(m)
}

// sizes formats the median of byte counts in MiB with its range.
func sizes(bs []int64) (string, float64) {
	if len(bs) == 0 {
		return "none", math.NaN()
	}
	s := slices.Clone(bs)
	slices.Sort(s)
	m := medianOf(s)
	if len(s) == 1 {
		return fmtMiB(m), float64(m)
	}
	return fmt.Sprintf("%s (%.1f–%.1f)", fmtMiB(m), mib(s[0]), mib(s[len(s)-1])), float64(m)
}

// medianOf returns the middle of sorted s, the mean of the middle two for
// an even count.
func medianOf[T time.Duration | int64](s []T) T {
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func fmtMiB(b int64) string { return fmt.Sprintf("%.1f MiB", mib(b)) }

func fmtMS(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	if ms >= 100 {
		return fmt.Sprintf("%.0f ms", ms)
	}
	return fmt.Sprintf("%.1f ms", ms)
}
