// Package deploy holds the tests of deploybot's deployment artifacts that
// need no cluster: the Dockerfile (parsed with BuildKit's own parser, and its
// go build command run to show the binary it makes is static and stripped)
// and the Helm chart (linted and rendered with the pinned Helm CLI, and the
// rendered objects checked). The chart applied to a real control plane is
// tested in e2e/chart_test.go. The package has no code of its own.
package deploy
