package discord

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/bwmarrin/discordgo"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/commands"
)

// withinLimits reports the first Discord limit m breaks, or "".
func withinLimits(m message) string {
	if textLen(m.Content) > maxContent {
		return fmt.Sprintf("content has %d characters", textLen(m.Content))
	}
	if len(m.Embeds) > maxEmbeds {
		return fmt.Sprintf("%d embeds", len(m.Embeds))
	}
	total := 0
	for _, e := range m.Embeds {
		if textLen(e.Title) > maxEmbedTitle {
			return fmt.Sprintf("title has %d characters", textLen(e.Title))
		}
		if textLen(e.Description) > maxEmbedDescription {
			return fmt.Sprintf("description has %d characters", textLen(e.Description))
		}
		if strings.Count(e.Description, fence)%2 != 0 {
			return "a code block is not closed: " + e.Description
		}
		if e.Title == "" && e.Description == "" {
			return "an empty embed"
		}
		total += textLen(e.Title) + textLen(e.Description)
	}
	if total > maxEmbedsTotal {
		return fmt.Sprintf("embeds have %d characters together", total)
	}
	if m.Content == "" && len(m.Embeds) == 0 {
		return "an empty message"
	}
	return ""
}

func lines(n int, format string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(format, i)
	}
	return out
}

func TestRenderWithinLimits(t *testing.T) {
	tests := []struct {
		name         string
		out          commands.Output
		request      bool
		wantMessages int
		wantAll      bool // every line is shown
		wantNote     bool // a note says something was cut
	}{
		{name: "short", out: commands.Output{Title: "status prod", Sections: []commands.Section{{Heading: "packit-worker", Lines: []string{"tracking quay.io/packit/packit-worker:prod"}}}},
			wantMessages: 1, wantAll: true},
		{name: "a long table is split into embeds and messages", out: commands.Output{Title: "audit", Sections: []commands.Section{{Pre: true, Lines: lines(400, "2026-11-24 10:00:%03d  #abcdefghij  prod  approve  bob")}}},
			wantMessages: 4, wantAll: true},
		{name: "a huge reply is cut with a note", out: commands.Output{Title: "history", Sections: []commands.Section{{Pre: true, Lines: lines(3000, "revision %04d quay.io/packit/packit-worker@sha256:0123456789abcdef")}}},
			wantMessages: maxReplyMessages, wantNote: true},
		{name: "a request message is one message, cut with a note", request: true, out: commands.Output{Title: "#abc import prod", Sections: []commands.Section{{Pre: true, Lines: lines(500, "packit-worker-%03d: 0123456789ab → ba9876543210")}, {Lines: []string{"Requested by alice"}}}},
			wantMessages: 1, wantNote: true},
		{name: "one endless line is clipped", out: commands.Output{Sections: []commands.Section{{Lines: []string{strings.Repeat("x", 10000)}}}},
			wantMessages: 1, wantNote: false},
		{name: "an overlong title is clipped", out: commands.Output{Title: strings.Repeat("t", 300), Sections: []commands.Section{{Lines: []string{"x"}}}},
			wantMessages: 1},
		{name: "nothing at all", out: commands.Output{}, wantMessages: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var msgs []message
			if tt.request {
				msgs = []message{renderRequest(bot.Reply{Output: tt.out})}
			} else {
				msgs = renderReply(bot.Reply{Output: tt.out})
			}
			if len(msgs) != tt.wantMessages {
				t.Errorf("%d messages, want %d", len(msgs), tt.wantMessages)
			}
			var all strings.Builder
			for i, m := range msgs {
				if why := withinLimits(m); why != "" {
					t.Errorf("message %d breaks a limit: %s", i, why)
				}
				for _, e := range m.Embeds {
					all.WriteString(e.Description + "\n")
				}
			}
			shown := all.String()
			if tt.wantAll {
				for _, s := range tt.out.Sections {
					for _, l := range s.Lines {
						if !strings.Contains(shown, l) {
							t.Fatalf("line %q is not shown", l)
						}
					}
				}
			}
			if got := strings.Contains(shown, "not shown"); got != tt.wantNote {
				t.Errorf("note present = %v, want %v", got, tt.wantNote)
			}
		})
	}
}

func TestRenderSections(t *testing.T) {
	m := renderReply(bot.Reply{Output: commands.Output{Title: "status prod", Sections: []commands.Section{
		{Heading: "packit-worker", Lines: []string{"current 0123456789ab", "tracking quay.io/packit/packit-worker:prod"}},
		{Pre: true, Lines: []string{"statefulset/a 2/2", "evil ``` fence"}},
	}}})[0]
	if len(m.Embeds) != 1 || m.Embeds[0].Title != "status prod" {
		t.Fatalf("embeds = %+v, want one titled embed", m.Embeds)
	}
	want := "**packit-worker**\ncurrent 0123456789ab\ntracking quay.io/packit/packit-worker:prod\n\n```\nstatefulset/a 2/2\nevil `\u200b`\u200b` fence\n```"
	if got := m.Embeds[0].Description; got != want {
		t.Errorf("description:\n%s\nwant:\n%s", got, want)
	}
}

