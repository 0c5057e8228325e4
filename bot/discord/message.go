package discord

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"

	"github.com/deploybot/deploybot/bot"
)

// onMessage handles a gateway MESSAGE_CREATE: a command for the bot becomes
// a request, answered in the channel as a reply to the message.
func (a *Adapter) onMessage(_ *discordgo.Session, m *discordgo.MessageCreate) {
	if m == nil {
		return
	}
	req, ok := a.messageRequest(m.Message)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.handleTimeout)
	defer cancel()
	if err := a.h.Handle(ctx, req, &channelResponder{a: a, m: m.Message}); err != nil {
		a.log.Error("answering a Discord message", "channel", m.ChannelID, "message", m.ID, "err", err)
	}
}

// messageRequest decides whether a message is a command for the bot and
// turns it into a request. Bots (itself included), webhooks, direct messages
// and messages outside the configured guilds and channels are not.
func (a *Adapter) messageRequest(m *discordgo.Message) (bot.Request, bool) {
	if m == nil || m.Author == nil || m.Author.ID == "" || m.Author.Bot || m.WebhookID != "" {
		return bot.Request{}, false
	}
	self := a.selfID()
	if m.Author.ID == self || m.GuildID == "" || !a.guildAllowed(m.GuildID) {
		return bot.Request{}, false
	}
	if len(a.channels) > 0 && !slices.Contains(a.channels, m.ChannelID) {
		return bot.Request{}, false
	}
	text, ok := commandText(m.Content, a.prefix, self)
	if !ok {
		return bot.Request{}, false
	}
	return bot.Request{
		Platform:  Name,
		User:      chatUser(m.GuildID, m.Author, m.Member),
		Channel:   m.ChannelID,
		Text:      strings.TrimSpace(plainText(text, nil)),
		DedupeKey: "message/" + m.ID,
	}, true
}

// commandText returns the command of a message that starts with prefix or
// with a mention of the bot; the prefix or mention alone asks for help.
func commandText(content, prefix, botID string) (string, bool) {
	s := strings.TrimSpace(content)
	var rest string
	var ok bool
	if botID != "" {
		for _, mention := range []string{"<@" + botID + ">", "<@!" + botID + ">"} {
			if rest, ok = strings.CutPrefix(s, mention); ok {
				break
			}
		}
	}
	if !ok && prefix != "" && len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		rest = s[len(prefix):]
		// "!deployment" is not "!deploy ment".
		r, _ := utf8.DecodeRuneInString(rest)
		ok = rest == "" || unicode.IsSpace(r)
	}
	if !ok {
		return "", false
	}
	rest = strings.TrimSpace(rest)
	if rest == "" {
		rest = "help"
	}
	return rest, true
}

// chatUser is the sender as identities name them: "GUILD/USER" (a bare
// user ID mapping matches too), with the member's role IDs as groups.
func chatUser(guildID string, u *discordgo.User, m *discordgo.Member) bot.ChatUser {
	if u == nil && m != nil {
		u = m.User
	}
	if u == nil {
		return bot.ChatUser{}
	}
	c := bot.ChatUser{ID: u.ID, Name: u.Username}
	if guildID != "" {
		c.ID = guildID + "/" + u.ID
	}
	if u.GlobalName != "" {
		c.Name = u.GlobalName
	}
	if m != nil {
		if m.Nick != "" {
			c.Name = m.Nick
		}
		c.Groups = slices.Clone(m.Roles)
	}
	if c.Name == "" {
		c.Name = u.ID
	}
	return c
}

// channelResponder answers a message command in its channel, as a reply to
// it. A channel has no private replies; they are shown like the others.
type channelResponder struct {
	a *Adapter
	m *discordgo.Message
}

func (c *channelResponder) Respond(ctx context.Context, r bot.Reply) error {
	for i, msg := range renderReply(r) {
		send := msg.send()
		if i == 0 {
			no := false
			send.Reference = &discordgo.MessageReference{MessageID: c.m.ID, ChannelID: c.m.ChannelID, GuildID: c.m.GuildID, FailIfNotExists: &no}
		}
		if _, err := c.a.session.ChannelMessageSendComplex(c.m.ChannelID, send, discordgo.WithContext(ctx)); err != nil {
			return fmt.Errorf("answering in channel %s: %w", c.m.ChannelID, err)
		}
	}
	return nil
}
