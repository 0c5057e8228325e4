package commands

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
)

func TestDebugOutputs(t *testing.T) {
	d := testDeps(newFake())
	caller := Caller{Platform: "terminal", ChatID: "alice", Name: "alice", User: "alice", Groups: []string{"packit-devs"}}
	for _, in := range []string{"help", "help undo", "status prod", "status stg", "images worker prod", "history worker prod", "history service prod --revision 1", "whoami"} {
		r := Parse(d.Config, Input{Text: in, Now: t0})
		out, err := Run(context.Background(), d, caller, r.Command)
		fmt.Printf("=== %s (err %v)\n%s\n", in, err, flatten(out))
	}
	for _, in := range []string{"import prod", "revert worker prod " + digest("quay.io/packit/packit-worker", "prod", 0)[7:15], "track worker stg", "undo service prod", "undo worker prod", "undo fedmsg prod", "undo worker prod --force"} {
		r := Parse(d.Config, Input{Text: in, Now: t0})
		p, err := BuildPlan(context.Background(), d, caller, r.Command)
		b, _ := json.MarshalIndent(p, "", " ")
		_ = b
		fmt.Printf("=== %s (err %v)\n%s\n", in, err, flatten(RenderPlan(p)))
	}
}
