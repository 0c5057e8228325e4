package slack

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestVerification pins what reaches the bot: only requests that are within
// the size limit, signed with the signing secret over exactly this body,
// timestamped within five minutes, and not seen before. Everything else is
// refused before it is parsed, and nothing runs.
func TestVerification(t *testing.T) {
	now := time.Now()
	body := commandBody(testTeam, "U0ALICE", "alice", testChannel, "import prod", "https://hooks.slack.test/commands/1", "trigger-1")
	oversized := append(append([]byte{}, body...), []byte("&pad="+strings.Repeat("x", MaxBody))...)

	signed := func(b []byte, at time.Time) *http.Request {
		return signedRequest(testSecret, "/slack/commands", b, at)
	}
	for _, tc := range []struct {
		name string
		// reqs are sent in order; want is the status of each.
		reqs    func() []*http.Request
		want    []int
		handled int
		parsed  int64
	}{
		{
			name:    "valid",
			reqs:    func() []*http.Request { return []*http.Request{signed(body, now)} },
			want:    []int{http.StatusOK},
			handled: 1, parsed: 1,
		},
		{
			name: "wrong secret",
			reqs: func() []*http.Request {
				return []*http.Request{signedRequest("not-the-secret", "/slack/commands", body, now)}
			},
			want: []int{http.StatusUnauthorized},
		},
		{
			name: "body tampered after signing",
			reqs: func() []*http.Request {
				r := signed(body, now)
				tampered := strings.Replace(string(body), "import+prod", "import+prod+--dry-run", 1)
				r.Body = io.NopCloser(strings.NewReader(tampered))
				r.ContentLength = int64(len(tampered))
				return []*http.Request{r}
			},
			want: []int{http.StatusUnauthorized},
		},
		{
			name: "timestamp 6 minutes old",
			reqs: func() []*http.Request { return []*http.Request{signed(body, now.Add(-6*time.Minute))} },
			want: []int{http.StatusUnauthorized},
		},
		{
			name: "timestamp 6 minutes ahead",
			reqs: func() []*http.Request { return []*http.Request{signed(body, now.Add(6*time.Minute))} },
			want: []int{http.StatusUnauthorized},
		},
		{
			name: "timestamp header swapped after signing",
			reqs: func() []*http.Request {
				r := signed(body, now)
				r.Header.Set(headerTimestamp, strconv.FormatInt(now.Unix()-1, 10))
				return []*http.Request{r}
			},
			want: []int{http.StatusUnauthorized},
		},
		{
			name: "missing signature header",
			reqs: func() []*http.Request {
				r := signed(body, now)
				r.Header.Del(headerSignature)
				return []*http.Request{r}
			},
			want: []int{http.StatusUnauthorized},
		},
		{
			name: "missing timestamp header",
			reqs: func() []*http.Request {
				r := signed(body, now)
				r.Header.Del(headerTimestamp)
				return []*http.Request{r}
			},
			want: []int{http.StatusUnauthorized},
		},
		{
			name: "signature without v0= prefix",
			reqs: func() []*http.Request {
				r := signed(body, now)
				r.Header.Set(headerSignature, strings.TrimPrefix(r.Header.Get(headerSignature), "v0="))
				return []*http.Request{r}
			},
			want: []int{http.StatusUnauthorized},
		},
		{
			name: "oversized body, correctly signed",
			reqs: func() []*http.Request { return []*http.Request{signed(oversized, now)} },
			want: []int{http.StatusRequestEntityTooLarge},
		},
		{
			name: "oversized body without Content-Length",
			reqs: func() []*http.Request {
				r := signed(oversized, now)
				r.ContentLength = -1
				return []*http.Request{r}
			},
			want: []int{http.StatusRequestEntityTooLarge},
		},
		{
			name:    "replayed request",
			reqs:    func() []*http.Request { r := signed(body, now); return []*http.Request{r, clone(r, body)} },
			want:    []int{http.StatusOK, http.StatusUnauthorized},
			handled: 1, parsed: 1,
		},
		{
			name: "replayed request marked as Slack's retry",
			reqs: func() []*http.Request {
				r := signed(body, now)
				again := clone(r, body)
				again.Header.Set(headerRetryNum, "1")
				return []*http.Request{r, again}
			},
			want:    []int{http.StatusOK, http.StatusOK},
			handled: 1, parsed: 1,
		},
		{
			name: "same event re-signed (retry with a fresh signature)",
			reqs: func() []*http.Request {
				again := signed(body, now.Add(time.Second))
				again.Header.Set(headerRetryNum, "1")
				return []*http.Request{signed(body, now), again}
			},
			want:    []int{http.StatusOK, http.StatusOK},
			handled: 1, parsed: 2,
		},
		{
			name:   "signed but not a slash command",
			reqs:   func() []*http.Request { return []*http.Request{signed([]byte("team_id=T1&user_id=%zz"), now)} },
			want:   []int{http.StatusBadRequest},
			parsed: 0,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newCountingHandler()
			a, err := New(h, WithSigningSecret(testSecret), WithLogger(testLogger(t)))
			if err != nil {
				t.Fatal(err)
			}
			mux := http.NewServeMux()
			a.Routes(mux)
			reqs := tc.reqs()
			for i, req := range reqs {
				rec := httptest.NewRecorder()
				mux.ServeHTTP(rec, req)
				if rec.Code != tc.want[i] {
					t.Errorf("request %d: status %d, want %d (%s)", i+1, rec.Code, tc.want[i], strings.TrimSpace(rec.Body.String()))
				}
			}
			a.Close() // waits for the workers, so every accepted event was handled
			if got := h.count(); got != tc.handled {
				t.Errorf("handled %d events, want %d", got, tc.handled)
			}
			st := a.Stats()
			if st.Parsed != tc.parsed {
				t.Errorf("parsed %d requests, want %d (stats %+v)", st.Parsed, tc.parsed, st)
			}
			refused := int64(0)
			for _, w := range tc.want {
				if w == http.StatusUnauthorized || w == http.StatusRequestEntityTooLarge {
					refused++
				}
			}
			if st.Rejected != refused {
				t.Errorf("rejected %d, want %d", st.Rejected, refused)
			}
		})
	}
}

// clone makes a second, byte-identical request.
func clone(r *http.Request, body []byte) *http.Request {
	c := httptest.NewRequest(r.Method, r.URL.String(), strings.NewReader(string(body)))
	c.Header = r.Header.Clone()
	return c
}

// TestSignMatchesSlackExample checks Sign against the worked example in
// Slack's "Verifying requests from Slack" documentation.
func TestSignMatchesSlackExample(t *testing.T) {
	body := "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	got := Sign("8f742231b10e8888abcd99yyyzzz85a5", 1531420618, []byte(body))
	want := "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
	if got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}