func TestButtons(t *testing.T) {
	r := bot.Reply{RequestID: "abc", Output: commands.Output{Title: "#abc"}, Buttons: []bot.Button{
		{Action: bot.ActionConfirm, RequestID: "abc", Label: "Confirm", Confirm: "Really import prod?"},
		{Action: bot.ActionCancel, RequestID: "abc", Label: "Cancel"},
		{Action: bot.ActionApprove, RequestID: "abc", Label: "Approve"},
		{Action: bot.ActionDeny, RequestID: "abc", Label: "Deny", Danger: true, Confirm: "Deny #abc?"},
	}}
	got := renderRequest(r)
	b, _ := json.Marshal(got.Components)
	want := `[{"components":[` +
		`{"label":"Confirm","style":1,"disabled":false,"custom_id":"deploybot/confirm?/abc","type":2},` +
		`{"label":"Cancel","style":2,"disabled":false,"custom_id":"deploybot/cancel/abc","type":2},` +
		`{"label":"Approve","style":3,"disabled":false,"custom_id":"deploybot/approve/abc","type":2},` +
		`{"label":"Deny","style":4,"disabled":false,"custom_id":"deploybot/deny?/abc","type":2}],"type":1}]`
	if string(b) != want {
		t.Errorf("components:\n%s\nwant:\n%s", b, want)
	}
	// An edit of a message without buttons removes the old ones.
	edit, _ := json.Marshal(renderRequest(bot.Reply{Output: commands.Output{Title: "#abc done"}}).channelEdit("1", "2"))
	if !strings.Contains(string(edit), `"components":[]`) || !strings.Contains(string(edit), `"allowed_mentions":{"parse":[]`) {
		t.Errorf("edit %s does not clear the buttons or allows mentions", edit)
	}
}

func TestMergeKeepsOneMessageWithinLimits(t *testing.T) {
	var msgs []message
	for i := range 20 {
		msgs = append(msgs, renderReply(bot.Reply{Output: commands.Output{Title: fmt.Sprint("reply ", i), Sections: []commands.Section{{Lines: lines(20, "line %d of a reply")}}}})...)
	}
	m := merge(msgs)
	if why := withinLimits(m); why != "" {
		t.Fatalf("merged message breaks a limit: %s", why)
	}
	last := m.Embeds[len(m.Embeds)-1].Description
	if len(m.Embeds) != maxEmbeds || !strings.Contains(last, "rest is not shown") {
		t.Errorf("merged %d embeds ending %q, want %d with a note", len(m.Embeds), last, maxEmbeds)
	}
}

// FuzzRender: whatever the bot says, every message sent to Discord is
// within Discord's limits.
func FuzzRender(f *testing.F) {
	f.Add("title", "heading", "a line\nanother", true, 3)
	f.Add("", "", "```", false, 1000)
	f.Add(strings.Repeat("é", 300), "h", strings.Repeat("🚀", 100), true, 40)
	f.Add("", "```", "`````", true, 3)
	f.Add("t", "h", strings.Repeat("x", 390)+"\n\n", true, 40)
	f.Fuzz(func(t *testing.T, title, heading, line string, pre bool, n int) {
		// Big enough to need several messages and cuts, small enough to be fast.
		n = min(max(n, 0), 40)
		if len(line) > 400 {
			line = line[:400]
		}
		out := commands.Output{Title: title, Sections: []commands.Section{{Heading: heading, Pre: pre, Lines: append(lines(n, line+"%d"), line)}}}
		for _, m := range append(renderReply(bot.Reply{Output: out}), renderRequest(bot.Reply{Output: out})) {
			if why := withinLimits(m); why != "" {
				t.Fatalf("breaks a limit: %s", why)
			}
		}
		if m := text(line); textLen(m.Content) > maxContent {
			t.Fatalf("text() made %d characters of content", textLen(m.Content))
		}
	})
}

// TestRenderNeverLeavesACodeBlockOpen pins the inputs that once did: a run
// of five backticks (unfence made "```" of it again), a fence in a heading,
// and a cut note placed after a blank line inside a code block.
func TestRenderNeverLeavesACodeBlockOpen(t *testing.T) {
	tests := []struct {
		name string
		out  commands.Output
	}{
		{name: "five backticks in text", out: commands.Output{Sections: []commands.Section{{Lines: append(lines(40, "`````%d"), "`````")}}}},
		{name: "five backticks in preformatted text", out: commands.Output{Sections: []commands.Section{{Pre: true, Lines: []string{"a ````` b"}}}}},
		{name: "a fence in a heading", out: commands.Output{Sections: []commands.Section{{Heading: "```", Lines: []string{"x"}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, m := range append(renderReply(bot.Reply{Output: tt.out}), renderRequest(bot.Reply{Output: tt.out})) {
				if why := withinLimits(m); why != "" {
					t.Errorf("message %d: %.200s", i, why)
				}
			}
		})
	}
	t.Run("a cut note does not land inside a code block", func(t *testing.T) {
		m := message{Embeds: []*discordgo.MessageEmbed{{Title: "t", Description: "```\n" + strings.Repeat("x\n\n", 1360) + "y\n```"}}}
		addNote(&m, "a note that needs room")
		if why := withinLimits(m); why != "" {
			t.Errorf("addNote: %.200s", why)
		}
	})
}

func TestUnfence(t *testing.T) {
	for in, want := range map[string]string{
		"plain":     "plain",
		"`code`":    "`code`",
		"``x``":     "``x``",
		"```":       "`\u200b`\u200b`",
		"`````":     "`\u200b`\u200b`\u200b`\u200b`",
		"a ``` b `": "a `\u200b`\u200b` b `",
	} {
		if got := unfence(in); got != want {
			t.Errorf("unfence(%q) = %q, want %q", in, got, want)
		}
	}
}
