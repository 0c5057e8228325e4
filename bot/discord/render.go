package discord

import (
	"fmt"
	"strings"
	"unicode/utf16"

	"github.com/bwmarrin/discordgo"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/commands"
)

// Discord's message limits (https://discord.com/developers/docs/resources/message).
const (
	maxContent          = 2000
	maxEmbedTitle       = 256
	maxEmbedDescription = 4096
	// maxEmbedsTotal bounds the characters of all embeds of one message.
	maxEmbedsTotal  = 6000
	maxEmbeds       = 10
	maxButtonLabel  = 80
	maxButtonsInRow = 5
	maxRows         = 5
	// maxPiece is how long one piece of a section may be: three fit in a
	// message next to a full title, two in an embed, so long tables fill
	// messages instead of leaving most of each empty.
	maxPiece = (maxEmbedsTotal - maxEmbedTitle - 2*len("\n\n")) / 3
	// maxReplyMessages bounds how many messages one long reply is split into;
	// anything beyond is cut with a note.
	maxReplyMessages = 5
)

// embedColor is Discord's blurple, so deploybot's messages look like one app.
const embedColor = 0x5865F2

// message is one Discord message's worth of a reply.
type message struct {
	Content    string
	Embeds     []*discordgo.MessageEmbed
	Components []discordgo.MessageComponent
}

// textLen counts like Discord does: UTF-16 code units, so an emoji counts
// twice and a limit is never overshot.
func textLen(s string) int {
	n := 0
	for _, r := range s {
		n += max(utf16.RuneLen(r), 1)
	}
	return n
}

// clip cuts s to at most n (textLen) with an ellipsis.
func clip(s string, n int) string {
	if textLen(s) <= n {
		return s
	}
	var b strings.Builder
	used := 0
	for _, r := range s {
		w := max(utf16.RuneLen(r), 1)
		if used+w > n-1 {
			break
		}
		b.WriteRune(r)
		used += w
	}
	return b.String() + "…"
}

// fence is the Markdown code block delimiter; a line containing it would
// open or end a block where the bot did not mean one, so it is broken up
// with zero-width spaces.
const fence = "```"

// unfence breaks every run of three or more backticks with zero-width
// spaces between them. Replacing "```" alone is not enough: five backticks
// would keep a fence after the replacement.
func unfence(line string) string {
	if !strings.Contains(line, fence) {
		return line
	}
	var b strings.Builder
	for i := 0; i < len(line); {
		if line[i] != '`' {
			b.WriteByte(line[i])
			i++
			continue
		}
		n := 0
		for i+n < len(line) && line[i+n] == '`' {
			n++
		}
		for k := range n {
			if n >= len(fence) && k > 0 {
				b.WriteString("\u200b")
			}
			b.WriteByte('`')
		}
		i += n
	}
	return b.String()
}

// chunks renders one section as Markdown pieces of at most limit characters
// each, cut between lines; a Pre section becomes code blocks, each piece
// fenced on its own. A line longer than a piece is clipped.
func chunks(s commands.Section, limit int) []string {
	var lines []string
	for _, l := range s.Lines {
		lines = append(lines, strings.Split(l, "\n")...)
	}
	head := ""
	if s.Heading != "" {
		head = "**" + clip(unfence(strings.ReplaceAll(s.Heading, "\n", " ")), 200) + "**\n"
	}
	open, closing := "", ""
	if s.Pre {
		open, closing = fence+"\n", "\n"+fence
	}
	var out []string
	var cur []string
	curLen := 0
	overhead := func() int { return textLen(open) + textLen(closing) + textLen(head) }
	flush := func() {
		if len(cur) == 0 {
			return
		}
		out = append(out, head+open+strings.Join(cur, "\n")+closing)
		head, cur, curLen = "", nil, 0
	}
	for _, l := range lines {
		l = unfence(l)
		room := limit - overhead()
		if textLen(l) > room {
			l = clip(l, room)
		}
		add := textLen(l)
		if len(cur) > 0 {
			add++ // the newline
		}
		if curLen+add > room {
			flush() // l fits the next piece: it was clipped to a room at most as small
			add = textLen(l)
		}
		cur = append(cur, l)
		curLen += add
	}
	flush()
	if len(out) == 0 && head != "" {
		out = append(out, strings.TrimSuffix(head, "\n"))
	}
	return out
}

