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
// produces a request with an empty user or text; piped, any input is read
// to its end, no line longer than a command reaches the bot, and nothing
// the terminal would act on (escape codes, invalid UTF-8) is written back.
func FuzzRequestLine(f *testing.F) {
	for _, s := range []string{"status prod", "@bob approve #abc123", "@", "@ x", "  ", "// c", "@bob", "\x00@\xff", "@a\tb c",
		"status \x1b[31mprod\x1b[0m", "\x1b]0;title\x07", "a\rb\r\n", "\u202eevil", "\xc3", strings.Repeat("x", 4097) + "\nstatus",
		strings.Repeat("y", 70*1024) + "\r\nwhoami\n"} {
		f.Add(s)
	}
	c := New(&bytes.Buffer{}, "alice")
	f.Fuzz(func(t *testing.T, line string) {
		var out bytes.Buffer
		h := &recordingHandler{}
		if err := New(&out, "alice").RunLines(context.Background(), h, strings.NewReader(line)); err != nil {
			t.Fatalf("RunLines(%q): %v", line, err)
		}
		for _, text := range h.texts {
			if len(text) > commands.MaxInput {
				t.Fatalf("a line of %d bytes reached the bot", len(text))
			}
		}
		if o := out.String(); !utf8.ValidString(o) || strings.ContainsFunc(o, func(r rune) bool { return r != '\n' && needsEscape(r) }) {
			t.Fatalf("RunLines(%q) wrote %q", line, o)
		}
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

// recordingHandler answers every request with "ok: TEXT" and records the texts.
type recordingHandler struct{ texts []string }

func (h *recordingHandler) Handle(ctx context.Context, req bot.Request, resp bot.Responder) error {
	h.texts = append(h.texts, req.Text)
	return resp.Respond(ctx, bot.Reply{Output: commands.Output{Sections: []commands.Section{{Lines: []string{"ok: " + req.Text}}}}})
}

func (h *recordingHandler) Wait() {}

// TestRunLines: piped input is read to its end whatever a line holds; an
// over-long line is answered, not run, and the lines after it still are.
func TestRunLines(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		handled  []string
		want     []string // in the output
		wantNone []string // nowhere in the output
	}{
		{name: "lines are handled in order", in: "status prod\n\n// note\n@bob approve #abc\nwhoami",
			handled: []string{"status prod", "approve #abc", "whoami"}, want: []string{"alice> status prod", "bob> approve #abc", "ok: whoami"}},
		{name: "CRLF line ends", in: "status prod\r\nwhoami\r\n", handled: []string{"status prod", "whoami"}},
		{name: "a line over 64 KiB", in: "status prod\n" + strings.Repeat("x", 70*1024) + "\nwhoami\n",
			handled: []string{"status prod", "whoami"},
			want:    []string{"That line is 70 KiB (71,680 bytes); a command is at most 4 KiB (4,096 bytes). It was not run."}},
		{name: "a line over 4 KiB", in: "deny #abc " + strings.Repeat("y", 5000) + "\nwhoami\n",
			handled: []string{"whoami"},
			want:    []string{"alice> deny #abc yyyy", "That line is 5 KiB (5,010 bytes)"}},
		{name: "an over-long line as someone else", in: "@bob deny #abc " + strings.Repeat("y", 5000) + "\n",
			want: []string{"bob> deny #abc yyyy"}},
		{name: "a line of exactly 4 KiB is a command", in: "deny #abc " + strings.Repeat("y", 4096-len("deny #abc ")) + "\n",
			handled: []string{"deny #abc " + strings.Repeat("y", 4096-len("deny #abc "))}},
		{name: "escape codes are not echoed raw", in: "status \x1b[31mprod\x1b[0m \x07\u202e\n",
			handled:  []string{"status \x1b[31mprod\x1b[0m \x07\u202e"},
			want:     []string{`alice> status \x1b[31mprod\x1b[0m \x07\u202e`, `ok: status \x1b[31mprod`},
			wantNone: []string{"\x1b", "\x07", "\u202e"}},
		{name: "invalid UTF-8 is not echoed raw", in: "status \xff\xfe\n", handled: []string{"status \xff\xfe"},
			want: []string{`alice> status \xff\xfe`}, wantNone: []string{"\xff"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			h := &recordingHandler{}
			if err := New(&out, "alice").RunLines(context.Background(), h, strings.NewReader(tt.in)); err != nil {
				t.Fatalf("RunLines: %v", err)
			}
			if strings.Join(h.texts, "\n") != strings.Join(tt.handled, "\n") {
				t.Errorf("handled %q, want %q", h.texts, tt.handled)
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%.2000s", w, out.String())
				}
			}
			for _, w := range tt.wantNone {
				if strings.Contains(out.String(), w) {
					t.Errorf("output has %q:\n%.2000q", w, out.String())
				}
			}
		})
	}
}

// rw is a terminal for runTerminal: what the user types, and what the
// terminal shows.
type rw struct {
	in  *strings.Reader
	out bytes.Buffer
}

func (r *rw) Read(p []byte) (int, error)  { return r.in.Read(p) }
func (r *rw) Write(p []byte) (int, error) { return r.out.Write(p) }

// TestInteractiveLines: x/term's line editor keeps at most 4,096 typed
// characters of a line and drops the rest, so a line that reaches the limit
// is refused rather than run cut; a bracketed paste is taken whole (and an
// over-long one refused like a piped line).
func TestInteractiveLines(t *testing.T) {
	const pasteStart, pasteEnd = "\x1b[200~", "\x1b[201~"
	tests := []struct {
		name    string
		in      string
		handled []string
		want    []string
	}{
		{name: "typed lines", in: "status prod\rwhoami\r", handled: []string{"status prod", "whoami"}},
		{name: "a typed line cut at the editor's limit", in: "deny #abc " + strings.Repeat("y", 5000) + "\rwhoami\r",
			handled: []string{"whoami"}, want: []string{"That line reached the terminal's limit of 4,096 characters; what came after was dropped, so it was not run."}},
		{name: "a paste", in: pasteStart + "status prod" + pasteEnd + "\r", handled: []string{"status prod"}},
		{name: "a paste of several lines", in: pasteStart + "status prod\rwhoami" + pasteEnd + "\r", handled: []string{"status prod", "whoami"}},
		{name: "a long paste is not cut", in: pasteStart + "deny #abc " + strings.Repeat("y", 5000) + pasteEnd + "\rwhoami\r",
			handled: []string{"whoami"}, want: []string{"That line is 5 KiB (5,010 bytes); a command is at most 4 KiB (4,096 bytes). It was not run."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			term := &rw{in: strings.NewReader(tt.in)}
			h := &recordingHandler{}
			if err := New(&bytes.Buffer{}, "alice").runTerminal(context.Background(), h, term); err != nil {
				t.Fatalf("runTerminal: %v", err)
			}
			if strings.Join(h.texts, "\n") != strings.Join(tt.handled, "\n") {
				t.Errorf("handled %.200q, want %.200q", h.texts, tt.handled)
			}
			for _, w := range tt.want {
				if !strings.Contains(term.out.String(), w) {
					t.Errorf("terminal lacks %q", w)
				}
			}
		})
	}
}
