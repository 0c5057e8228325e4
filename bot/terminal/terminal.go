// Package terminal is deploybot's terminal chat: one command per line, as the
// user given by --user or, for a line starting with "@NAME ", as NAME, so one
// person can play requester and approver. Interactive terminals get a line
// editor; piped input is read to its end, and the chat returns once the work
// it started has settled.
package terminal

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/commands"
	"github.com/deploybot/deploybot/store"
)

// Name is the platform name terminal identities are mapped under.
const Name = "terminal"

// Channel is the one channel of the terminal chat.
const Channel = "terminal"

// Handler is what the terminal hands each line to; *bot.Bot implements it.
type Handler interface {
	Handle(ctx context.Context, req bot.Request, resp bot.Responder) error
	Wait()
}

// Chat is the terminal platform.
type Chat struct {
	out  io.Writer
	user string

	mu      sync.Mutex
	printed map[string]map[string]bool // request message ID → lines already shown
}

// New returns a terminal chat writing to out, acting as user by default.
func New(out io.Writer, user string) *Chat {
	return &Chat{out: out, user: user, printed: map[string]map[string]bool{}}
}

// Name implements bot.Platform.
func (c *Chat) Name() string { return Name }

// Post prints a request message in full.
func (c *Chat) Post(_ context.Context, channel string, r bot.Reply) (store.MessageRef, error) {
	ref := store.MessageRef{Platform: Name, Channel: channel, ID: r.RequestID}
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[string]bool{}
	c.printed[ref.ID] = seen
	lines := Render(r.Output)
	for _, l := range lines {
		seen[l] = true
	}
	return ref, c.write(lines)
}

// Update prints only what changed since the message was last shown: a
// terminal cannot redraw a message in place, so progress reads as a log.
func (c *Chat) Update(_ context.Context, ref store.MessageRef, r bot.Reply) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := c.printed[ref.ID]
	if seen == nil {
		seen = map[string]bool{}
		c.printed[ref.ID] = seen
	}
	var fresh []string
	for _, l := range Render(r.Output) {
		if seen[l] || strings.TrimSpace(l) == "" {
			continue
		}
		seen[l] = true
		if !strings.HasPrefix(l, "#") {
			l = "#" + ref.ID + " " + strings.TrimSpace(l)
		}
		fresh = append(fresh, l)
	}
	return c.write(fresh)
}

// Respond implements bot.Responder for the line being handled.
func (c *Chat) Respond(_ context.Context, r bot.Reply) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.write(Render(r.Output))
}

func (c *Chat) write(lines []string) error {
	if len(lines) == 0 {
		return nil
	}
	_, err := io.WriteString(c.out, strings.Join(lines, "\n")+"\n")
	return err
}

// Render turns reply content into terminal lines.
func Render(o commands.Output) []string {
	var lines []string
	if o.Title != "" {
		lines = append(lines, o.Title)
	}
	for _, s := range o.Sections {
		indent := ""
		if o.Title != "" {
			indent = "  "
		}
		if s.Heading != "" {
			lines = append(lines, indent+s.Heading+":")
			indent += "  "
		}
		for _, l := range s.Lines {
			for _, part := range strings.Split(l, "\n") {
				lines = append(lines, indent+part)
			}
		}
	}
	return lines
}

// request builds the bot request for one input line; "@NAME rest" runs rest as NAME.
func (c *Chat) request(line string) (bot.Request, bool) {
	line = strings.TrimSpace(line)
	user := c.user
	if strings.HasPrefix(line, "@") {
		name, rest, _ := strings.Cut(line[1:], " ")
		if name == "" {
			return bot.Request{}, false
		}
		user, line = name, strings.TrimSpace(rest)
	}
	if line == "" || strings.HasPrefix(line, "//") {
		return bot.Request{}, false
	}
	return bot.Request{Platform: Name, User: bot.ChatUser{ID: user, Name: user}, Channel: Channel, Text: line}, true
}

// RunLines handles one command per line of in until its end, echoing each
// line as "user> line" so a piped session reads like a transcript, then
// waits for the work it started (executions, rollouts) to settle.
func (c *Chat) RunLines(ctx context.Context, h Handler, in io.Reader) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64*1024), 64*1024)
	for sc.Scan() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		line := sc.Text()
		req, ok := c.request(line)
		if !ok {
			continue
		}
		c.mu.Lock()
		err := c.write([]string{"", req.User.ID + "> " + req.Text})
		c.mu.Unlock()
		if err != nil {
			return fmt.Errorf("writing to the terminal: %w", err)
		}
		if err := h.Handle(ctx, req, c); err != nil {
			return fmt.Errorf("handling %q: %w", line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading commands: %w", err)
	}
	h.Wait()
	return nil
}
