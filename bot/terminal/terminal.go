// Package terminal is deploybot's terminal chat: one command per line, as the
// user given by --user or, for a line starting with "@NAME ", as NAME, so one
// person can play requester and approver. Interactive terminals get a line
// editor; piped input is read to its end, and the chat returns once the work
// it started has settled.
package terminal

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

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

// write prints lines, each made safe for a terminal first: replies echo
// what users typed and cluster state others wrote.
func (c *Chat) write(lines []string) error {
	if len(lines) == 0 {
		return nil
	}
	safe := make([]string, len(lines))
	for i, l := range lines {
		safe[i] = printable(l)
	}
	_, err := io.WriteString(c.out, strings.Join(safe, "\n")+"\n")
	return err
}

// printable neutralises what a terminal would act on rather than show:
// control characters (ESC starts colour, cursor and title sequences; BEL,
// backspace, carriage return rewrite the line), C1 controls, bidirectional
// overrides that reorder what is shown, and invalid UTF-8. Each is written
// as a Go escape (\x1b, \u202e), so it is visible and harmless. Tabs stay.
func printable(s string) string {
	clean := true
	for _, r := range s {
		if needsEscape(r) {
			clean = false
			break
		}
	}
	if clean && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x80 && needsEscape(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case needsEscape(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
		i += size
	}
	return b.String()
}

func needsEscape(r rune) bool {
	switch {
	case r == '\t':
		return false
	case r < 0x20, r == 0x7f, 0x80 <= r && r <= 0x9f:
		return true
	case 0x202a <= r && r <= 0x202e, 0x2066 <= r && r <= 0x2069, r == 0x200e, r == 0x200f:
		return true
	}
	return false
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
// waits for the work it started (executions, rollouts) to settle. A line
// longer than a command may be is answered and skipped, however long it
// is; the lines after it are read as usual.
func (c *Chat) RunLines(ctx context.Context, h Handler, in io.Reader) error {
	r := bufio.NewReaderSize(in, readBuffer)
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		line, size, readErr := readLine(r)
		if readErr != nil && !errors.Is(readErr, io.EOF) {
			return fmt.Errorf("reading commands: %w", readErr)
		}
		if req, ok := c.request(line); ok {
			echo := req.Text
			if size > commands.MaxInput {
				echo = clipEcho(req.Text)
			}
			c.mu.Lock()
			err := c.write([]string{"", req.User.ID + "> " + echo})
			c.mu.Unlock()
			if err != nil {
				return fmt.Errorf("writing to the terminal: %w", err)
			}
			if err := c.handle(ctx, h, req, size); err != nil {
				return fmt.Errorf("handling %q: %w", clipEcho(line), err)
			}
		}
		if readErr != nil {
			break
		}
	}
	h.Wait()
	return nil
}

// readBuffer is how much of a piped line is held; a longer line is counted
// to its end and only its start kept, for the echo.
const readBuffer = 64 * 1024

// readLine reads one line without its line end ("\n" or "\r\n"). size is
// the line's length in bytes; line is all of it, or only its start when it
// is longer than the buffer. err is io.EOF after the last line.
func readLine(r *bufio.Reader) (line string, size int, err error) {
	chunk, err := r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		start := string(chunk[:min(len(chunk), 256)])
		size = len(chunk)
		for errors.Is(err, bufio.ErrBufferFull) {
			chunk, err = r.ReadSlice('\n')
			size += len(chunk)
		}
		if bytes.HasSuffix(chunk, []byte("\n")) {
			size--
		}
		return start, size, err
	}
	text := strings.TrimSuffix(strings.TrimSuffix(string(chunk), "\n"), "\r")
	return text, len(text), err
}

// handle hands a request to the bot, unless its line (size bytes) is longer
// than any command: then it says so, and nothing is run.
func (c *Chat) handle(ctx context.Context, h Handler, req bot.Request, size int) error {
	if size > commands.MaxInput {
		return c.Respond(ctx, bot.Reply{Output: commands.Output{Sections: []commands.Section{{Lines: []string{tooLong(size)}}}}})
	}
	return h.Handle(ctx, req, c)
}

// tooLong is the answer to a line of size bytes that is no command.
func tooLong(size int) string {
	return fmt.Sprintf("That line is %d KiB (%s bytes); a command is at most %d KiB (%s bytes). It was not run.",
		(size+1023)/1024, thousands(size), commands.MaxInput/1024, thousands(commands.MaxInput))
}

// thousands writes n with commas: 71,680.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// clipEcho is the start of an over-long line, for echoing it.
func clipEcho(s string) string {
	const n = 80
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
