//go:build tools

// Package tools records the Distribution registry as a dependency of this
// module, so that `go build github.com/distribution/distribution/v3/cmd/registry`
// builds the pinned version.
package tools

import _ "github.com/distribution/distribution/v3/cmd/registry"
