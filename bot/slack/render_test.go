package slack

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	slackgo "github.com/slack-go/slack"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/commands"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/plan"
)

// blocksOf renders r and reads the blocks back as readBlocks lines.
func blocksOf(t *testing.T, r bot.Reply) (string, []slackgo.Block) {
	t.Helper()
	blocks, _ := Render(r)
	raw, err := json.Marshal(blocks)
	if err != nil {
		t.Fatal(err)
	}
	return readBlocks(t, string(raw)), blocks
}

func TestRender(t *testing.T) {
	p := commands.Output{
		Title: "#abc123 import prod: waiting for approval",
		Sections: []commands.Section{
			{Pre: true, Units: true, Lines: []string{
				"packit-service: b6d822630687 → 1be038bda583",
				"  rolls: deployment/packit-service",
				"packit-worker: 06b144c64cba → 4b63ce22b768",
				"  rolls: deployment/packit-service-beat",
			}},
			{Lines: []string{"needs: confirm by requester, 1 approval by someone else, expires in 1h"}},
		},
	}
	for _, tc := range []struct {
		name  string
		reply bot.Reply
		want  string
	}{
		{
			name: "a section per Plan target, buttons with dialogs and styles",
			reply: bot.Reply{Output: p, RequestID: "abc123", Buttons: []bot.Button{
				{Action: bot.ActionApprove, RequestID: "abc123", Label: "Approve"},
				{Action: bot.ActionDeny, RequestID: "abc123", Label: "Deny", Danger: true, Confirm: "Deny #abc123?"},
			}},
			want: "header: #abc123 import prod: waiting for approval\n" +
				"section: ```\npackit-service: b6d822630687 → 1be038bda583\n  rolls: deployment/packit-service\n```\n" +
				"section: ```\npackit-worker: 06b144c64cba → 4b63ce22b768\n  rolls: deployment/packit-service-beat\n```\n" +
				"section: needs: confirm by requester, 1 approval by someone else, expires in 1h\n" +
				"actions: approve=abc123[primary] deny=abc123[danger dialog]",
		},
		{
			name: "a table stays one code block, under its heading",
			reply: bot.Reply{Output: commands.Output{Sections: []commands.Section{{Heading: "packit-worker", Pre: true, Lines: []string{
				"image    06b144c64cba  imported 26h ago", "source   tracking quay.io/packit/packit-worker:prod"}}}}},
			want: "section: *packit-worker*\n```\nimage    06b144c64cba  imported 26h ago\nsource   tracking quay.io/packit/packit-worker:prod\n```",
		},
		{
			name: "mrkdwn control characters are escaped, code spans kept",
			reply: bot.Reply{Output: commands.Output{Private: true, Sections: []commands.Section{{Lines: []string{
				"Unknown command \"<!channel> & <@U1>\". `help` lists the commands."}}}}},
			want: "section: Unknown command \"&lt;!channel&gt; &amp; &lt;@U1&gt;\". `help` lists the commands.",
		},
		{
			name:  "a code fence inside preformatted text cannot end the block",
			reply: bot.Reply{Output: commands.Output{Sections: []commands.Section{{Pre: true, Lines: []string{"a ``` b"}}}}},
			want:  "section: ```\na `\u200b`` b\n```",
		},
		{
			name:  "five backticks cannot make a fence (bot/discord FuzzRender's find)",
			reply: bot.Reply{Output: commands.Output{Sections: []commands.Section{{Pre: true, Lines: []string{"a ````` b"}}}}},
			want:  "section: ```\na `\u200b``\u200b`` b\n```",
		},
		{
			name:  "a fence in plain text does not open a code block",
			reply: bot.Reply{Output: commands.Output{Sections: []commands.Section{{Lines: []string{"deny reason: `````"}}}}},
			want:  "section: deny reason: `\u200b``\u200b``",
		},
		{
			name:  "a fence in a heading does not open a code block",
			reply: bot.Reply{Output: commands.Output{Sections: []commands.Section{{Heading: "```", Lines: []string{"x"}}}}},
			want:  "section: *`\u200b``*\nx",
		},
		{
			name:  "blank sections are left out (Slack refuses empty text)",
			reply: bot.Reply{Output: commands.Output{Title: "t", Sections: []commands.Section{{Lines: []string{"", " "}}, {Pre: true}}}},
			want:  "header: t",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := blocksOf(t, tc.reply)
			if got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

// TestRenderHelpIsOneCodeBlock: help's table, whose long usages wrap their
// summary onto an indented line, is one code block, not one per command.
func TestRenderHelpIsOneCodeBlock(t *testing.T) {
	cfg := &config.Config{Environments: []config.Environment{{Name: "prod", Namespace: "p"}}}
	res := commands.Parse(cfg, commands.Input{Text: "help"})
	out, err := commands.Run(context.Background(), commands.Deps{Config: cfg}, plan.Caller{}, res.Command)
	if err != nil {
		t.Fatal(err)
	}
	got, blocks := blocksOf(t, bot.Reply{Output: out})
	checkLimits(t, blocks)
	if n := strings.Count(got, "section: ```"); n != 1 {
		t.Errorf("help is %d code blocks, want 1:\n%s", n, got)
	}
	for _, s := range commands.Commands() {
		if !strings.Contains(got, s.Usage) {
			t.Errorf("help lacks %q", s.Usage)
		}
	}
}

// TestRenderConfirmDialog pins the dialog Slack shows before a dangerous
// click counts, and that the button carries nothing but the request ID.
func TestRenderConfirmDialog(t *testing.T) {
	blocks, _ := Render(bot.Reply{RequestID: "abc123", Buttons: []bot.Button{
		{Action: bot.ActionConfirm, RequestID: "abc123", Label: "Confirm", Confirm: "Really import prod?"},
	}})
	act, ok := blocks[0].(*slackgo.ActionBlock)
	if !ok {
		t.Fatalf("block is %T, want an actions block", blocks[0])
	}
	btn := act.Elements.ElementSet[0].(*slackgo.ButtonBlockElement)
	if btn.ActionID != "confirm" || btn.Value != "abc123" {
		t.Errorf("button action_id=%q value=%q, want confirm and the request ID alone", btn.ActionID, btn.Value)
	}
	if btn.Confirm == nil || btn.Confirm.Text.Text != "Really import prod?" || btn.Confirm.Confirm.Text != "Confirm" || btn.Confirm.Deny.Text != "Back" {
		t.Errorf("confirm dialog = %+v", btn.Confirm)
	}
}

// TestRenderLimits: long output stays within Slack's limits, split where it
// can be and cut with a note where it cannot.
func TestRenderLimits(t *testing.T) {
	line := strings.Repeat("x", 120)
	many := make([]string, 2000) // 2000 × 121 characters: far beyond 50 × 3000
	for i := range many {
		many[i] = fmt.Sprintf("%04d %s", i, line)
	}
	var targets []string
	for i := range 80 {
		targets = append(targets, fmt.Sprintf("svc-%d: a → b", i), "  rolls: deployment/svc")
	}
	for _, tc := range []struct {
		name      string
		reply     bot.Reply
		wantCut   bool
		wantFirst string
	}{
		{name: "audit log of 2000 lines", reply: bot.Reply{Output: commands.Output{Title: "Last 2000 audit events", Sections: []commands.Section{{Pre: true, Lines: many}}}}, wantCut: true, wantFirst: "0000 "},
		{name: "one 10000-character line", reply: bot.Reply{Output: commands.Output{Sections: []commands.Section{{Lines: []string{strings.Repeat("y", 10000)}}}}}, wantFirst: "yyy"},
		{name: "80 Plan targets are packed, not cut", reply: bot.Reply{Output: commands.Output{Sections: []commands.Section{{Pre: true, Units: true, Lines: targets}}},
			Buttons: []bot.Button{{Action: bot.ActionConfirm, RequestID: "r", Label: "Confirm"}}}, wantFirst: "svc-0:"},
		{name: "a title longer than a header", reply: bot.Reply{Output: commands.Output{Title: strings.Repeat("t", 400)}}, wantFirst: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, blocks := blocksOf(t, tc.reply)
			checkLimits(t, blocks)
			if cut := strings.Contains(got, "Output cut:"); cut != tc.wantCut {
				t.Errorf("cut note present = %v, want %v", cut, tc.wantCut)
			}
			if !strings.Contains(got, tc.wantFirst) {
				t.Errorf("rendering lost the start of the output (%q)", tc.wantFirst)
			}
			if len(tc.reply.Buttons) > 0 && !strings.Contains(got, "actions: ") {
				t.Error("the buttons were cut")
			}
		})
	}
}

// checkLimits fails unless blocks respect Slack's limits.
func checkLimits(t testing.TB, blocks []slackgo.Block) {
	t.Helper()
	if len(blocks) > maxBlocks {
		t.Errorf("%d blocks, Slack takes at most %d", len(blocks), maxBlocks)
	}
	for i, b := range blocks {
		switch b := b.(type) {
		case *slackgo.HeaderBlock:
			if n := utf8.RuneCountInString(b.Text.Text); n > maxHeaderText || strings.TrimSpace(b.Text.Text) == "" {
				t.Errorf("block %d: header of %d characters", i, n)
			}
		case *slackgo.SectionBlock:
			if n := utf8.RuneCountInString(b.Text.Text); n > maxSectionText || strings.TrimSpace(b.Text.Text) == "" {
				t.Errorf("block %d: section text of %d characters", i, n)
			}
			if strings.Count(b.Text.Text, "```")%2 != 0 {
				t.Errorf("block %d: a code block is not closed: %.200q", i, b.Text.Text)
			}
		case *slackgo.ActionBlock:
			for _, e := range b.Elements.ElementSet {
				btn := e.(*slackgo.ButtonBlockElement)
				if n := utf8.RuneCountInString(btn.Text.Text); n > maxButtonText {
					t.Errorf("block %d: button label of %d characters", i, n)
				}
				if c := btn.Confirm; c != nil && (utf8.RuneCountInString(c.Title.Text) > maxConfirmTitle || utf8.RuneCountInString(c.Text.Text) > maxConfirmText || utf8.RuneCountInString(c.Confirm.Text) > maxConfirmButton) {
					t.Errorf("block %d: confirm dialog beyond Slack's limits: %+v", i, c)
				}
			}
		}
	}
}

// FuzzRender: whatever the bot says, the blocks stay within Slack's limits
// and the buttons survive.
func FuzzRender(f *testing.F) {
	f.Add("#abc import prod", "packit-worker: a → b", "  rolls: x", 3, 200, true)
	f.Add("", "<!channel> & ```", "", 1, 5000, false)
	f.Add(strings.Repeat("é", 200), strings.Repeat("&", 3000), " ", 60, 1, true)
	f.Add("", "`````", "```", 2, 40, true)
	f.Fuzz(func(t *testing.T, title, line, detail string, sections, repeat int, pre bool) {
		sections, repeat = 1+int(uint(sections)%60), 1+int(uint(repeat)%120)
		var out commands.Output
		out.Title = title
		for i := range sections {
			var lines []string
			for range repeat {
				lines = append(lines, line, detail)
			}
			out.Sections = append(out.Sections, commands.Section{Heading: detail + fmt.Sprint(i), Lines: lines, Pre: pre})
		}
		r := bot.Reply{Output: out, RequestID: "r1", Buttons: []bot.Button{{Action: bot.ActionDeny, RequestID: "r1", Label: line, Danger: true, Confirm: detail + line}}}
		blocks, text := Render(r)
		checkLimits(t, blocks)
		if _, ok := blocks[len(blocks)-1].(*slackgo.ActionBlock); !ok {
			t.Fatalf("last block is %T, want the buttons", blocks[len(blocks)-1])
		}
		if utf8.RuneCountInString(text) > maxFallbackText {
			t.Fatalf("fallback text of %d characters", utf8.RuneCountInString(text))
		}
	})
}