// renderOutput turns reply content into messages within Discord's limits: a
// titled embed of sections, more embeds and more messages as the text needs,
// at most maxMessages; what does not fit is cut with a note saying so.
func renderOutput(o commands.Output, maxMessages int) []message {
	var pieces []string
	for _, s := range o.Sections {
		pieces = append(pieces, chunks(s, maxPiece)...)
	}
	title := clip(o.Title, maxEmbedTitle)

	var msgs []message
	var embed *discordgo.MessageEmbed
	total := 0 // characters of the current message's embeds
	newMessage := func() {
		msgs = append(msgs, message{})
		embed, total = nil, 0
	}
	newEmbed := func(t string) {
		embed = &discordgo.MessageEmbed{Title: t, Color: embedColor}
		m := &msgs[len(msgs)-1]
		m.Embeds = append(m.Embeds, embed)
		total += textLen(t)
	}
	newMessage()
	newEmbed(title)
	for _, p := range pieces {
		sep := ""
		if embed.Description != "" {
			sep = "\n\n"
		}
		n := textLen(sep) + textLen(p)
		switch {
		case textLen(embed.Description)+n <= maxEmbedDescription && total+n <= maxEmbedsTotal:
		case len(msgs[len(msgs)-1].Embeds) < maxEmbeds && total+textLen(p) <= maxEmbedsTotal:
			newEmbed("")
			sep, n = "", textLen(p)
		default:
			newMessage()
			newEmbed("")
			sep, n = "", textLen(p)
		}
		embed.Description += sep + p
		total += n
	}
	if len(msgs) > maxMessages {
		cut := 0
		for _, m := range msgs[maxMessages:] {
			for _, e := range m.Embeds {
				cut += strings.Count(e.Description, "\n") + 1
			}
		}
		msgs = msgs[:maxMessages]
		addNote(&msgs[maxMessages-1], fmt.Sprintf("… %d more lines are not shown: the reply is longer than Discord allows.", cut))
	}
	// Discord refuses an embed with neither title nor text.
	for i := range msgs {
		if e := msgs[i].Embeds; len(e) == 1 && e[0].Title == "" && e[0].Description == "" {
			msgs[i].Embeds, msgs[i].Content = nil, "(nothing to show)"
		}
	}
	return msgs
}

// addNote appends note to the last embed of m, dropping trailing pieces of
// text until it fits.
func addNote(m *message, note string) {
	e := m.Embeds[len(m.Embeds)-1]
	total := 0
	for _, x := range m.Embeds {
		total += textLen(x.Title) + textLen(x.Description)
	}
	for textLen(e.Description)+2+textLen(note) > maxEmbedDescription || total+2+textLen(note) > maxEmbedsTotal {
		i := lastPieceBreak(e.Description)
		if i < 0 {
			total -= textLen(e.Description)
			e.Description = ""
			break
		}
		total -= textLen(e.Description[i:])
		e.Description = e.Description[:i]
	}
	if e.Description != "" {
		e.Description += "\n\n"
	}
	e.Description += "*" + note + "*"
}

// lastPieceBreak is the index of the last "\n\n" between two pieces of an
// embed's text, or -1. A blank line inside a code block is not a break:
// cutting there would leave the block open.
func lastPieceBreak(desc string) int {
	end := len(desc)
	for {
		i := strings.LastIndex(desc[:end], "\n\n")
		if i < 0 || strings.Count(desc[:i], fence)%2 == 0 {
			return i
		}
		end = i
	}
}

// renderRequest is a request message: one message (it is edited in place),
// its buttons, cut with a note when the Plan is longer than one message.
func renderRequest(r bot.Reply) message {
	m := renderOutput(r.Output, 1)[0]
	m.Components = components(r.Buttons)
	return m
}

// renderReply is an answer to a command: as many messages as it needs.
func renderReply(r bot.Reply) []message {
	msgs := renderOutput(r.Output, maxReplyMessages)
	if len(r.Buttons) > 0 {
		msgs[0].Components = components(r.Buttons)
	}
	return msgs
}

