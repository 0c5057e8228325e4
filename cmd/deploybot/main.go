// Command deploybot is a ChatOps bot for OpenShift image-stream deployments:
// `deploybot chat` is the terminal chat, `deploybot version` prints the
// build. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/deploybot/deploybot/auth/access"
	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/bot/terminal"
	"github.com/deploybot/deploybot/cluster"
	"github.com/deploybot/deploybot/commands"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/demo"
	"github.com/deploybot/deploybot/examples"
	"github.com/deploybot/deploybot/gitrepo"
	"github.com/deploybot/deploybot/kubeclient"
	"github.com/deploybot/deploybot/lifecycle"
	"github.com/deploybot/deploybot/release"
	"github.com/deploybot/deploybot/store"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
)

// version is set with -ldflags "-X main.version=..."; otherwise the module
// build info is used.
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "deploybot:", err)
		os.Exit(1)
	}
}

const usage = `usage: deploybot <command> [flags]

commands:
  chat      the terminal chat (--demo for the built-in demo cluster)
  serve     the chat platforms (Slack, Discord) over HTTP and their own connections
  version   print the version
`

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "chat":
		return chat(ctx, args[1:], stdin, stdout, stderr)
	case "serve":
		return serve(ctx, args[1:], os.Getenv, stdout, stderr, nil)
	case "version", "--version":
		fmt.Fprintln(stdout, "deploybot", buildVersion())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		v := bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				v += " " + s.Value
			}
		}
		return v
	}
	return "unknown"
}

// setup is everything a bot needs, built from flags.
type setup struct {
	cfg      *config.Config
	set      *cluster.Set
	checker  *access.Checker
	store    store.Store
	demo     *demo.Cluster
	stateDir string
	// replica is this process's name in the requests it executes (replica.go).
	replica string
	// rest are the environments' client configs (not in demo mode), for
	// execution: impersonate.
	rest map[string]*rest.Config
	// envs are the environments' clients; those of plain Kubernetes
	// environments read their image history from the store, once it is open.
	envs map[string]cluster.EnvClient
}

// demoFlags are how the demo cluster runs.
type demoFlags struct {
	// tick is how long one demo pod takes to become ready.
	tick time.Duration
	// selfImport is when stg's first scheduled import comes (built-in
	// config only): one of its images then crash-loops, for the deploy
	// feed to show.
	selfImport time.Duration
}

func build(ctx context.Context, configPath string, useDemo bool, statePath string, df demoFlags, log *slog.Logger) (*setup, error) {
	var s setup
	var err error
	switch {
	case useDemo && configPath == "":
		s.cfg, err = config.Parse(examples.Packit)
	case configPath != "":
		s.cfg, err = config.Load(configPath)
	default:
		return nil, errors.New("give --config FILE, or --demo for the built-in demo cluster")
	}
	if err != nil {
		return nil, err
	}
	kube := map[string]kubeclient.Interface{}
	envs := map[string]cluster.EnvClient{}
	if useDemo {
		var opts []demo.Option
		if df.tick > 0 {
			opts = append(opts, demo.WithTick(df.tick))
		}
		if configPath == "" && df.selfImport > 0 {
			// What the deploy feed shows in the demo: stg imports by itself,
			// as OpenShift's scheduled import does, and packit-service's new
			// image crash-loops.
			opts = append(opts, demo.WithFirstScheduledImport(df.selfImport), demo.WithBrokenNext("stg", "packit-service"))
		}
		s.demo, err = demo.New(s.cfg, opts...)
		if err != nil {
			return nil, fmt.Errorf("building the demo cluster: %w", err)
		}
		envs = s.demo.EnvClients()
		// The demo cluster lives until close, not until the signal: on
		// SIGTERM its controllers must keep rolling out what the grace
		// period lets finish.
		if err := s.demo.Start(context.WithoutCancel(ctx)); err != nil {
			return nil, fmt.Errorf("starting the demo cluster: %w", err)
		}
	} else {
		s.rest = map[string]*rest.Config{}
		reg, err := registryFor(s.cfg)
		if err != nil {
			return nil, err
		}
		for _, e := range s.cfg.Environments {
			rc, err := cluster.RESTConfig(e.Kubeconfig, e.Context)
			if err != nil {
				return nil, fmt.Errorf("environment %s: %w", e.Name, err)
			}
			s.rest[e.Name] = rc
			ec, err := cluster.Connect(rc, e.Namespace)
			if err != nil {
				return nil, fmt.Errorf("environment %s: %w", e.Name, err)
			}
			ec.RevisionLabel = s.cfg.Registry.RevisionLabel
			if e.Kubernetes() {
				ec.Images = nil // no image API: the bot sets the images
				ec.Kubernetes = &cluster.Kubernetes{Registry: reg, Services: cluster.KubernetesServices(s.cfg), Scheduled: e.Scheduled}
			}
			envs[e.Name] = ec
		}
	}
	s.envs = envs
	for name, ec := range envs {
		kube[name] = ec.Kube
	}
	s.set = cluster.NewSet(envs)
	s.checker = access.NewChecker(kube)

	// In a cluster (or by config) the state lives in ConfigMaps (state.go).
	if ks, err := kubeStore(ctx, s.cfg, useDemo, statePath); err != nil {
		return nil, err
	} else if ks != nil {
		s.store = ks
		s.historyFromStore()
		if s.replica, err = replicaName(os.Getenv, ""); err != nil {
			return nil, err
		}
		return &s, nil
	}
	if statePath == "" {
		statePath = s.cfg.Store.Path
	}
	if statePath == "" && useDemo {
		// The demo cluster lives in memory, so its requests should too: a fresh
		// directory per run, removed by the caller.
		dir, err := os.MkdirTemp("", "deploybot-demo-")
		if err != nil {
			return nil, fmt.Errorf("creating the demo state directory: %w", err)
		}
		s.stateDir = dir
		statePath = filepath.Join(dir, "state.json")
	}
	if statePath == "" {
		base := os.Getenv("XDG_STATE_HOME")
		if base == "" {
			home, _ := os.UserHomeDir()
			base = filepath.Join(home, ".local", "state")
		}
		statePath = filepath.Join(base, "deploybot", "state.json")
	}
	if err := os.MkdirAll(filepath.Dir(statePath), 0o700); err != nil {
		return nil, fmt.Errorf("creating the state directory: %w", err)
	}
	if s.replica, err = replicaName(os.Getenv, filepath.Dir(statePath)); err != nil {
		return nil, err
	}
	s.store, err = localStore(statePath, s.cfg, log) // state.go: the bbolt database beside state.json
	if err != nil {
		return nil, fmt.Errorf("opening the state database: %w", err)
	}
	s.historyFromStore()
	return &s, nil
}

