package commands

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/shlex"
	"github.com/spf13/pflag"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/plan"
)

// maxInput bounds a message; commands are short, anything longer is a paste
// gone wrong and is answered rather than tokenised.
const maxInput = 4096

// prefixes address the bot: Slack and Discord slash commands, a Discord
// message, the terminal. A bare command is accepted too.
var prefixes = []string{"/deploy", "!deploy", "deploy"}

// Parse turns a chat message into a Command, a reply (help, usage, or what
// was wrong), or Ignore for an empty message. It reads only the config, never
// a cluster, and never panics.
func Parse(cfg *config.Config, in Input) Result {
	if cfg == nil {
		cfg = &config.Config{}
	}
	text := strings.TrimSpace(in.Text)
	if text == "" {
		return Result{Kind: Ignore}
	}
	if len(text) > maxInput {
		return replyLines(fmt.Sprintf("That message is %d bytes long; a command is at most %d. `help` lists the commands.", len(text), maxInput))
	}
	text = stripPrefix(text)
	words, err := split(text)
	if err != nil {
		return replyLines(err.Error())
	}
	if len(words) == 0 || words[0] == "" {
		// Only the prefix (or an empty quoted word): the user is asking what we do.
		return Result{Kind: ReplyKind, Reply: helpOverview(cfg)}
	}
	spec, ok := Lookup(words[0])
	if !ok {
		return replyLines(fmt.Sprintf("Unknown command %q.%s `help` lists the commands.", clip(words[0]), didYouMean(words[0], commandNames())))
	}
	fs := spec.newFlagSet()
	if err := fs.Parse(normalizeDashes(words[1:])); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return Result{Kind: ReplyKind, Reply: helpFor(cfg, spec)}
		}
		return usageReply(spec, flagProblem(err, fs))
	}
	now := in.Now
	if now.IsZero() {
		now = time.Now()
	}
	p := &parser{cfg: cfg, channelEnv: in.ChannelEnv, now: now}
	c := plan.Command{Name: spec.Name, Text: text}
	if spec.Mutates {
		c.DryRun, _ = fs.GetBool("dry-run")
	}
	if spec.parse != nil {
		if err := spec.parse(p, fs, &c); err != nil {
			return usageReply(spec, err.Error())
		}
	} else if fs.NArg() > 0 {
		return usageReply(spec, fmt.Sprintf("%s takes no arguments, got %q.", spec.Name, clip(strings.Join(fs.Args(), " "))))
	}
	return Result{Kind: RunKind, Command: c}
}

// stripPrefix removes one leading /deploy, !deploy or deploy word.
func stripPrefix(text string) string {
	first, rest := text, ""
	if i := strings.IndexFunc(text, unicode.IsSpace); i >= 0 {
		first, rest = text[:i], text[i:]
	}
	for _, p := range prefixes {
		if strings.EqualFold(first, p) {
			return strings.TrimSpace(rest)
		}
	}
	return text
}

// split tokenises like a shell (shlex). A '#' is a comment to shlex, but in
// chat it starts a request ID (approve #abc123), so unquoted ones are escaped
// first.
func split(text string) ([]string, error) {
	words, err := shlex.Split(escapeHashes(text))
	if err != nil {
		if strings.Contains(err.Error(), "escape") {
			return nil, userErrorf("A trailing backslash in: %s", clip(text))
		}
		return nil, userErrorf("Unbalanced quotes in: %s", clip(text))
	}
	return words, nil
}

// escapeHashes puts a backslash before every '#' outside quotes, following
// shlex's quoting rules (backslash escapes outside quotes and inside double
// quotes; nothing inside single quotes).
func escapeHashes(s string) string {
	if !strings.Contains(s, "#") {
		return s
	}
	var b strings.Builder
	const (
		outside = iota
		single
		double
	)
	state, escaped := outside, false
	for _, r := range s {
		switch {
		case escaped:
			escaped = false
		case state == outside && r == '#':
			b.WriteRune('\\')
		case state == outside && r == '\\', state == double && r == '\\':
			escaped = true
		case state == outside && r == '\'':
			state = single
		case state == outside && r == '"':
			state = double
		case state == single && r == '\'', state == double && r == '"':
			state = outside
		}
		b.WriteRune(r)
	}
	return b.String()
}

// normalizeDashes turns "—dry-run" and "–dry-run" back into "--dry-run":
// Slack and macOS replace a typed "--" by a dash.
func normalizeDashes(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		for _, d := range []string{"\u2014", "\u2013"} {
			if strings.HasPrefix(a, d) && len(a) > len(d) {
				a = "--" + strings.TrimPrefix(a, d)
				break
			}
		}
		out[i] = a
	}
	return out
}

// flagProblem rewrites pflag's error for users, suggesting the closest flag
// for an unknown one.
func flagProblem(err error, fs *pflag.FlagSet) string {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "unknown flag: --"); ok {
		var names []string
		fs.VisitAll(func(f *pflag.Flag) { names = append(names, "--"+f.Name) })
		hint := didYouMean("--"+name, names)
		if hint == "" && len(names) == 0 {
			hint = fmt.Sprintf(" %s takes no flags.", fs.Name())
		}
		return fmt.Sprintf("Unknown flag --%s.%s", clip(name), hint)
	}
	// "-dry-run": one dash makes pflag read shorthand letters.
	if _, arg, ok := strings.Cut(msg, " in -"); ok && strings.HasPrefix(msg, "unknown shorthand flag") {
		if f := fs.Lookup(arg); f != nil {
			return fmt.Sprintf("Unknown flag -%s. Did you mean --%s?", clip(arg), f.Name)
		}
	}
	return upperFirst(msg) + "."
}

// usageReply answers a malformed command with what was wrong and its usage.
func usageReply(s Spec, problem string) Result {
	return Result{Kind: ReplyKind, Reply: Output{
		Private: true,
		Sections: []Section{
			{Lines: []string{problem}},
			{Heading: "Usage", Lines: s.usageLines(), Pre: true},
			{Lines: []string{fmt.Sprintf("`help %s` shows examples.", s.Name)}},
		},
	}}
}

func replyLines(lines ...string) Result {
	return Result{Kind: ReplyKind, Reply: Output{Private: true, Sections: []Section{{Lines: lines}}}}
}

// userError is a problem with what the user typed; its text is the reply.
type userError string

func (e userError) Error() string { return string(e) }

func userErrorf(format string, args ...any) error { return userError(fmt.Sprintf(format, args...)) }

// clip shortens user input echoed back in a reply.
func clip(s string) string {
	const n = 80
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

func upperFirst(s string) string {
	r, size := utf8.DecodeRuneInString(s)
	if size == 0 || r == utf8.RuneError {
		return s
	}
	return string(unicode.ToUpper(r)) + s[size:]
}
