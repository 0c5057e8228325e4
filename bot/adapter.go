package bot

import (
	"math/rand/v2"
	"strings"
	"time"
)

// What the chat adapters share that is not the Request/Reply model: how they
// read a platform's <...> markup and how they back off from a failing API.

// ReplaceMarkup rewrites s, piece by piece: each <...> that markup accepts
// becomes what markup returns for its inside; everything else goes through
// text (for unescaping). A "<" that starts no accepted markup is text, and
// markup may start after it. Slack and Discord both wrap mentions, channels
// and links this way, each with its own inside.
func ReplaceMarkup(s string, text func(string) string, markup func(inner string) (string, bool)) string {
	var b strings.Builder
	for {
		open := strings.IndexByte(s, '<')
		if open < 0 {
			break
		}
		end := strings.IndexByte(s[open:], '>')
		if end < 0 {
			break
		}
		b.WriteString(text(s[:open]))
		out, ok := markup(s[open+1 : open+end])
		if !ok {
			b.WriteString(text("<"))
			s = s[open+1:]
			continue
		}
		b.WriteString(out)
		s = s[open+end+1:]
	}
	b.WriteString(text(s))
	return b.String()
}

// RetryCap is the longest wait between retries of a platform API call.
const RetryCap = 2 * time.Minute

// Backoff is how long an adapter waits before the try after the n-th
// failure in a row: base·2^(n-1), at most RetryCap, ±20% so that many
// messages do not retry in step.
func Backoff(base time.Duration, n int) time.Duration {
	d := RetryCap
	if n >= 1 && n < 20 {
		d = min(base<<(n-1), RetryCap)
	}
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}
