package terminal

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/commands"
	"github.com/deploybot/deploybot/store"
)

func TestRequestLine(t *testing.T) {
	tests := []struct {
		name, line string
		ok         bool
		user, text string
	}{
		{"plain line runs as the default user", "status prod", true, "alice", "status prod"},
		{"@NAME runs as NAME", "@bob approve #abc123", true, "bob", "approve #abc123"},
		{"surrounding space is trimmed", "   @carol   status  ", true, "carol", "status"},
		{"empty line is skipped", "   ", false, "", ""},
		{"comment is skipped", "// a note", false, "", ""},
		{"@ alone is skipped", "@", false, "", ""},
		{"@NAME without a command is skipped", "@bob", false, "", ""},
	}
	c := New(&bytes.Buffer{}, "alice")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, ok := c.request(tt.line)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if ok && (req.User.ID != tt.user || req.Text != tt.text || req.Platform != Name) {
				t.Errorf("request = %+v, want user %q text %q", req, tt.user, tt.text)
			}
		})
	}
}

// FuzzRequestLine: the terminal's line decoder never panics and never
// produces a request with an empty user or text.
func FuzzRequestLine(f *testing.F) {
	for _, s := range []string{"status prod", "@bob approve #abc123", "@", "@ x", "  ", "// c", "@bob", "\x00@\xff", "@a\tb c"} {
		f.Add(s)
	}
	c := New(&bytes.Buffer{}, "alice")
	f.Fuzz(func(t *testing.T, line string) {
		req, ok := c.request(line)
		if !ok {
			return
		}
		if req.User.ID == "" || strings.TrimSpace(req.Text) == "" {
			t.Fatalf("request %+v from %q has no user or text", req, line)
		}
		if utf8.ValidString(line) && !strings.Contains(line, req.Text) {
			t.Fatalf("text %q is not part of the line %q", req.Text, line)
		}
	})
}

// TestUpdatePrintsOnlyNewLines: a request message printed once is followed by
// just what changed, prefixed with its ID.
func TestUpdatePrintsOnlyNewLines(t *testing.T) {
	var out bytes.Buffer
	c := New(&out, "alice")
	ctx := context.Background()
	msg := func(state string, progress ...string) bot.Reply {
		o := commands.Output{Title: "#abc123 import prod: " + state, Sections: []commands.Section{{Lines: []string{"packit-worker: aaa → bbb"}}}}
		if len(progress) > 0 {
			o.Sections = append(o.Sections, commands.Section{Heading: "Progress", Lines: progress})
		}
		return bot.Reply{Output: o, RequestID: "abc123"}
	}
	ref, err := c.Post(ctx, Channel, msg("waiting for approval"))
	if err != nil {
		t.Fatal(err)
	}
	if ref != (store.MessageRef{Platform: Name, Channel: Channel, ID: "abc123"}) {
		t.Errorf("ref = %+v", ref)
	}
	out.Reset()
	if err := c.Update(ctx, ref, msg("executing", "statefulset/w: rolling, 1/2 updated")); err != nil {
		t.Fatal(err)
	}
	want := "#abc123 import prod: executing\n#abc123 Progress:\n#abc123 statefulset/w: rolling, 1/2 updated\n"
	if out.String() != want {
		t.Errorf("update printed\n%q\nwant\n%q", out.String(), want)
	}
	out.Reset()
	if err := c.Update(ctx, ref, msg("executing", "statefulset/w: rolling, 1/2 updated")); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 {
		t.Errorf("an unchanged update printed %q", out.String())
	}
}
