// Package layers pins the direction of deploybot's imports in a test, so
// the structure README.md's code map describes stays true: the packages that
// only talk about Plans link no client-go, auth does not reach into the
// grammar, and cluster/ holds no scaffolding. The package has no code of
// its own.
package layers
