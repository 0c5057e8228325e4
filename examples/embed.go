// Package examples ships the example configuration, embedded so that
// `deploybot chat --demo` runs with no files around it.
package examples

import _ "embed"

// Packit is examples/packit.yaml: the packit layout the demo cluster is built from.
//
//go:embed packit.yaml
var Packit []byte

// Kubernetes is examples/kubernetes.yaml: a small shop on plain Kubernetes
// (no ImageStreams), for `deploybot chat --demo --config examples/kubernetes.yaml`.
//
//go:embed kubernetes.yaml
var Kubernetes []byte
