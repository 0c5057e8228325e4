package webhook

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
)

// Hosts are the registry hosts of sources whose bodies do not say which
// registry they come from, or say it in a form the services do not use.
type Hosts struct {
	// Distribution is the host services name a Distribution registry by;
	// without it, each event's request.host (the Host header the pusher
	// sent, e.g. registry.example.com or 127.0.0.1:5000).
	Distribution string
	// Harbor is the Harbor host; without it, the host of each resource's
	// resource_url.
	Harbor string
}

// DecodeError is a body that is not what its source sends: answered 400.
type DecodeError struct{ Reason string }

func (e *DecodeError) Error() string { return e.Reason }

func decodeErrorf(format string, args ...any) error {
	return &DecodeError{Reason: fmt.Sprintf(format, args...)}
}

// Decode reads one authenticated request body of src: the pushes it
// announces and the keys that identify it for the replay guard. h is the
// request's header (GitHub names its event and delivery there). A body of
// another shape is a *DecodeError; a well-formed body that announces no
// tagged push is a Delivery without Pushes and with a Note.
func Decode(src Source, h http.Header, body []byte, hosts Hosts) (Delivery, error) {
	d := Delivery{Source: src, ID: bodyKey(body)}
	var err error
	switch src {
	case Distribution:
		err = decodeDistribution(&d, body, hosts.Distribution)
	case Quay:
		err = decodeQuay(&d, body)
	case DockerHub:
		err = decodeDockerHub(&d, body)
	case GitHub:
		err = decodeGitHub(&d, h, body)
	case Harbor:
		err = decodeHarbor(&d, body, hosts.Harbor)
	default:
		return Delivery{}, fmt.Errorf("unknown webhook source %q", src)
	}
	if err != nil {
		return Delivery{}, err
	}
	if len(d.keys) == 0 {
		d.keys = []string{d.ID}
	}
	d.Pushes = dedupe(d.Pushes)
	if len(d.Pushes) == 0 && d.Note == "" {
		d.Note = "no tagged push in it"
	}
	return d, nil
}

// bodyKey is the identity of a body without an ID of its own.
func bodyKey(body []byte) string {
	sum := sha256.Sum256(body)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func dedupe(ps []Push) []Push {
	sort.Slice(ps, func(i, j int) bool { return ps[i].String() < ps[j].String() })
	return slices.Compact(ps)
}

func unmarshal(src Source, body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return decodeErrorf("the body is not a %s webhook (JSON): %v", src, err)
	}
	return nil
}

// distributionEnvelope is the part of distribution's notifications.Envelope
// (application/vnd.docker.distribution.events.v1+json, v2+json since
// distribution v3) that names a pushed tag.
type distributionEnvelope struct {
	Events []struct {
		ID     string `json:"id"`
		Action string `json:"action"`
		Target struct {
			MediaType  string `json:"mediaType"`
			Repository string `json:"repository"`
			Tag        string `json:"tag"`
		} `json:"target"`
		Request struct {
			Host string `json:"host"`
		} `json:"request"`
	} `json:"events"`
}

// decodeDistribution reads the events of a notification envelope: a push
// with target.tag is a manifest pushed by tag; blob pushes and pushes by
// digest name no tag, pulls and deletes change nothing to import.
func decodeDistribution(d *Delivery, body []byte, host string) error {
	var env distributionEnvelope
	if err := unmarshal(Distribution, body, &env); err != nil {
		return err
	}
	if env.Events == nil {
		return decodeErrorf("the body is not a Distribution notification envelope: it has no \"events\"")
	}
	var ids []string
	actions := map[string]int{}
	for _, ev := range env.Events {
		if ev.ID != "" {
			ids = append(ids, ev.ID)
		}
		actions[ev.Action]++
		if ev.Action != "push" || ev.Target.Tag == "" {
			continue
		}
		h := host
		if h == "" {
			h = ev.Request.Host
		}
		if h == "" {
			continue
		}
		if p, ok := push(h+"/"+ev.Target.Repository, ev.Target.Tag); ok {
			d.Pushes = append(d.Pushes, p)
		}
	}
	// Each event has a unique ID, and a redelivery carries the same ones.
	if len(ids) > 0 {
		sort.Strings(ids)
		d.ID = "events " + strings.Join(ids, ",")
		d.keys = []string{bodyKey([]byte(strings.Join(ids, "\n")))}
	}
	if len(d.Pushes) == 0 {
		switch {
		case len(env.Events) > 0 && actions["push"] == 0:
			d.Note = "no push event in it"
		case host == "" && hasTaggedPushWithoutHost(env):
			d.Note = "its push events name no request.host; set webhooks.distributionHost in the config"
		default:
			d.Note = "no tagged manifest push in it (blobs and pushes by digest name no tag)"
		}
	}
	return nil
}

