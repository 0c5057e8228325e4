package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/deploybot/deploybot/lifecycle"
)

// replicaIDFile holds, next to the state file, the name a single-replica
// deploybot executes requests under, so that it keeps it across restarts.
const replicaIDFile = "replica-id"

var replicaIDRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{0,62}$`)

// replicaName is the name this process executes requests under, stable
// across restarts so that a restarted deploybot recognises at once the
// executions its earlier life left behind (and reports them in seconds,
// not after the heartbeat goes stale):
//
//   - in a pod, the pod name ($POD_NAME, which the chart sets from the
//     downward API; a container restart keeps it, a new pod gets a new one);
//   - with a state directory (the single-replica file store), an ID kept in
//     DIR/replica-id, created on the first start;
//   - otherwise the host name and a random suffix, new for every process.
func replicaName(getenv func(string) string, stateDir string) (string, error) {
	if pod := strings.TrimSpace(getenv("POD_NAME")); pod != "" {
		return pod, nil
	}
	if stateDir == "" {
		return lifecycle.DefaultReplicaName(), nil
	}
	path := filepath.Join(stateDir, replicaIDFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		id := strings.TrimSpace(string(b))
		if !replicaIDRE.MatchString(id) {
			return "", fmt.Errorf("the replica ID in %s is %q, not a name of lower-case letters, digits, dots and dashes; remove the file to get a new one", path, id)
		}
		return id, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("reading the replica ID: %w", err)
	}
	host, _ := os.Hostname()
	host = strings.ToLower(host)
	if !replicaIDRE.MatchString(host) || len(host) > 50 {
		host = "deploybot"
	}
	var r [4]byte
	_, _ = rand.Read(r[:]) // crypto/rand.Read never fails
	id := host + "-" + hex.EncodeToString(r[:])
	// Written aside and renamed, so a crash never leaves half an ID.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("keeping the replica ID: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("keeping the replica ID: %w", err)
	}
	return id, nil
}
