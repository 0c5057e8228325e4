// Package webhook receives registry webhooks: the CNCF Distribution
// notification envelope, Quay "Repository Push" notifications, Docker Hub
// webhooks, GitHub package events and Harbor PUSH_ARTIFACT events, on
// POST /registry/webhooks/{source}. Each request is authenticated (GitHub's
// HMAC signature, otherwise the source's token) before its body is read as
// JSON, size-limited and remembered so that a redelivery does nothing. What a
// body announces is only "look again": a Push names a repository and a tag,
// never a digest, because the bot re-resolves the tag in the registry and
// trusts nothing else.
package webhook

import (
	"regexp"
	"strings"

	"github.com/deploybot/deploybot/plan"
)

// Path is where the webhooks are served; the source's name follows it.
const Path = "/registry/webhooks/"

// Source is a kind of registry that sends webhooks.
type Source string

// The sources, each with its own decoder and authentication.
const (
	Distribution Source = "distribution"
	Quay         Source = "quay"
	DockerHub    Source = "dockerhub"
	GitHub       Source = "github"
	Harbor       Source = "harbor"
)

// Sources lists every source, in the order they are documented.
var Sources = []Source{Distribution, Quay, DockerHub, GitHub, Harbor}

// Push is one tag a registry says was pushed.
type Push struct {
	// Repository is the full repository with its registry host, in
	// Canonical form, e.g. quay.io/packit/packit-worker.
	Repository string `json:"repository"`
	Tag        string `json:"tag"`
}

func (p Push) String() string { return p.Repository + ":" + p.Tag }

// Delivery is one authenticated webhook request: the pushes it announces.
type Delivery struct {
	Source Source
	// ID names the delivery in logs: the registry's event or delivery ID,
	// or a hash of the body.
	ID     string
	Pushes []Push
	// Note says why a delivery announces no pushes (a ping, a pull, an
	// untagged push).
	Note string

	// keys identify the delivery for the replay guard.
	keys []string
}

var (
	// tagPattern is the Docker reference grammar for a tag.
	tagPattern = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	// pathPattern is a repository path (after the host), lowercase as the
	// reference grammar wants it.
	pathPattern = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$`)
	// hostPattern is a registry host with an optional port.
	hostPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$|^\[[0-9a-f:]+\](:[0-9]{1,5})?$`)
)

// Canonical writes a repository the one way two spellings of it compare
// equal: lowercase, with its registry host, Docker Hub as docker.io with
// library/ for official images, without scheme, tag or digest. It returns ""
// for something that is not a repository.
func Canonical(repo string) string {
	repo = strings.TrimSpace(repo)
	if i := strings.Index(repo, "://"); i >= 0 {
		repo = repo[i+3:]
	}
	repo = plan.Repository(strings.TrimSuffix(repo, "/"))
	host, path, ok := strings.Cut(repo, "/")
	// As Docker reads a reference: the first component is a host when it
	// has a dot or a port, or is localhost; otherwise Docker Hub.
	if !ok || !strings.ContainsAny(host, ".:") && host != "localhost" {
		host, path = "docker.io", repo
	}
	host, path = strings.ToLower(host), strings.ToLower(path)
	switch host {
	case "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		host = "docker.io"
	}
	if host == "docker.io" && !strings.Contains(path, "/") {
		path = "library/" + path
	}
	if len(host)+len(path) > 255 || !hostPattern.MatchString(host) || !pathPattern.MatchString(path) {
		return ""
	}
	return host + "/" + path
}

// SameRepository reports whether a and b name the same repository.
func SameRepository(a, b string) bool {
	ca := Canonical(a)
	return ca != "" && ca == Canonical(b)
}

// push returns the Push of host/path:tag, or false when either is not
// valid (a body cannot smuggle anything else into a command text).
func push(repo, tag string) (Push, bool) {
	r := Canonical(repo)
	if r == "" || !tagPattern.MatchString(tag) {
		return Push{}, false
	}
	return Push{Repository: r, Tag: tag}, true
}