func hasTaggedPushWithoutHost(env distributionEnvelope) bool {
	for _, ev := range env.Events {
		if ev.Action == "push" && ev.Target.Tag != "" && ev.Request.Host == "" {
			return true
		}
	}
	return false
}

// quayPush is Quay's "Repository Push" notification. updated_tags is a
// list of tags in current Quay and was a tag → image map in early versions.
type quayPush struct {
	DockerURL   string          `json:"docker_url"`
	UpdatedTags json.RawMessage `json:"updated_tags"`
}

func decodeQuay(d *Delivery, body []byte) error {
	var q quayPush
	if err := unmarshal(Quay, body, &q); err != nil {
		return err
	}
	if q.DockerURL == "" {
		return decodeErrorf("the body is not a Quay repository notification: it has no docker_url")
	}
	var tags []string
	if len(q.UpdatedTags) > 0 && string(q.UpdatedTags) != "null" {
		if err := json.Unmarshal(q.UpdatedTags, &tags); err != nil {
			var m map[string]json.RawMessage
			if json.Unmarshal(q.UpdatedTags, &m) != nil {
				return decodeErrorf("updated_tags is neither a list of tags nor a map of them")
			}
			for t := range m {
				tags = append(tags, t)
			}
		}
	}
	for _, t := range tags {
		if p, ok := push(q.DockerURL, t); ok {
			d.Pushes = append(d.Pushes, p)
		}
	}
	// A Quay body has no ID or time of its own: two pushes of the same tag
	// send the same bytes, so its replay guard holds only for a short time
	// (Handler) and the same body later is a new push.
	d.keys = []string{"quay " + d.ID}
	return nil
}

// dockerHubPush is a Docker Hub webhook.
type dockerHubPush struct {
	PushData *struct {
		Tag      string  `json:"tag"`
		PushedAt float64 `json:"pushed_at"`
	} `json:"push_data"`
	Repository struct {
		RepoName string `json:"repo_name"`
	} `json:"repository"`
}

func decodeDockerHub(d *Delivery, body []byte) error {
	var w dockerHubPush
	if err := unmarshal(DockerHub, body, &w); err != nil {
		return err
	}
	if w.PushData == nil || w.Repository.RepoName == "" {
		return decodeErrorf("the body is not a Docker Hub webhook: it needs push_data and repository.repo_name")
	}
	if p, ok := push("docker.io/"+w.Repository.RepoName, w.PushData.Tag); ok {
		d.Pushes = append(d.Pushes, p)
	}
	return nil
}

// githubPackage is the part of a GitHub `package` (or older
// `registry_package`) event that names a container tag.
type githubPackage struct {
	Name        string `json:"name"`
	PackageType string `json:"package_type"`
	Ecosystem   string `json:"ecosystem"`
	Owner       struct {
		Login string `json:"login"`
	} `json:"owner"`
	Registry *struct {
		Type string `json:"type"`
	} `json:"registry"`
	PackageVersion *struct {
		ContainerMetadata *struct {
			Tag struct {
				Name string `json:"name"`
			} `json:"tag"`
		} `json:"container_metadata"`
	} `json:"package_version"`
}

