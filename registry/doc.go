// Package registry reads container image registries for deploybot: it
// resolves repo:tag to the digest the registry serves now, with one HEAD
// request (Docker Hub counts a manifest GET as a pull, a HEAD is free), and
// reads the OCI labels that say what an image was built from
// (org.opencontainers.image.revision, .source, .created), cached by digest
// because they cost GETs and never change for a digest.
//
// Credentials come from a Docker config JSON file (the format of a
// kubernetes.io/dockerconfigjson pull secret), per registry; registries it
// does not name are read anonymously. Every registry has its own request
// limiter, and a registry that answers 429 is left alone until its
// Retry-After has passed. Errors are written for a person reading them in
// chat and can be told apart with errors.Is (ErrNotFound, ErrDenied,
// ErrUnreachable) and errors.As (*RateLimitedError).
package registry
