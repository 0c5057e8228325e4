package registrytest

import (
	"strings"
	"testing"
)

func TestFindBinaryNeverSkipsSilently(t *testing.T) {
	binMu.Lock()
	saved := binCached
	binCached = ""
	binMu.Unlock()
	t.Cleanup(func() {
		binMu.Lock()
		binCached = saved
		binMu.Unlock()
	})
	t.Setenv(BinEnv, "/nonexistent/registry")
	_, err := FindBinary(nil)
	if err == nil || !strings.Contains(err.Error(), "bash hack/registry/build.sh") || !strings.Contains(err.Error(), BinEnv) {
		t.Errorf("FindBinary with a missing binary = %v, want an error naming the build command and $%s", err, BinEnv)
	}
}
