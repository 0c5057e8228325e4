package plan

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// IsDigestRef reports whether ref names an image by digest (repo@sha256:...).
func IsDigestRef(ref string) bool { return strings.Contains(ref, "@sha256:") }

// ShortDigest shortens sha256:<64 hex> to its first 12 hex characters for display.
func ShortDigest(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		d = d[:12]
	}
	return d
}

// ShortSHA abbreviates a git commit SHA to 7 characters, as git log
// --oneline does.
func ShortSHA(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

// IsDigest reports whether d is a full sha256 digest, sha256:<64 hex>.
func IsDigest(d string) bool {
	hex, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(hex) != 64 {
		return false
	}
	for _, r := range hex {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			return false
		}
	}
	return true
}

// Containers are the containers of a workload's pod spec whose image a
// plain Kubernetes Plan sets: the named one, or every one whose image is from
// repo. It fails when there is none, so a Plan never names a workload it
// would not change.
func Containers(images map[string]string, container, repo string) ([]string, error) {
	if container != "" {
		if _, ok := images[container]; !ok {
			return nil, fmt.Errorf("it has no container %q (it has %s)", container, strings.Join(slices.Sorted(maps.Keys(images)), ", "))
		}
		return []string{container}, nil
	}
	var out []string
	for name, image := range images {
		if Repository(image) == repo {
			out = append(out, name)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("none of its containers runs an image from %s; name the container in the config (workloads[].container)", repo)
	}
	slices.Sort(out)
	return out, nil
}

// Repository is the repository of an image reference: without digest and
// tag (a port in the registry host is kept).
func Repository(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref
}
