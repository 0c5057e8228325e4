package slack

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	slackgo "github.com/slack-go/slack"
)

// Slack's request headers.
const (
	headerSignature = "X-Slack-Signature"
	headerTimestamp = "X-Slack-Request-Timestamp"
	headerRetryNum  = "X-Slack-Retry-Num"
)

// signatureWindow is how far a request's timestamp may be from now, either
// way; slack.NewSecretsVerifier enforces it, and the replay guard remembers
// signatures for as long as they could pass it.
const signatureWindow = 5 * time.Minute

// Sign returns the v0 signature Slack puts in X-Slack-Signature for body
// sent at timestamp (Unix seconds): "v0=" + hex(HMAC-SHA256(secret,
// "v0:timestamp:body")). Tests and hack/slack-sign use it to act as Slack.
func Sign(secret string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "v0:%d:", timestamp)
	mac.Write(body)
	return "v0=" + hex.EncodeToString(mac.Sum(nil))
}

// endpoint serves one of Slack's request URLs: it limits the body, verifies
// the signature, refuses replays, and only then parses; what passes is
// queued for the bot and acknowledged at once.
func (a *Adapter) endpoint(k kind) http.Handler {
	decode := decodeCommand
	if k == kindAction {
		decode = decodeInteraction
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.observeAck != nil {
			start := time.Now()
			defer func() { a.observeAck(Name, time.Since(start)) }()
		}
		body, status, why := a.verify(w, r)
		switch status {
		case http.StatusOK:
		case statusRetried:
			// A retry of a request we already acknowledged: say so again, do nothing.
			a.stats.duplicates.Add(1)
			w.WriteHeader(http.StatusOK)
			return
		default:
			a.stats.rejected.Add(1)
			a.log.Warn("slack: refused request", "path", r.URL.Path, "status", status, "reason", why, "remote", r.RemoteAddr)
			http.Error(w, http.StatusText(status), status)
			return
		}
		in, err := decode(body)
		if err != nil {
			if errors.Is(err, errNotAButton) {
				a.log.Info("slack: ignoring an interaction that is not a deploybot button", "reason", err)
				w.WriteHeader(http.StatusOK)
				return
			}
			a.stats.malformed.Add(1)
			a.log.Warn("slack: malformed request", "path", r.URL.Path, "err", err)
			http.Error(w, "malformed request", http.StatusBadRequest)
			return
		}
		a.stats.parsed.Add(1)
		in.received = a.now()
		switch a.accept(in) {
		case accepted, duplicate:
			w.WriteHeader(http.StatusOK)
		case overloaded:
			if k == kindCommand {
				// Slack shows a slash command's response body to the user.
				w.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(w).Encode(map[string]string{"response_type": "ephemeral", "text": busyText})
				return
			}
			http.Error(w, busyText, http.StatusServiceUnavailable)
		}
	})
}

const busyText = "deploybot is busy right now and did not take this; please try again in a minute."

// statusRetried is verify's verdict for a replayed signature that Slack
// marked as its own retry.
const statusRetried = -1

// verify reads the body (at most MaxBody) and checks the v0 signature, the
// timestamp window and that the signature was not seen before. It returns
// the body and http.StatusOK, statusRetried, or the status to refuse with
// and why.
func (a *Adapter) verify(w http.ResponseWriter, r *http.Request) ([]byte, int, string) {
	if r.ContentLength > MaxBody {
		return nil, http.StatusRequestEntityTooLarge, "body larger than " + strconv.Itoa(MaxBody) + " bytes"
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, http.StatusRequestEntityTooLarge, "body larger than " + strconv.Itoa(MaxBody) + " bytes"
		}
		return nil, http.StatusBadRequest, "reading the body: " + err.Error()
	}
	// slack.NewSecretsVerifier checks that both headers are there, that the
	// timestamp is within five minutes of now (either way), and compares
	// HMAC-SHA256 over v0:timestamp:body in constant time.
	sv, err := slackgo.NewSecretsVerifier(r.Header, a.secret)
	if err != nil {
		return nil, http.StatusUnauthorized, "signature headers: " + err.Error()
	}
	if _, err := sv.Write(body); err != nil {
		return nil, http.StatusUnauthorized, "hashing the body: " + err.Error()
	}
	if err := sv.Ensure(); err != nil {
		return nil, http.StatusUnauthorized, err.Error()
	}
	// A valid signature is good for its whole window, so a captured request
	// could be sent again: each signature is accepted once.
	ts, _ := strconv.ParseInt(r.Header.Get(headerTimestamp), 10, 64)
	expiry := time.Unix(ts, 0).Add(signatureWindow + time.Minute)
	if !a.replays.add(r.Header.Get(headerSignature), expiry) {
		if r.Header.Get(headerRetryNum) != "" {
			return nil, statusRetried, ""
		}
		return nil, http.StatusUnauthorized, "replayed signature"
	}
	return body, http.StatusOK, ""
}

// verdict is what became of an accepted event.
type verdict int

const (
	accepted verdict = iota
	duplicate
	overloaded
)

// accept queues a verified event for the workers unless its dedupe key was
// seen already. With an inbox it first persists the event (group commit,
// inbox.go), so what is acknowledged survives a crash; without one it never
// blocks and remembers keys in memory.
func (a *Adapter) accept(in inbound) verdict {
	if a.inbox != nil {
		a.qmu.RLock()
		defer a.qmu.RUnlock()
		if a.stopping {
			a.stats.overloaded.Add(1)
			return overloaded
		}
		return a.acceptDurably(in)
	}
	if !a.seen.add(in.dedupeKey, a.now().Add(dedupeWindow)) {
		a.stats.duplicates.Add(1)
		a.log.Info("slack: ignoring redelivered event", "key", in.dedupeKey)
		return duplicate
	}
	a.qmu.RLock()
	defer a.qmu.RUnlock()
	if a.stopping {
		a.seen.remove(in.dedupeKey)
		a.stats.overloaded.Add(1)
		return overloaded
	}
	select {
	case a.queue <- in:
		a.stats.enqueued.Add(1)
		return accepted
	default:
		// Forget the key so that a retry of this event can still get in.
		a.seen.remove(in.dedupeKey)
		a.stats.overloaded.Add(1)
		a.log.Warn("slack: event queue full, turning an event away", "key", in.dedupeKey)
		return overloaded
	}
}
