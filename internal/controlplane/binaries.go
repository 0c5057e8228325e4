package controlplane

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

// BinEnv names the environment variable that points at a directory holding
// the control-plane binaries (as built by hack/controlplane/build.sh). Its
// sibling directory ../stages must hold kwok's node and pod stage files. When
// it is unset, the binaries are built (or found in the cache) by build.sh.
const BinEnv = "DEPLOYBOT_CONTROLPLANE_BIN"

// buildScript is the build script's path relative to the repository root.
const buildScript = "hack/controlplane/build.sh"

// Binaries lists the programs a control plane runs, all expected in BinDir.
var Binaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok"}

var (
	binMu     sync.Mutex
	binCached string
)

// FindBinaries returns the directory holding the control-plane binaries: the
// value of $DEPLOYBOT_CONTROLPLANE_BIN, or else the cache directory printed by
// hack/controlplane/build.sh, which it runs (building on a cold cache takes
// about 9 minutes; its progress goes to progress, if not nil). The result is
// remembered for the life of the process.
func FindBinaries(progress io.Writer) (string, error) {
	binMu.Lock()
	defer binMu.Unlock()
	if binCached != "" {
		return binCached, nil
	}
	dir := os.Getenv(BinEnv)
	if dir == "" {
		var err error
		if dir, err = runBuild(progress); err != nil {
			return "", err
		}
	}
	if err := checkBinDir(dir); err != nil {
		return "", err
	}
	binCached = dir
	return dir, nil
}

func checkBinDir(dir string) error {
	var missing []string
	for _, b := range Binaries {
		if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("control-plane bin dir %s lacks %s (build with %s, or fix $%s)",
			dir, strings.Join(missing, ", "), buildScript, BinEnv)
	}
	for _, kind := range []string{"node", "pod"} {
		if fi, err := os.Stat(filepath.Join(dir, "..", "stages", kind)); err != nil || !fi.IsDir() {
			return fmt.Errorf("control-plane bin dir %s has no ../stages/%s with kwok stage files (build with %s)",
				dir, kind, buildScript)
		}
	}
	return nil
}

// RepoRoot walks up from the working directory to the directory holding both
// go.mod and hack/controlplane/build.sh.
func RepoRoot() (string, error) {
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
			return "", fmt.Errorf("no directory above %s holds go.mod and %s; set $%s to the control-plane bin dir",
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
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	script := filepath.Join(root, buildScript)
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("bash", script)
	cmd.Dir = root
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if progress != nil {
		cmd.Stderr = io.MultiWriter(&stderr, progress)
	}
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building the control plane failed (run `bash %s` in %s to see why): %w\n%s",
			buildScript, root, err, tail(stderr.String(), 30))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	dir := strings.TrimSpace(lines[len(lines)-1])
	if dir == "" {
		return "", errors.New("building the control plane: " + buildScript + " printed no bin dir")
	}
	return dir, nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