type githubEvent struct {
	Action          string         `json:"action"`
	Package         *githubPackage `json:"package"`
	RegistryPackage *githubPackage `json:"registry_package"`
}

func (p *githubPackage) container() bool {
	kinds := []string{p.PackageType, p.Ecosystem}
	if p.Registry != nil {
		kinds = append(kinds, p.Registry.Type)
	}
	for _, k := range kinds {
		switch strings.ToLower(k) {
		case "container", "docker":
			return true
		}
	}
	return false
}

func decodeGitHub(d *Delivery, h http.Header, body []byte) error {
	event := h.Get("X-GitHub-Event")
	// GitHub's delivery GUID names the delivery and stays the same when it
	// is redelivered; the body's hash guards a replay under a new GUID.
	if id := h.Get("X-GitHub-Delivery"); id != "" {
		d.ID = "delivery " + id
		d.keys = []string{"github delivery " + id, bodyKey(body)}
	}
	switch event {
	case "ping":
		d.Note = "ping: the webhook reaches deploybot"
		return nil
	case "package", "registry_package":
	case "":
		return decodeErrorf("no X-GitHub-Event header: this is not a GitHub webhook")
	default:
		d.Note = "event " + event + " is not a package event; subscribe to Packages (or Registry packages) only"
		return nil
	}
	var ev githubEvent
	if err := unmarshal(GitHub, body, &ev); err != nil {
		return err
	}
	pkg := ev.Package
	if event == "registry_package" || pkg == nil {
		pkg = ev.RegistryPackage
	}
	if pkg == nil {
		return decodeErrorf("a %s event without its package", event)
	}
	switch {
	case ev.Action != "published":
		d.Note = "action " + ev.Action + ": only published versions are pushes"
		return nil
	case !pkg.container():
		d.Note = "not a container package"
		return nil
	case pkg.PackageVersion == nil || pkg.PackageVersion.ContainerMetadata == nil || pkg.PackageVersion.ContainerMetadata.Tag.Name == "":
		d.Note = "the published version has no tag"
		return nil
	}
	if p, ok := push("ghcr.io/"+pkg.Owner.Login+"/"+pkg.Name, pkg.PackageVersion.ContainerMetadata.Tag.Name); ok {
		d.Pushes = append(d.Pushes, p)
	}
	return nil
}

// harborEvent is a Harbor webhook in the "Default" payload format.
type harborEvent struct {
	Type      string `json:"type"`
	EventData *struct {
		Resources []struct {
			Tag         string `json:"tag"`
			ResourceURL string `json:"resource_url"`
		} `json:"resources"`
		Repository struct {
			RepoFullName string `json:"repo_full_name"`
		} `json:"repository"`
	} `json:"event_data"`
}

func decodeHarbor(d *Delivery, body []byte, host string) error {
	var ev harborEvent
	if err := unmarshal(Harbor, body, &ev); err != nil {
		return err
	}
	if ev.Type == "" || ev.EventData == nil {
		return decodeErrorf("the body is not a Harbor webhook in the Default payload format: it needs type and event_data (CloudEvents is not read)")
	}
	if ev.Type != "PUSH_ARTIFACT" {
		d.Note = "event " + ev.Type + " is not a push; subscribe to Artifact pushed only"
		return nil
	}
	full := ev.EventData.Repository.RepoFullName
	for _, r := range ev.EventData.Resources {
		h := host
		if h == "" {
			// resource_url is HOST/PROJECT/REPO:TAG.
			h, _, _ = strings.Cut(r.ResourceURL, "/")
		}
		if h == "" || full == "" {
			continue
		}
		if p, ok := push(h+"/"+full, r.Tag); ok {
			d.Pushes = append(d.Pushes, p)
		}
	}
	if len(d.Pushes) == 0 && host == "" {
		d.Note = "no tagged resource with a resource_url in it; set webhooks.harborHost in the config"
	}
	return nil
}
