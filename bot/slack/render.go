package slack

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	slackgo "github.com/slack-go/slack"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/commands"
)

// Slack's Block Kit limits (docs.slack.dev/reference/block-kit): a message
// holds at most 50 blocks, a section's text at most 3000 characters, a
// header 150, a button label 75, and a confirm dialog's title 100, text 300
// and button labels 30.
const (
	maxBlocks        = 50
	maxSectionText   = 3000
	maxHeaderText    = 150
	maxButtonText    = 75
	maxConfirmTitle  = 100
	maxConfirmText   = 300
	maxConfirmButton = 30
	// maxHeading bounds a section heading, which shares its block's text.
	maxHeading = 200
	// maxFallbackText bounds the top-level text, which Slack shows in
	// notifications and where blocks cannot be displayed.
	maxFallbackText = 3000
)

// Render turns a reply into Block Kit blocks and the plain-text fallback
// Slack shows in notifications. It stays within Slack's limits: long
// sections are split, and what does not fit in 50 blocks is cut with a note.
func Render(r bot.Reply) ([]slackgo.Block, string) {
	var head []slackgo.Block
	if strings.TrimSpace(r.Title) != "" {
		head = append(head, slackgo.NewHeaderBlock(plain(clipRunes(r.Title, maxHeaderText))))
	}
	var tail []slackgo.Block
	if len(r.Buttons) > 0 {
		tail = append(tail, actionsBlock(r.Buttons))
	}
	budget := maxBlocks - len(head) - len(tail)

	// A section per Plan target reads best; when that is too many blocks,
	// preformatted sections are packed densely instead, and only then cut.
	body := sectionTexts(r.Sections, true)
	if len(body) > budget {
		body = sectionTexts(r.Sections, false)
	}
	if len(body) > budget {
		shown := budget - 1
		note := fmt.Sprintf("_Output cut: %d of %d parts shown, Slack shows at most %d blocks in a message. Narrow the command to see the rest._", shown, len(body), maxBlocks)
		body = append(body[:shown:shown], note)
	}
	blocks := head
	for _, text := range body {
		blocks = append(blocks, slackgo.NewSectionBlock(mrkdwn(text), nil, nil))
	}
	blocks = append(blocks, tail...)
	return blocks, fallback(r.Output)
}

// sectionTexts renders each section as one or more mrkdwn texts of at most
// maxSectionText characters, one per block. With perUnit, a section of
// units whose lines carry indented detail lines (a Plan: target, then
// "  rolls: ...") gets a block per unit; any other section (help's table,
// whose long rows wrap onto indented lines) stays one code block.
func sectionTexts(sections []commands.Section, perUnit bool) []string {
	var out []string
	for _, s := range sections {
		heading := ""
		if s.Heading != "" {
			heading = "*" + clipEscaped(unfence(escape(strings.ReplaceAll(s.Heading, "\n", " "))), maxHeading) + "*\n"
		}
		if !s.Pre {
			var lines []string
			for _, l := range s.Lines {
				lines = append(lines, strings.Split(unfence(escape(l)), "\n")...)
			}
			out = append(out, pack(heading, "", "", lines)...)
			continue
		}
		units := [][]string{preLines(s.Lines)}
		if perUnit && s.Units {
			units = splitUnits(units[0])
		}
		for i, u := range units {
			h := heading
			if i > 0 {
				h = ""
			}
			out = append(out, pack(h, "```\n", "\n```", u)...)
		}
	}
	return out
}

// preLines escapes preformatted lines for a code block: mrkdwn entities,
// and a literal ``` that would end the block early.
func preLines(lines []string) []string {
	var out []string
	for _, l := range lines {
		out = append(out, strings.Split(unfence(escape(l)), "\n")...)
	}
	return out
}

// unfence breaks every run of three or more backticks with zero-width
// spaces so that no "```" is left: one would open or end a code block where
// the bot meant none (mrkdwn reads a fence anywhere in a line). Replacing
// "```" alone is not enough: five backticks would keep a fence.
func unfence(s string) string {
	if !strings.Contains(s, "```") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '`' {
			b.WriteByte(s[i])
			i++
			continue
		}
		n := 0
		for i+n < len(s) && s[i+n] == '`' {
			n++
		}
		for k := range n {
			// `, then pairs: "`\u200b``\u200b``" never holds three in a row.
			if n >= 3 && k%2 == 1 {
				b.WriteString("\u200b")
			}
			b.WriteByte('`')
		}
		i += n
	}
	return b.String()
}

// splitUnits groups lines into units: a line and the indented lines after
// it. A section of single-line units (a table) stays one unit.
func splitUnits(lines []string) [][]string {
	var units [][]string
	nested := false
	for _, l := range lines {
		if len(units) > 0 && l != "" && unicode.IsSpace(rune(l[0])) {
			units[len(units)-1] = append(units[len(units)-1], l)
			nested = true
			continue
		}
		units = append(units, []string{l})
	}
	if !nested || len(units) < 2 {
		return [][]string{lines}
	}
	return units
}

