package schedule

import (
	"fmt"
	"strings"
	"time"

	"github.com/deploybot/deploybot/commands"
	"github.com/deploybot/deploybot/config"
)

// fmtTime shows t in env's time zone.
func fmtTime(env *config.Environment, t time.Time) string {
	loc, err := env.Location()
	if err != nil {
		loc = time.UTC
	}
	return t.In(loc).Format("Mon 2006-01-02 15:04 MST")
}

// text is an Output of one section of lines under title.
func text(title string, lines ...string) commands.Output {
	return commands.Output{Title: title, Sections: []commands.Section{{Lines: lines}}}
}

func outputLines(o commands.Output) []string {
	var out []string
	for _, s := range o.Sections {
		out = append(out, s.Lines...)
	}
	return out
}

func approvalsText(n int) string {
	if n == 1 {
		return "one approval"
	}
	return fmt.Sprintf("%d approvals", n)
}

// humanDuration writes d in whole minutes: "30m", "2h", "1h30m".
func humanDuration(d time.Duration) string {
	d = d.Round(time.Minute)
	h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
	switch {
	case h == 0:
		return fmt.Sprintf("%dm", m)
	case m == 0:
		return fmt.Sprintf("%dh", h)
	}
	return fmt.Sprintf("%dh%dm", h, m)
}

func joinAnd(items []string) string {
	if len(items) <= 1 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
