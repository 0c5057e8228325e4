package fakeopenshift

import (
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestParseReference(t *testing.T) {
	d := Digest("quay.io/packit/packit-worker", "prod", 1)
	tests := []struct {
		name              string
		ref               string
		repo, tag, digest string
		wantErr           bool
	}{
		{name: "repo and tag", ref: "quay.io/packit/packit-worker:prod", repo: "quay.io/packit/packit-worker", tag: "prod"},
		{name: "repo and digest", ref: "quay.io/packit/packit-worker@" + d, repo: "quay.io/packit/packit-worker", digest: d},
		{name: "tag and digest pulls by digest", ref: "quay.io/packit/w:prod@" + d, repo: "quay.io/packit/w", digest: d},
		{name: "no tag means latest", ref: "quay.io/packit/w", repo: "quay.io/packit/w", tag: "latest"},
		{name: "registry port is not a tag", ref: "localhost:5000/packit/w", repo: "localhost:5000/packit/w", tag: "latest"},
		{name: "registry port and tag", ref: "localhost:5000/packit/w:stg", repo: "localhost:5000/packit/w", tag: "stg"},
		{name: "empty", ref: "", wantErr: true},
		{name: "short digest", ref: "quay.io/packit/w@sha256:abc", wantErr: true},
		{name: "uppercase digest", ref: "quay.io/packit/w@" + strings.ToUpper(d), wantErr: true},
		{name: "empty tag", ref: "quay.io/packit/w:", wantErr: true},
		{name: "empty repository", ref: ":prod", wantErr: true},
		{name: "whitespace", ref: "quay.io/packit/w :prod", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo, tag, digest, err := ParseReference(tt.ref)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseReference(%q) error = %v, wantErr %v", tt.ref, err, tt.wantErr)
			}
			if repo != tt.repo || tag != tt.tag || digest != tt.digest {
				t.Errorf("ParseReference(%q) = %q, %q, %q; want %q, %q, %q", tt.ref, repo, tag, digest, tt.repo, tt.tag, tt.digest)
			}
		})
	}
}

func FuzzParseReference(f *testing.F) {
	for _, s := range []string{
		"quay.io/packit/packit-worker:prod",
		"quay.io/packit/w@" + Digest("quay.io/packit/w", "prod", 1),
		"localhost:5000/x",
		"a:b:c",
		"@sha256:",
		"/x:y",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		repo, tag, digest, err := ParseReference(ref)
		if err != nil {
			return
		}
		if repo == "" {
			t.Fatalf("ParseReference(%q) accepted an empty repository", ref)
		}
		if (tag == "") == (digest == "") {
			t.Fatalf("ParseReference(%q) = tag %q digest %q: want exactly one", ref, tag, digest)
		}
		if digest != "" && !digestRE.MatchString(digest) {
			t.Fatalf("ParseReference(%q) returned malformed digest %q", ref, digest)
		}
	})
}

func TestRegistryLookup(t *testing.T) {
	const repo = "quay.io/packit/packit-service"
	d1, d2 := Digest(repo, "prod", 1), Digest(repo, "prod", 2)
	reg := NewRegistry()
	reg.Push(repo, "prod", d1)
	reg.Push(repo, "prod", d2) // the tag moves on; d1 stays pullable by digest
	reg.Push(repo, "stg", Digest(repo, "stg", 1))
	reg.Fail(repo+":stg", metav1.StatusReasonUnauthorized)

	tests := []struct {
		name       string
		ref        string
		want       string
		wantReason metav1.StatusReason
	}{
		{name: "tag resolves to its latest push", ref: repo + ":prod", want: d2},
		{name: "older digest still pullable", ref: repo + "@" + d1, want: d1},
		{name: "unknown tag is manifest unknown", ref: repo + ":dev", wantReason: metav1.StatusReasonNotFound},
		{name: "unknown digest", ref: repo + "@" + Digest(repo, "prod", 9), wantReason: metav1.StatusReasonNotFound},
		{name: "digest of another repository", ref: "quay.io/packit/tokman@" + d1, wantReason: metav1.StatusReasonNotFound},
		{name: "injected unauthorized", ref: repo + ":stg", wantReason: metav1.StatusReasonUnauthorized},
		{name: "malformed reference", ref: repo + "@sha256:12", wantReason: metav1.StatusReasonBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := reg.Lookup(tt.ref)
			if tt.wantReason != "" {
				if apierrors.ReasonForError(err) != tt.wantReason {
					t.Fatalf("Lookup(%q) error = %v, want reason %s", tt.ref, err, tt.wantReason)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Lookup(%q) = %q, %v; want %q", tt.ref, got, err, tt.want)
			}
		})
	}

	reg.Recover(repo + ":stg")
	if _, err := reg.Lookup(repo + ":stg"); err != nil {
		t.Errorf("Lookup after Recover: %v", err)
	}
}

func TestDigestIsDeterministic(t *testing.T) {
	a, b := Digest("quay.io/packit/x", "prod", 1), Digest("quay.io/packit/x", "prod", 1)
	if a != b || !digestRE.MatchString(a) {
		t.Fatalf("Digest = %q and %q, want equal sha256 digests", a, b)
	}
	if a == Digest("quay.io/packit/x", "prod", 2) {
		t.Fatal("Digest does not depend on n")
	}
}
