package deploy_test

import (
	"debug/buildinfo"
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// repoRoot is the repository root: tests run in their package's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod in %s: %v", root, err)
	}
	return root
}

// dockerfile is the repository's Dockerfile as BuildKit reads it.
type dockerfile struct {
	stages   []instructions.Stage
	metaArgs []instructions.ArgCommand
	// warnings are the parser's and the linter's (BuildKit's build checks).
	warnings []string
}

func parseDockerfile(t *testing.T, path string) dockerfile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
	var df dockerfile
	for _, w := range res.Warnings {
		df.warnings = append(df.warnings, fmt.Sprintf("%s (line %v)", w.Short, w.Location))
	}
	lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []parser.Range) {
		df.warnings = append(df.warnings, fmt.Sprintf("%s: %s (%v)", rule, msg, loc))
	}})
	df.stages, df.metaArgs, err = instructions.Parse(res.AST, lint)
	if err != nil {
		t.Fatalf("parsing the instructions of %s: %v", path, err)
	}
	return df
}

// commands returns a stage's instructions of type T.
func commands[T instructions.Command](s instructions.Stage) []T {
	var out []T
	for _, c := range s.Commands {
		if v, ok := c.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// goBuild is the build stage's RUN that runs go build, split into words as
// /bin/sh would with the ARG defaults in its environment.
type goBuild struct {
	env  []string // leading NAME=VALUE words
	args []string // after "go"
}

func findGoBuild(t *testing.T, s instructions.Stage) goBuild {
	t.Helper()
	env := []string{}
	for _, a := range commands[*instructions.ArgCommand](s) {
		for _, kv := range a.Args {
			env = append(env, kv.Key+"="+kv.ValueString())
		}
	}
	for _, run := range commands[*instructions.RunCommand](s) {
		line := strings.Join(run.CmdLine, " ")
		if !strings.Contains(line, "go build") {
			continue
		}
		words, err := shell.NewLex('\\').ProcessWords(line, shell.EnvsFromSlice(env))
		if err != nil {
			t.Fatalf("splitting %q: %v", line, err)
		}
		var gb goBuild
		for len(words) > 0 && strings.Contains(words[0], "=") {
			gb.env, words = append(gb.env, words[0]), words[1:]
		}
		if len(words) < 2 || words[0] != "go" || words[1] != "build" {
			t.Fatalf("RUN %q is not one plain `[NAME=VALUE...] go build ...` command", line)
		}
		gb.args = words[1:]
		return gb
	}
	t.Fatalf("stage %s runs no go build", s.Name)
	return goBuild{}
}

// flag returns the value after name in args ("" if absent).
func flag(args []string, name string) (string, bool) {
	i := slices.Index(args, name)
	if i < 0 {
		return "", false
	}
	if i+1 < len(args) {
		return args[i+1], true
	}
	return "", true
}

var (
	digestRef  = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)
	exactTag   = regexp.MustCompile(`:[^:/@]*\d+\.\d+\.\d+[^:/@]*(@sha256:[0-9a-f]{64})?$`)
	numericUID = regexp.MustCompile(`^[1-9][0-9]*(:[0-9]+)?$`)
)

// goVersion is the go directive of go.mod.
func goVersion(t *testing.T, root string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+\.\d+)$`).FindSubmatch(raw)
	if m == nil {
		t.Fatal("go.mod has no `go X.Y.Z` line")
	}
	return string(m[1])
}

func TestDockerfile(t *testing.T) {
	root := repoRoot(t)
	df := parseDockerfile(t, filepath.Join(root, "Dockerfile"))
	if len(df.stages) != 2 {
		t.Fatalf("%d stages, want 2 (build, run)", len(df.stages))
	}
	build, run := df.stages[0], df.stages[1]
	gb := findGoBuild(t, build)
	goVer := goVersion(t, root)

	tests := []struct {
		name  string
		check func() error
	}{
		{"BuildKit's parser and build checks have no warnings", func() error {
			if len(df.warnings) > 0 {
				return fmt.Errorf("warnings:\n%s", strings.Join(df.warnings, "\n"))
			}
			return nil
		}},
		{"the build stage is the Go toolchain image at go.mod's Go version", func() error {
			if build.Name != "build" || !strings.HasPrefix(build.BaseName, "golang:"+goVer) {
				return fmt.Errorf("first stage %q FROM %s, want a stage named build FROM golang:%s[-variant]", build.Name, build.BaseName, goVer)
			}
			return nil
		}},
		{"every base image is pinned by digest or an exact version", func() error {
			for _, s := range df.stages {
				if !digestRef.MatchString(s.BaseName) && !exactTag.MatchString(s.BaseName) {
					return fmt.Errorf("stage %q: FROM %s floats: pin it by @sha256 digest or an exact X.Y.Z tag", s.Name, s.BaseName)
				}
			}
			return nil
		}},
		{"the run stage is distroless static nonroot, pinned by digest", func() error {
			if !strings.HasPrefix(run.BaseName, "gcr.io/distroless/static-") || !strings.Contains(run.BaseName, ":nonroot@sha256:") {
				return fmt.Errorf("run stage FROM %s", run.BaseName)
			}
			return nil
		}},
		{"the run stage runs as a numeric non-root user", func() error {
			users := commands[*instructions.UserCommand](run)
			if len(users) == 0 {
				return fmt.Errorf("the run stage sets no USER")
			}
			if u := users[len(users)-1].User; !numericUID.MatchString(u) {
				return fmt.Errorf("USER %q: want a numeric, non-zero UID[:GID] so runAsNonRoot can be verified", u)
			}
			return nil
		}},
		{"the run stage needs no shell", func() error {
			if n := len(commands[*instructions.RunCommand](run)); n > 0 {
				return fmt.Errorf("the run stage has %d RUN instructions", n)
			}
			if n := len(commands[*instructions.ShellCommand](run)); n > 0 {
				return fmt.Errorf("the run stage sets a SHELL")
			}
			eps := commands[*instructions.EntrypointCommand](run)
			if len(eps) != 1 || eps[0].PrependShell || len(eps[0].CmdLine) == 0 {
				return fmt.Errorf("want one ENTRYPOINT in exec (JSON) form, got %+v", eps)
			}
			for _, c := range commands[*instructions.CmdCommand](run) {
				if c.PrependShell {
					return fmt.Errorf("CMD %v is in shell form", c.CmdLine)
				}
			}
			return nil
		}},
		{"the run stage copies only the binary from the build stage", func() error {
			copies := commands[*instructions.CopyCommand](run)
			if len(copies) != 1 || copies[0].From != "build" || len(copies[0].SourcePaths) != 1 {
				return fmt.Errorf("want one COPY --from=build of the binary, got %d COPY", len(copies))
			}
			out, _ := flag(gb.args, "-o")
			if copies[0].SourcePaths[0] != out {
				return fmt.Errorf("COPY --from=build %s, but go build writes %s", copies[0].SourcePaths[0], out)
			}
			ep := commands[*instructions.EntrypointCommand](run)[0].CmdLine[0]
			if dest := copies[0].DestPath; dest != ep {
				return fmt.Errorf("the binary goes to %s but ENTRYPOINT runs %s", dest, ep)
			}
			return nil
		}},
		{"go build: CGO_ENABLED=0, -trimpath, -ldflags with -s -w, ./cmd/deploybot", func() error {
			if !slices.Contains(gb.env, "CGO_ENABLED=0") {
				return fmt.Errorf("go build runs with %v, want CGO_ENABLED=0", gb.env)
			}
			if !slices.Contains(gb.args, "-trimpath") {
				return fmt.Errorf("go build %v has no -trimpath", gb.args)
			}
			ld, _ := flag(gb.args, "-ldflags")
			if f := strings.Fields(ld); !slices.Contains(f, "-s") || !slices.Contains(f, "-w") {
				return fmt.Errorf("-ldflags %q, want -s and -w", ld)
			}
			if gb.args[len(gb.args)-1] != "./cmd/deploybot" {
				return fmt.Errorf("go build %v does not build ./cmd/deploybot", gb.args)
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.check(); err != nil {
				t.Error(err)
			}
		})
	}
}

// buildContext copies what `docker build .` would send, after .dockerignore,
// from root into dst, and returns dst.
func buildContext(root, dst string) (string, error) {
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		return "", err
	}
	patterns, err := ignorefile.ReadAll(f)
	f.Close()
	if err != nil {
		return "", fmt.Errorf("reading .dockerignore: %w", err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return "", fmt.Errorf(".dockerignore: %w", err)
	}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if rel == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		skip, err := pm.MatchesOrParentMatches(filepath.ToSlash(rel))
		if err != nil || skip {
			return err
		}
		return copyFile(path, filepath.Join(dst, rel))
	})
	if err != nil {
		return "", fmt.Errorf("copying the build context: %w", err)
	}
	return dst, nil
}

func copyFile(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// dockerBuild is the Dockerfile's go build, run once per test binary.
var dockerBuild struct {
	once    sync.Once
	bin     string // the binary
	src     string // the build context it was built in
	command string // what ran, for the log
	err     error
}

// buildTmp holds what dockerBuild makes; TestMain removes it.
var buildTmp string

func TestMain(m *testing.M) {
	code := m.Run()
	if buildTmp != "" {
		_ = os.RemoveAll(buildTmp)
	}
	os.Exit(code)
}

// builtBinary runs the Dockerfile's go build command, word for word but for
// the output path, in a copy of the build context as .dockerignore leaves
// it (the image's /src), and returns the binary.
func builtBinary(t *testing.T) (bin, src string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the whole binary")
	}
	root := repoRoot(t)
	dockerBuild.once.Do(func() {
		df := parseDockerfile(t, filepath.Join(root, "Dockerfile"))
		gb := findGoBuild(t, df.stages[0])
		buildTmp, dockerBuild.err = os.MkdirTemp("", "deploybot-docker-build-")
		if dockerBuild.err != nil {
			return
		}
		dockerBuild.src, dockerBuild.err = buildContext(root, filepath.Join(buildTmp, "src"))
		if dockerBuild.err != nil {
			return
		}
		dockerBuild.bin = filepath.Join(buildTmp, "out", "deploybot")
		args := slices.Clone(gb.args)
		args[slices.Index(args, "-o")+1] = dockerBuild.bin
		cmd := exec.Command("go", args...)
		cmd.Dir = dockerBuild.src
		cmd.Env = append(os.Environ(), gb.env...)
		dockerBuild.command = strings.Join(gb.env, " ") + " go " + strings.Join(args, " ")
		if out, err := cmd.CombinedOutput(); err != nil {
			dockerBuild.err = fmt.Errorf("%s: %w\n%s", dockerBuild.command, err, out)
		}
	})
	if dockerBuild.err != nil {
		t.Fatalf("the Dockerfile's go build in the build context: %v", dockerBuild.err)
	}
	if dockerBuild.bin == "" {
		t.Fatal("the Dockerfile could not be read by an earlier test")
	}
	return dockerBuild.bin, dockerBuild.src
}

// TestDockerfileGoBuild runs the Dockerfile's go build command (builtBinary)
// and checks that the binary is static, stripped, built as the flags say,
// and runs.
func TestDockerfileGoBuild(t *testing.T) {
	bin, src := builtBinary(t)
	t.Logf("in the build context: %s", dockerBuild.command)

	fi, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stripped static binary: %d bytes (%.1f MiB)", fi.Size(), float64(fi.Size())/(1<<20))

	ef, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("reading the binary as ELF: %v", err)
	}
	defer ef.Close()
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has a program interpreter (dynamic loader): not static")
		}
		if p.Type == elf.PT_DYNAMIC {
			t.Error("the binary has a dynamic section: not static")
		}
	}
	if libs, _ := ef.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v", libs)
	}
	for _, name := range []string{".symtab", ".strtab", ".debug_info", ".zdebug_info"} {
		if ef.Section(name) != nil {
			t.Errorf("the binary has a %s section: not stripped (-s -w)", name)
		}
	}

	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatalf("reading the build info: %v", err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	for key, want := range map[string]string{"CGO_ENABLED": "0", "-trimpath": "true"} {
		if settings[key] != want {
			t.Errorf("build setting %s = %q, want %q", key, settings[key], want)
		}
	}
	// -ldflags is not recorded with -trimpath (it may hold paths); the
	// missing .symtab and DWARF sections above are what -s -w do.
	if strings.Contains(string(mustRead(t, bin)), src) {
		t.Errorf("the binary contains the build directory %s despite -trimpath", src)
	}

	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "deploybot dev" {
		t.Errorf("deploybot version: %q %v, want \"deploybot dev\" (the VERSION ARG's default)", out, err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
