package registrytest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// BinEnv names the environment variable that points at a registry binary
// built by hack/registry/build.sh. When it is unset, FindBinary runs build.sh
// (which builds once and caches).
const BinEnv = "DEPLOYBOT_REGISTRY_BIN"

// buildScript is the build script's path relative to the repository root.
const buildScript = "hack/registry/build.sh"

var (
	binMu     sync.Mutex
	binCached string
)

// FindBinary returns the path of the Distribution registry binary: the value
// of $DEPLOYBOT_REGISTRY_BIN, or else the path printed by
// hack/registry/build.sh, which it runs (a cold build takes minutes, see
// hack/registry/README.md; its progress goes to progress, if not nil). The result is
// remembered for the life of the process.
func FindBinary(progress io.Writer) (string, error) {
	binMu.Lock()
	defer binMu.Unlock()
	if binCached != "" {
		return binCached, nil
	}
	bin := os.Getenv(BinEnv)
	if bin == "" {
		var err error
		if bin, err = runBuild(progress); err != nil {
			return "", err
		}
	}
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("registry binary %s is missing or not executable (build it with `bash %s`, or fix $%s)",
			bin, buildScript, BinEnv)
	}
	binCached = bin
	return bin, nil
}

// repoRoot walks up from the working directory to the directory holding both
// go.mod and hack/registry/build.sh.
func repoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding repository root: %w", err)
	}
	for dir := wd; ; {
		if fileExists(filepath.Join(dir, "go.mod")) && fileExists(filepath.Join(dir, buildScript)) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no directory above %s holds go.mod and %s; set $%s to a registry binary",
				wd, buildScript, BinEnv)
		}
		dir = parent
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// runBuild runs build.sh and returns the last line of its stdout.
func runBuild(progress io.Writer) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("bash", filepath.Join(root, buildScript))
	cmd.Dir = root
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if progress != nil {
		cmd.Stderr = io.MultiWriter(&stderr, progress)
	}
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building the registry failed (run `bash %s` in %s to see why): %w\n%s",
			buildScript, root, err, tail(stderr.String(), 30))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	bin := strings.TrimSpace(lines[len(lines)-1])
	if bin == "" {
		return "", errors.New("building the registry: " + buildScript + " printed no binary path")
	}
	return bin, nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
