package bot

import (
	"testing"

	"github.com/deploybot/deploybot/commands"
)

// FuzzReplyCommand pins that labelling a message the parser answered never
// panics and yields only a bounded set of label values: "help", "none" or a
// registered command's name, so /metrics cannot grow a series per message.
func FuzzReplyCommand(f *testing.F) {
	for _, s := range []string{"", "import", "/deploy import nowhere", "!deploy", "DEPLOY Status prod", "frobnicate", "deploy", "  \t", "revert worker sha256:zz"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, text string, titled bool) {
		out := commands.Output{}
		if titled {
			out.Title = "help"
		}
		got := replyCommand(text, out)
		if got == "help" || got == "none" {
			return
		}
		if spec, ok := commands.Lookup(got); !ok || spec.Name != got {
			t.Fatalf("replyCommand(%q) = %q: not a registered command name", text, got)
		}
	})
}