// components lays buttons out in rows of five. The result is never nil, so an
// edit that shows no buttons removes the old ones.
func components(buttons []bot.Button) []discordgo.MessageComponent {
	out := []discordgo.MessageComponent{}
	var row discordgo.ActionsRow
	for _, b := range buttons {
		if len(out) == maxRows {
			break
		}
		row.Components = append(row.Components, discordgo.Button{
			Label:    clip(b.Label, maxButtonLabel),
			Style:    buttonStyle(b),
			CustomID: customID(b.Action, b.RequestID, b.Confirm != ""),
		})
		if len(row.Components) == maxButtonsInRow {
			out = append(out, row)
			row = discordgo.ActionsRow{}
		}
	}
	if len(row.Components) > 0 && len(out) < maxRows {
		out = append(out, row)
	}
	return out
}

func buttonStyle(b bot.Button) discordgo.ButtonStyle {
	switch {
	case b.Danger:
		return discordgo.DangerButton
	case b.Action == bot.ActionApprove:
		return discordgo.SuccessButton
	case b.Action == bot.ActionConfirm:
		return discordgo.PrimaryButton
	}
	return discordgo.SecondaryButton
}

// noMentions keeps text echoed from users ("@everyone") from pinging anyone.
func noMentions() *discordgo.MessageAllowedMentions {
	return &discordgo.MessageAllowedMentions{Parse: []discordgo.AllowedMentionType{}}
}

func (m message) send() *discordgo.MessageSend {
	return &discordgo.MessageSend{Content: m.Content, Embeds: m.Embeds, Components: m.Components, AllowedMentions: noMentions()}
}

func (m message) channelEdit(channel, id string) *discordgo.MessageEdit {
	e := discordgo.NewMessageEdit(channel, id)
	embeds, comps, content := m.Embeds, m.Components, m.Content
	e.Embeds, e.Components, e.Content = &embeds, &comps, &content
	e.AllowedMentions = noMentions()
	return e
}

func (m message) webhookEdit() *discordgo.WebhookEdit {
	embeds, comps, content := m.Embeds, m.Components, m.Content
	return &discordgo.WebhookEdit{Content: &content, Embeds: &embeds, Components: &comps, AllowedMentions: noMentions()}
}

func (m message) followup(ephemeral bool) *discordgo.WebhookParams {
	p := &discordgo.WebhookParams{Content: m.Content, Embeds: m.Embeds, Components: m.Components, AllowedMentions: noMentions()}
	if ephemeral {
		p.Flags = discordgo.MessageFlagsEphemeral
	}
	return p
}

// response is an interaction response of type t carrying m.
func (m message) response(t discordgo.InteractionResponseType, ephemeral bool) *discordgo.InteractionResponse {
	comps := m.Components
	if comps == nil {
		comps = []discordgo.MessageComponent{}
	}
	embeds := m.Embeds
	if embeds == nil {
		embeds = []*discordgo.MessageEmbed{}
	}
	d := &discordgo.InteractionResponseData{Content: m.Content, Embeds: embeds, Components: comps, AllowedMentions: noMentions()}
	if ephemeral {
		d.Flags = discordgo.MessageFlagsEphemeral
	}
	return &discordgo.InteractionResponse{Type: t, Data: d}
}

// text is a message of plain content, clipped to Discord's limit.
func text(s string) message {
	return message{Content: clip(s, maxContent), Components: []discordgo.MessageComponent{}}
}

// merge puts several replies' messages into as few messages as the limits
// allow, for the one response an interaction gets when nothing can follow it.
func merge(msgs []message) message {
	if len(msgs) == 0 {
		return message{}
	}
	out := msgs[0]
	total := 0
	for _, e := range out.Embeds {
		total += textLen(e.Title) + textLen(e.Description)
	}
	for _, m := range msgs[1:] {
		for _, e := range m.Embeds {
			n := textLen(e.Title) + textLen(e.Description)
			if len(out.Embeds) == maxEmbeds || total+n > maxEmbedsTotal {
				addNote(&out, "More was said than fits one Discord message; the rest is not shown.")
				return out
			}
			out.Embeds = append(out.Embeds, e)
			total += n
		}
		if len(out.Components) == 0 {
			out.Components = m.Components
		}
	}
	return out
}