// pack joins lines into texts of at most maxSectionText characters, each
// wrapped in open/close (code fences) and the first led by heading; a line
// too long for any text is clipped.
func pack(heading, open, close string, lines []string) []string {
	var out []string
	var cur []string
	size := 0
	overhead := func() int {
		n := utf8.RuneCountInString(open) + utf8.RuneCountInString(close)
		if len(out) == 0 {
			n += utf8.RuneCountInString(heading)
		}
		return n
	}
	flush := func() {
		if len(cur) == 0 {
			return
		}
		body := strings.Join(cur, "\n")
		cur, size = nil, 0
		if strings.TrimSpace(body) == "" {
			return // Slack refuses a section with blank text
		}
		text := open + body + close
		if len(out) == 0 {
			text = heading + text
		}
		out = append(out, text)
	}
	for _, l := range lines {
		room := maxSectionText - overhead()
		n := utf8.RuneCountInString(l)
		if n > room {
			l = clipEscaped(l, room)
			n = utf8.RuneCountInString(l)
		}
		extra := n
		if len(cur) > 0 {
			extra++ // the joining newline
		}
		if size+extra > room {
			flush()
			extra = n
		}
		cur = append(cur, l)
		size += extra
	}
	flush()
	if len(out) == 0 && heading != "" {
		out = append(out, strings.TrimSuffix(heading, "\n"))
	}
	return out
}

// actionsBlock renders the buttons. action_id is the bot's action kind and
// value the request ID, nothing else: the Plan stays on the server. Slack
// refuses a block whose action_ids repeat (invalid_blocks), so a kind's
// second button in the block (a feed message's Undo of a second service)
// has ":N" after it, which decoding drops.
func actionsBlock(buttons []bot.Button) *slackgo.ActionBlock {
	var elems []slackgo.BlockElement
	seen := map[bot.ActionKind]int{}
	for _, b := range buttons {
		id := string(b.Action)
		if n := seen[b.Action]; n > 0 {
			id += ":" + strconv.Itoa(n)
		}
		seen[b.Action]++
		btn := slackgo.NewButtonBlockElement(id, b.RequestID, plain(clipRunes(b.Label, maxButtonText)))
		switch {
		case b.Danger:
			btn = btn.WithStyle(slackgo.StyleDanger)
		case b.Action == bot.ActionConfirm || b.Action == bot.ActionApprove:
			btn = btn.WithStyle(slackgo.StylePrimary)
		}
		if b.Confirm != "" {
			dialog := slackgo.NewConfirmationBlockObject(
				plain(clipRunes(b.Label+"?", maxConfirmTitle)),
				mrkdwn(clipEscaped(escape(b.Confirm), maxConfirmText)),
				plain(clipRunes(b.Label, maxConfirmButton)),
				plain("Back"),
			)
			if b.Danger {
				dialog = dialog.WithStyle(slackgo.StyleDanger)
			}
			btn = btn.WithConfirm(dialog)
		}
		elems = append(elems, btn)
	}
	return slackgo.NewActionBlock("deploybot-actions", elems...)
}

// fallback is the reply as plain text: the title, or the first line.
func fallback(o commands.Output) string {
	text := o.Title
	if text == "" {
		for _, s := range o.Sections {
			if len(s.Lines) > 0 {
				text = s.Lines[0]
				break
			}
		}
	}
	if text == "" {
		text = "deploybot"
	}
	return clipEscaped(escape(text), maxFallbackText)
}

// escape makes text safe as mrkdwn: Slack reads &, < and > as entities and
// links (<@U123>, <!channel>), so user-provided words must not carry them.
func escape(s string) string {
	if !strings.ContainsAny(s, "&<>") {
		return s
	}
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// clipRunes cuts s to at most n characters, marking the cut with "…".
func clipRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// clipEscaped is clipRunes for escaped mrkdwn: it does not leave half an
// entity ("&am…") behind.
func clipEscaped(s string, n int) string {
	c := clipRunes(s, n)
	if c == s {
		return c
	}
	c = strings.TrimSuffix(c, "…")
	if i := strings.LastIndexByte(c, '&'); i >= 0 && !strings.Contains(c[i:], ";") {
		c = c[:i]
	}
	return c + "…"
}

func plain(s string) *slackgo.TextBlockObject {
	return slackgo.NewTextBlockObject(slackgo.PlainTextType, s, false, false)
}

func mrkdwn(s string) *slackgo.TextBlockObject {
	return slackgo.NewTextBlockObject(slackgo.MarkdownType, s, false, false)
}
