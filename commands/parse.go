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

// MaxInput bounds a message, in bytes; commands are short, anything longer
// is a paste gone wrong and is answered rather than tokenised.
const MaxInput = 4096

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
	if len(text) > MaxInput {
		return replyLines(fmt.Sprintf("That message is %d bytes long; a command is at most %d. `help` lists the commands.", len(text), MaxInput))
	}
	text = stripPrefix(normalizeTyping(text))
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
	if err := fs.Parse(normalizeFlags(words[1:])); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return Result{Kind: ReplyKind, Reply: helpFor(cfg, spec)}
		}
		return usageReply(spec, flagProblem(err, fs))
	}
	now := in.Now
	if now.IsZero() {
		now = time.Now()
	}
	if problem := mentionProblem(spec, fs.Args()); problem != "" {
		return usageReply(spec, problem)
	}
	p := &parser{cfg: cfg, channelEnv: in.ChannelEnv, now: now}
	c := plan.Command{Name: spec.Name, Text: text}
	if spec.Mutates {
		c.DryRun, _ = fs.GetBool("dry-run")
		if fs.Changed("break-glass") {
			reason, _ := fs.GetString("break-glass")
			if reason = strings.TrimSpace(reason); reason == "" {
				return usageReply(spec, `--break-glass needs the reason, e.g. --break-glass "prod is down, the fix is in"`)
			}
			c.BreakGlass = clipReason(reason)
		}
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

// normalizeFlags turns "—dry-run" and "–dry-run" back into "--dry-run"
// (Slack and macOS replace a typed "--" by a dash) and lower-cases flag
// names, not their values: "--DRY-RUN", "--Until=2h".
func normalizeFlags(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		for _, d := range []string{"\u2014", "\u2013"} {
			if strings.HasPrefix(a, d) && len(a) > len(d) {
				a = "--" + strings.TrimPrefix(a, d)
				break
			}
		}
		if strings.HasPrefix(a, "--") {
			name, value, hasValue := strings.Cut(a, "=")
			a = strings.ToLower(name)
			if hasValue {
				a += "=" + value
			}
		}
		out[i] = a
	}
	return out
}

// normalizeTyping undoes what keyboards and chat clients do to typed text
// before it is split like a shell would: smart quotes (phones, macOS,
// pasted documents) become ASCII quotes, unusual spaces (no-break, thin,
// ideographic) become spaces, and invisible zero-width characters go. A
// curly apostrophe inside a word ("don’t") stays what it is, not a quote.
// Applying it twice changes nothing more.
func normalizeTyping(s string) string {
	if isPlainASCII(s) {
		return s
	}
	rs := []rune(s)
	var b strings.Builder
	b.Grow(len(s))
	for i, r := range rs {
		switch r {
		case '\u201c', '\u201d', '\u201e', '\u201f', '\u00ab', '\u00bb', '\u2033', '\u301d', '\u301e', '\uff02':
			b.WriteByte('"')
		case '\u2018', '\u2019', '\u201a', '\u201b', '\u2039', '\u203a', '\u2032', '\uff07':
			if r == '\u2019' && i > 0 && i+1 < len(rs) && unicode.IsLetter(rs[i-1]) && unicode.IsLetter(rs[i+1]) {
				b.WriteRune(r) // an apostrophe
				continue
			}
			b.WriteByte('\'')
		case '\u00a0', '\u1680', '\u202f', '\u205f', '\u3000':
			b.WriteByte(' ')
		case '\u200b', '\u2060', '\ufeff':
			// zero-width space, word joiner, byte order mark: invisible, dropped
		default:
			if '\u2000' <= r && r <= '\u200a' { // en quad … hair space
				b.WriteByte(' ')
				continue
			}
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isPlainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// isMention reports whether a word is a mention of a person or a group as
// the chat decoders leave it (@carol, @U0123, @here); "@sha256:…", the tail
// of a pasted image reference, is not one.
func isMention(w string) bool {
	return len(w) > 1 && w[0] == '@' && !strings.Contains(w, ":")
}

// mentionProblem refuses a mention where the command expects an argument:
// no command takes a person, and guessing what "deny @carol" means (carol's
// request? carol as the reason?) could end the wrong request. In deny's
// free-text reason, after the first word, a mention is just text.
func mentionProblem(s Spec, args []string) string {
	if s.freeText {
		args = args[:min(len(args), 1)]
	}
	for _, a := range args {
		if !isMention(a) {
			continue
		}
		if s.takesID {
			return fmt.Sprintf("%s is a mention; %s takes a request ID such as #abc123, not a person. `pending` lists the open requests with their IDs.", clip(a), s.Name)
		}
		return fmt.Sprintf("%s is a mention; %s does not take people.", clip(a), s.Name)
	}
	return ""
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
