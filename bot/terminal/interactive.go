package terminal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
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

	t := term.NewTerminal(tty, c.user+"> ")
	c.mu.Lock()
	c.out = t
	c.mu.Unlock()
	fmt.Fprintln(t, "deploybot terminal chat. Type `help`, `@NAME command` to act as NAME, Ctrl-D to quit.")
	for {
		if ctx.Err() != nil {
			return nil
		}
		line, err := t.ReadLine()
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
		if err := h.Handle(ctx, req, c); err != nil {
			fmt.Fprintf(t, "error: %v\n", err)
		}
	}
}

// IsTerminal reports whether f is an interactive terminal.
func IsTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
