package terminal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/commands"
)

// RunInteractive runs the chat on a terminal with a line editor (history,
// arrow keys) whose prompt survives progress lines printed in the background.
func (c *Chat) RunInteractive(ctx context.Context, h Handler, tty *os.File) error {
	fd := int(tty.Fd())
	old, err := term.MakeRaw(fd)
	if err != nil {
		return fmt.Errorf("putting the terminal into raw mode: %w", err)
	}
	defer func() { _ = term.Restore(fd, old) }()
	return c.runTerminal(ctx, h, tty)
}

// editorLimit is x/term's line limit (maxLineLength, unexported): keys
// typed beyond it are dropped without a word, so a line of exactly that many
// characters may have been cut and is not run. (Pasted text, which x/term
// takes whole, may be longer; it is answered like a long piped line.)
const editorLimit = 4096

// runTerminal is RunInteractive on a terminal already in raw mode (so the
// kernel's canonical-mode line limit does not apply).
func (c *Chat) runTerminal(ctx context.Context, h Handler, tty io.ReadWriter) error {
	t := term.NewTerminal(tty, c.user+"> ")
	// With bracketed paste the terminal marks pasted text, and x/term takes
	// it whole rather than cutting it at editorLimit; each pasted line comes
	// with ErrPasteIndicator.
	t.SetBracketedPasteMode(true)
	defer t.SetBracketedPasteMode(false)
	c.mu.Lock()
	c.out = t
	c.mu.Unlock()
	fmt.Fprintln(t, "deploybot terminal chat. Type `help`, `@NAME command` to act as NAME, Ctrl-D to quit.")
	for {
		if ctx.Err() != nil {
			return nil
		}
		line, err := t.ReadLine()
		if errors.Is(err, term.ErrPasteIndicator) {
			err = nil // a line of a bracketed paste: whole, like a typed one
		}
		if errors.Is(err, io.EOF) {
			fmt.Fprintln(t, "waiting for running work to settle...")
			h.Wait()
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading a command: %w", err)
		}
		if s := strings.TrimSpace(line); s == "quit" || s == "exit" {
			h.Wait()
			return nil
		}
		req, ok := c.request(line)
		if !ok {
			continue
		}
		if utf8.RuneCountInString(line) == editorLimit {
			if err := c.Respond(ctx, bot.Reply{Output: commands.Output{Sections: []commands.Section{{Lines: []string{
				fmt.Sprintf("That line reached the terminal's limit of %s characters; what came after was dropped, so it was not run.", thousands(editorLimit)),
			}}}}}); err != nil {
				return fmt.Errorf("writing to the terminal: %w", err)
			}
			continue
		}
		if err := c.handle(ctx, h, req, len(line)); err != nil {
			fmt.Fprintf(t, "error: %v\n", err)
		}
	}
}

// IsTerminal reports whether f is an interactive terminal.
func IsTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
