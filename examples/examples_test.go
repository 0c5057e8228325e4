package examples_test

import (
	"testing"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/examples"
)

func TestPackitEmbeddedIsValid(t *testing.T) {
	if _, err := config.Parse(examples.Packit); err != nil {
		t.Fatalf("embedded examples/packit.yaml: %v", err)
	}
}
