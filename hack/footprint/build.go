package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// build is one deploybot binary under measurement.
type build struct {
	label string // column heading: "before (abc1234)", "after (working tree)"
	name  string // short name for progress lines and file names: before, after
	src   string // the source tree it was built from
	bin   string
	size  int64 // bytes
}

// dockerLDFlags are the Dockerfile's linker flags with its default VERSION
// (ARG VERSION=dev).
const dockerLDFlags = "-s -w -X main.version=dev"

// buildBinary builds ./cmd/deploybot of src into bin the way the Dockerfile
// does: CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=dev".
// -buildvcs=false stands for the Docker build context, which has no .git
// (.dockerignore), so the image's binary carries no VCS stamp either.
func buildBinary(ctx context.Context, r *reaper, src, bin string) (int64, error) {
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags", dockerLDFlags, "-o", bin, "./cmd/deploybot")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
	if _, err := r.run(ctx, "building deploybot in "+src, cmd); err != nil {
		return 0, err
	}
	fi, err := os.Stat(bin)
	if err != nil {
		return 0, fmt.Errorf("the built binary: %w", err)
	}
	return fi.Size(), nil
}

// buildWorkingTree builds the working tree at root.
func buildWorkingTree(ctx context.Context, r *reaper, root, tmp string) (*build, error) {
	b := &build{label: "after (working tree)", name: "after", src: root, bin: filepath.Join(tmp, "deploybot-after")}
	if head, err := gitOutput(ctx, r, root, "rev-parse", "--short", "HEAD"); err == nil {
		b.label = "after (working tree on " + head + ")"
	}
	var err error
	if b.size, err = buildBinary(ctx, r, root, b.bin); err != nil {
		return nil, fmt.Errorf("building the working tree: %w", err)
	}
	return b, nil
}

// buildRevision extracts rev with `git archive` into a directory under tmp
// (the repository and its work tree are only read) and builds it.
func buildRevision(ctx context.Context, r *reaper, root, rev, tmp string) (*build, error) {
	hash, err := gitOutput(ctx, r, root, "rev-parse", "--verify", "--quiet", rev+"^{commit}")
	if err != nil {
		if ctx.Err() == nil {
			return nil, fmt.Errorf("BASE %q names no commit of %s (git rev-parse --verify %s^{commit} failed)", rev, root, rev)
		}
		return nil, fmt.Errorf("resolving BASE %q: %w", rev, err)
	}
	short, err := gitOutput(ctx, r, root, "rev-parse", "--short", hash)
	if err != nil {
		return nil, fmt.Errorf("resolving BASE %q: %w", rev, err)
	}
	src := filepath.Join(tmp, "src-"+short)
	if err := os.MkdirAll(src, 0o700); err != nil {
		return nil, fmt.Errorf("creating the directory for %s: %w", short, err)
	}
	if err := extract(ctx, r, root, hash, src); err != nil {
		return nil, fmt.Errorf("extracting %s (%s): %w", rev, short, err)
	}
	b := &build{label: "before (" + short + ")", name: "before", src: src, bin: filepath.Join(tmp, "deploybot-before")}
	if rev != short && !strings.HasPrefix(hash, rev) {
		b.label = "before (" + rev + " = " + short + ")"
	}
	if b.size, err = buildBinary(ctx, r, src, b.bin); err != nil {
		return nil, fmt.Errorf("building %s (%s): %w", rev, short, err)
	}
	return b, nil
}

// extract writes the tree of commit hash into dir: git archive | tar -x.
func extract(ctx context.Context, r *reaper, root, hash, dir string) error {
	pr, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("creating a pipe: %w", err)
	}
	archive := exec.Command("git", "-C", root, "archive", "--format=tar", hash)
	archive.Stdout = pw
	untar := exec.Command("tar", "-x", "-C", dir)
	untar.Stdin = pr
	errs := make(chan error, 1)
	go func() {
		_, err := r.run(ctx, "git archive", archive)
		_ = pw.Close()
		errs <- err
	}()
	_, untarErr := r.run(ctx, "tar -x", untar)
	_ = pr.Close()
	archiveErr := <-errs
	if archiveErr != nil {
		return archiveErr
	}
	return untarErr
}

// gitOutput runs git in root and returns its trimmed stdout.
func gitOutput(ctx context.Context, r *reaper, root string, args ...string) (string, error) {
	out, err := r.run(ctx, "running git", exec.Command("git", append([]string{"-C", root}, args...)...))
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(out))
	if s == "" {
		return "", fmt.Errorf("git %s printed nothing", strings.Join(args, " "))
	}
	return s, nil
}