// historyFromStore gives the plain Kubernetes environments the store as
// their image history (the registry keeps none).
func (s *setup) historyFromStore() {
	for _, ec := range s.envs {
		if ec.Kubernetes != nil {
			ec.Kubernetes.History = s.store
		}
	}
}

// registryFor is the registry client plain Kubernetes environments read
// tags with; nil when the config has none.
func registryFor(cfg *config.Config) (cluster.Registry, error) {
	if !slices.ContainsFunc(cfg.Environments, func(e config.Environment) bool { return e.Kubernetes() }) {
		return nil, nil
	}
	return cluster.NewRegistry(cfg.Registry)
}

// botOptions are the options that follow from the configuration.
func (s *setup) botOptions() ([]bot.Option, error) {
	var opts []bot.Option
	if s.replica != "" {
		opts = append(opts, bot.WithReplicaName(s.replica))
	}
	if len(s.cfg.Repositories) > 0 {
		git, rel, err := s.releases()
		if err != nil {
			return nil, err
		}
		opts = append(opts, bot.WithGit(git), bot.WithReleaser(rel))
	}
	if s.cfg.Execution != config.ExecutionImpersonate {
		return opts, nil
	}
	if s.demo != nil {
		return nil, errors.New("execution: impersonate needs a real API server to enforce RBAC; the demo cluster cannot impersonate, use execution: serviceaccount with --demo")
	}
	return append(opts, bot.WithExecutorFor(s.impersonating())), nil
}

// releases are the git client of the configured repositories and the
// releaser that pushes their stable branches and waits for the builds.
// Import and release Plans wait for fetches, so they are bounded: a git
// server that does not answer within 30s is a note in the Plan. The copies
// live in the user's cache directory where it is writable, else in memory;
// the demo's repositories (in memory, demo/git.go) always in memory, so
// that their made-up commits never mix with a real clone's.
func (s *setup) releases() (commands.Git, *release.Releaser, error) {
	gopts := []gitrepo.Option{gitrepo.WithTimeout(30 * time.Second)}
	if dir, err := os.UserCacheDir(); err == nil && s.demo == nil && os.MkdirAll(filepath.Join(dir, "deploybot", "git"), 0o700) == nil {
		gopts = append(gopts, gitrepo.WithDir(filepath.Join(dir, "deploybot", "git")))
	}
	git := gitrepo.Configured{C: gitrepo.New(gopts...)}
	if s.demo != nil {
		// The demo serves the repositories itself (demo/githosting.go) and
		// asks for no credentials: a config's token variables need not be
		// set to try it.
		for i := range s.cfg.Repositories {
			r := &s.cfg.Repositories[i]
			r.TokenEnv, r.TokenFile, r.SSHKeyFile = "", "", ""
		}
		dg := demoGit{git: git, demo: s.demo}
		return dg, release.New(s.cfg, dg, s.demo.ImageRegistry(), release.WithPoll(demoBuildPoll)), nil
	}
	reg, err := cluster.NewRegistry(s.cfg.Registry)
	if err != nil {
		return nil, nil, err
	}
	return git, release.New(s.cfg, git, reg), nil
}

// demoBuildPoll is how often a demo release asks the in-process registry
// whether its images are built.
const demoBuildPoll = 250 * time.Millisecond

