package plan

import "strings"

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
