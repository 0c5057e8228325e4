package discord

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/deploybot/deploybot/internal/poll"
)

// fakeDiscord stands in for Discord's REST API (reached through the
// adapter's API URL override) and records every call, as Discord would have
// received it.
type fakeDiscord struct {
	t   testing.TB
	srv *httptest.Server

	mu     sync.Mutex
	calls  []apiCall
	nextID int
}

// apiCall is one REST call.
type apiCall struct {
	Method, Path string
	Auth         string
	Body         []byte
}

func newFakeDiscord(t testing.TB) *fakeDiscord {
	f := &fakeDiscord{t: t, nextID: 1000}
	mux := http.NewServeMux()
	message := func(w http.ResponseWriter, id, channel string) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"id": id, "channel_id": channel})
	}
	mux.HandleFunc("POST /api/v9/channels/{channel}/messages", func(w http.ResponseWriter, r *http.Request) {
		message(w, f.newID(), r.PathValue("channel"))
	})
	mux.HandleFunc("PATCH /api/v9/channels/{channel}/messages/{id}", func(w http.ResponseWriter, r *http.Request) {
		message(w, r.PathValue("id"), r.PathValue("channel"))
	})
	mux.HandleFunc("POST /api/v9/interactions/{id}/{token}/callback", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /api/v9/webhooks/{app}/{token}", func(w http.ResponseWriter, _ *http.Request) {
		message(w, f.newID(), "")
	})
	mux.HandleFunc("PATCH /api/v9/webhooks/{app}/{token}/messages/{id}", func(w http.ResponseWriter, r *http.Request) {
		message(w, r.PathValue("id"), "")
	})
	mux.HandleFunc("DELETE /api/v9/webhooks/{app}/{token}/messages/{id}", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("PUT /api/v9/applications/{app}/guilds/{guild}/commands", func(w http.ResponseWriter, r *http.Request) {
		f.echo(w, r)
	})
	mux.HandleFunc("PUT /api/v9/applications/{app}/commands", func(w http.ResponseWriter, r *http.Request) {
		f.echo(w, r)
	})
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		f.mu.Lock()
		f.calls = append(f.calls, apiCall{Method: r.Method, Path: r.URL.Path, Auth: r.Header.Get("Authorization"), Body: body})
		f.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeDiscord) echo(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.Copy(w, r.Body)
}

func (f *fakeDiscord) newID() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	return strconv.Itoa(f.nextID)
}

// apiURL is the base URL the adapter sends REST calls to.
func (f *fakeDiscord) apiURL() string { return f.srv.URL + "/api" }

// matching returns the recorded calls of method (any for "") whose path
// has prefix.
func (f *fakeDiscord) matching(method, prefix string) []apiCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []apiCall
	for _, c := range f.calls {
		if (method == "" || c.Method == method) && strings.HasPrefix(c.Path, prefix) {
			out = append(out, c)
		}
	}
	return out
}

// waitFor polls until a call of method under prefix satisfies ok.
func (f *fakeDiscord) waitFor(method, prefix string, ok func(apiCall) bool) apiCall {
	f.t.Helper()
	var found apiCall
	poll.Until(f.t, 30*time.Second, "a matching "+method+" "+prefix+"* call", func() (bool, string) {
		for _, c := range f.matching(method, prefix) {
			if ok(c) {
				found = c
				return true, ""
			}
		}
		return false, "calls:\n" + f.dump()
	})
	return found
}

// response is an interaction response as Discord receives it.
type response struct {
	Type discordgo.InteractionResponseType `json:"type"`
	Data json.RawMessage                   `json:"data"`
}

func decodeResponse(t testing.TB, b []byte) response {
	t.Helper()
	var r response
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("interaction response %s: %v", b, err)
	}
	return r
}

// callback returns the initial response recorded for an interaction
// answered over REST (the gateway case).
func (f *fakeDiscord) callback(interactionID string) response {
	f.t.Helper()
	c := f.waitFor("POST", "/api/v9/interactions/"+interactionID+"/", func(apiCall) bool { return true })
	return decodeResponse(f.t, c.Body)
}

func (f *fakeDiscord) dump() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	for _, c := range f.calls {
		fmt.Fprintf(&b, "  %s %s %s\n", c.Method, c.Path, clip(string(c.Body), 300))
	}
	return b.String()
}

// sentMessage is the part of a message body the tests look at.
type sentMessage struct {
	Content    string                    `json:"content"`
	Flags      int                       `json:"flags"`
	Embeds     []*discordgo.MessageEmbed `json:"embeds"`
	Components []struct {
		Components []struct {
			Label    string `json:"label"`
			Style    int    `json:"style"`
			CustomID string `json:"custom_id"`
		} `json:"components"`
	} `json:"components"`
}

func decodeMessage(t testing.TB, b []byte) sentMessage {
	t.Helper()
	var m sentMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("message body %s: %v", b, err)
	}
	return m
}

// responseMessage decodes the message of an interaction response.
func responseMessage(t testing.TB, r response) sentMessage {
	t.Helper()
	if len(r.Data) == 0 {
		return sentMessage{}
	}
	return decodeMessage(t, r.Data)
}

// text is everything the message shows, for asserting on.
func (m sentMessage) text() string {
	parts := []string{m.Content}
	for _, e := range m.Embeds {
		parts = append(parts, e.Title, e.Description)
	}
	return strings.Join(parts, "\n")
}

// customIDs are the message's buttons.
func (m sentMessage) customIDs() []string {
	var ids []string
	for _, row := range m.Components {
		for _, c := range row.Components {
			ids = append(ids, c.CustomID)
		}
	}
	return ids
}

// signer signs interaction requests the way Discord does.
type signer struct {
	pub  ed25519.PublicKey
	priv ed25519.PrivateKey
}

func newSigner(t testing.TB) signer {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return signer{pub: pub, priv: priv}
}

// request is a signed POST of body to url at time ts.
func (s signer) request(t testing.TB, url string, body []byte, ts time.Time) *http.Request {
	t.Helper()
	stamp := strconv.FormatInt(ts.Unix(), 10)
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Signature-Timestamp", stamp)
	req.Header.Set("X-Signature-Ed25519", hex.EncodeToString(ed25519.Sign(s.priv, append([]byte(stamp), body...))))
	return req
}