// impersonating returns executors that act as the requester through
// impersonation headers, one cached Set per identity.
func (s *setup) impersonating() func(store.Person) (lifecycle.Executor, error) {
	var mu sync.Mutex
	sets := map[string]*cluster.Set{}
	return func(p store.Person) (lifecycle.Executor, error) {
		key := p.User + "\x00" + strings.Join(p.Groups, "\x00")
		mu.Lock()
		defer mu.Unlock()
		if set, ok := sets[key]; ok {
			return set, nil
		}
		envs := map[string]cluster.EnvClient{}
		for _, e := range s.cfg.Environments {
			ec, err := cluster.ConnectAs(s.rest[e.Name], e.Namespace, p.User, p.Groups)
			if err != nil {
				return nil, fmt.Errorf("acting as %s in %s: %w", p.User, e.Name, err)
			}
			if k := s.envs[e.Name].Kubernetes; k != nil {
				ec.Images, ec.Kubernetes = nil, k
			}
			ec.RevisionLabel = s.cfg.Registry.RevisionLabel
			envs[e.Name] = ec
		}
		sets[key] = cluster.NewSet(envs)
		return sets[key], nil
	}
}

func (s *setup) close() {
	if c, ok := s.store.(io.Closer); ok {
		_ = c.Close()
	}
	if s.demo != nil {
		s.demo.Stop()
	}
	if s.stateDir != "" {
		_ = os.RemoveAll(s.stateDir)
	}
}

// demoFeed turns on the deploy feed of the built-in config's scheduled
// (stg) environments, posting in the terminal.
func demoFeed(cfg *config.Config) {
	for i := range cfg.Environments {
		if e := &cfg.Environments[i]; e.Scheduled && e.Feed == nil {
			e.Feed = &config.Feed{Channel: &config.ChannelRef{Platform: terminal.Name, ID: terminal.Channel}}
		}
	}
}

func chat(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	common := addCommonFlags(fs, "warn")
	// Only the chat runs the deploy feed in the demo (serve's leader runs
	// it only with a feed configured): what stg's self-import shows.
	common.selfImport = fs.Duration("demo-self-import", 30*time.Second, "with --demo and the built-in config: when stg first imports by itself, bringing a crash-looping packit-service that the deploy feed shows (0: every 15 minutes only, its new images healthy)")
	user := fs.String("user", "alice", "terminal user to act as (mapped through identities with platform: terminal)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s, logger, err := common.setUp(ctx, stderr)
	if err != nil {
		return err
	}
	defer s.close()

	tc := terminal.New(stdout, *user)
	opts, err := s.botOptions()
	if err != nil {
		return err
	}
	if s.demo != nil && *common.configPath == "" {
		demoFeed(s.cfg)
	}
	b := bot.New(s.cfg, s.set, s.checker, s.store, s.set, append(opts, bot.WithLogger(logger), bot.WithPlatform(tc))...)
	defer b.Close()
	go sweep(ctx, b, logger)
	if s.demo != nil {
		// The demo's chat is its only process: it runs the deploy feed
		// (a real deployment's leader does).
		feedCtx, stopFeed := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); b.RunFeed(feedCtx) }()
		defer func() { stopFeed(); <-done }()
	}

	if f, ok := stdin.(*os.File); ok && terminal.IsTerminal(f) {
		return tc.RunInteractive(ctx, b, f)
	}
	return tc.RunLines(ctx, b, stdin)
}

// commonFlags are the flags chat and serve share: what to run against,
// where state lives, and logging.
type commonFlags struct {
	configPath, statePath, logLevel *string
	useDemo                         *bool
	tick, selfImport                *time.Duration
}

func addCommonFlags(fs *flag.FlagSet, defaultLevel string) commonFlags {
	return commonFlags{
		configPath: fs.String("config", "", "configuration file (YAML)"),
		useDemo:    fs.Bool("demo", false, "run against the built-in demo cluster (examples/packit.yaml unless --config is given)"),
		statePath:  fs.String("state", "", "state: the database state.db beside the given state.json, into which an existing state.json is migrated once (default: a temporary one with --demo, else $XDG_STATE_HOME/deploybot/state.json)"),
		tick:       fs.Duration("demo-tick", 0, "how long one demo pod takes to become ready (default 1s)"),
		logLevel:   fs.String("log-level", defaultLevel, "log level: debug, info, warn, error (JSON logs on stderr)"),
	}
}

// setUp builds the JSON logger and everything the bot runs on.
func (c commonFlags) setUp(ctx context.Context, stderr io.Writer) (*setup, *slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(*c.logLevel)); err != nil {
		return nil, nil, fmt.Errorf("--log-level: %w", err)
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	// client-go (the informers' reflectors, the REST client) logs through
	// klog: into our JSON log.
	klog.SetSlogLogger(logger)
	df := demoFlags{tick: *c.tick}
	if c.selfImport != nil {
		df.selfImport = *c.selfImport
	}
	s, err := build(ctx, *c.configPath, *c.useDemo, *c.statePath, df, logger)
	if err != nil {
		return nil, nil, err
	}
	return s, logger, nil
}

// sweep expires requests whose approval window has passed.
func sweep(ctx context.Context, b *bot.Bot, log *slog.Logger) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := b.Sweep(ctx); err != nil {
				log.Error("expiring requests", "err", err)
			}
		}
	}
}
