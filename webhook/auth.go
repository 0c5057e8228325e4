package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"
)

// AuthError is a request that did not prove it comes from the registry:
// answered 401 with its reason.
type AuthError struct{ Reason string }

func (e *AuthError) Error() string { return e.Reason }

// SignatureHeader is where GitHub puts its signature of the body.
const SignatureHeader = "X-Hub-Signature-256"

// Sign is GitHub's X-Hub-Signature-256 of body: "sha256=" and the hex
// HMAC-SHA256 of the body with the webhook's secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature checks GitHub's signature header of body in constant time.
func VerifySignature(secret string, body []byte, header string) error {
	if header == "" {
		return &AuthError{Reason: "missing " + SignatureHeader + ": set the webhook's secret in GitHub to the one deploybot has (DEPLOYBOT_WEBHOOK_SECRET_GITHUB)"}
	}
	hexSum, ok := strings.CutPrefix(header, "sha256=")
	got, err := hex.DecodeString(hexSum)
	if !ok || err != nil || len(got) != sha256.Size {
		return &AuthError{Reason: SignatureHeader + " is not sha256=<64 hex digits>"}
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	if !hmac.Equal(got, m.Sum(nil)) {
		return &AuthError{Reason: "the signature does not match the body: the webhook's secret differs from deploybot's, or the body was changed"}
	}
	return nil
}

// errNoToken and errWrongToken are the two ways a token check fails.
var (
	errNoToken    = &AuthError{Reason: "missing token: send it as Authorization: Bearer TOKEN or as ?token=TOKEN in the URL"}
	errWrongToken = &AuthError{Reason: "wrong token"}
)

// VerifyToken checks the source's token of r, which a registry sends as
// Authorization: Bearer TOKEN (Distribution's endpoint headers), as the
// whole Authorization value (Harbor's "Auth Header" field, when the token
// alone was entered) or as ?token=TOKEN (Quay and Docker Hub, which send
// no headers of the user's choice). Each candidate is compared in constant
// time.
func VerifyToken(secret string, r *http.Request) error {
	var candidates []string
	if a := r.Header.Get("Authorization"); a != "" {
		if scheme, tok, ok := strings.Cut(a, " "); ok && strings.EqualFold(scheme, "Bearer") {
			candidates = append(candidates, strings.TrimSpace(tok))
		} else {
			candidates = append(candidates, strings.TrimSpace(a))
		}
	}
	if t := r.URL.Query().Get("token"); t != "" {
		candidates = append(candidates, t)
	}
	if len(candidates) == 0 {
		return errNoToken
	}
	match := 0
	for _, c := range candidates {
		match |= subtle.ConstantTimeCompare([]byte(c), []byte(secret))
	}
	if match != 1 {
		return errWrongToken
	}
	return nil
}
