package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReplicaName: the pod name wins; else an ID kept in the state
// directory, the same on every start; a damaged ID file is refused.
func TestReplicaName(t *testing.T) {
	none := func(string) string { return "" }
	pod := func(k string) string {
		if k == "POD_NAME" {
			return "deploybot-7c9d-x2k4p"
		}
		return ""
	}
	dir := t.TempDir()
	if got, err := replicaName(pod, dir); err != nil || got != "deploybot-7c9d-x2k4p" {
		t.Errorf("with POD_NAME: %q, %v", got, err)
	}
	first, err := replicaName(none, dir)
	if err != nil || first == "" {
		t.Fatalf("first start: %q, %v", first, err)
	}
	again, err := replicaName(none, dir)
	if err != nil || again != first {
		t.Errorf("second start: %q, %v; want the same %q", again, err, first)
	}
	if other, _ := replicaName(none, t.TempDir()); other == first {
		t.Errorf("another state directory got the same ID %q", other)
	}
	if err := os.WriteFile(filepath.Join(dir, replicaIDFile), []byte("Not An ID!\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := replicaName(none, dir); err == nil || !strings.Contains(err.Error(), "remove the file") {
		t.Errorf("damaged ID file: %v, want a clear refusal", err)
	}
	a, _ := replicaName(none, "")
	b, _ := replicaName(none, "")
	if a == b {
		t.Errorf("without a state directory two processes got the same name %q", a)
	}
}
