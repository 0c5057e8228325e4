#!/usr/bin/env bash
# build.sh builds the CNCF Distribution registry (cmd/registry of
# github.com/distribution/distribution/v3, pinned in hack/tools/registry/go.mod)
# for deploybot's tests, into a cache directory keyed by that version:
#
#   ${XDG_CACHE_HOME:-$HOME/.cache}/deploybot/registry/<key>/bin/registry
#
# If the binary already exists nothing is built.
#
# Progress goes to stderr; the last line on stdout is the binary's path.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tools="$(cd "${here}/../tools/registry" && pwd)"
export GOWORK=off

log() { echo "registry/build.sh: $*" >&2; }

pkg=github.com/distribution/distribution/v3
version="$(cd "${tools}" && go list -m -f '{{.Version}}' "${pkg}")"
go_version="$(go env GOVERSION)"
# The hash covers the full dependency pins, so editing go.mod/go.sum yields a
# new cache entry instead of a stale binary. layout names the cache directory
# layout this script produces; bump it when the layout changes.
layout=1
sum="$( (echo "layout=${layout}" && cat "${tools}/go.mod" "${tools}/go.sum") |
	sha256sum | cut -c1-10)"
key="distribution-${version}_${go_version}_${sum}"

cache_root="${XDG_CACHE_HOME:-${HOME}/.cache}/deploybot/registry"
dir="${cache_root}/${key}"
bin="${dir}/bin/registry"

if [[ -x "${bin}" ]]; then
	log "up to date: ${dir}"
	echo "${bin}"
	exit 0
fi

mkdir -p "${cache_root}"
# Several test binaries may ask for the registry at once (go test ./...):
# serialise builds, and re-check after taking the lock.
exec 9>"${cache_root}/.${key}.lock"
log "waiting for build lock ${cache_root}/.${key}.lock"
flock 9
if [[ -x "${bin}" ]]; then
	log "built by another process: ${dir}"
	echo "${bin}"
	exit 0
fi

start=${SECONDS}
tmp="$(mktemp -d "${cache_root}/.build-${key}.XXXXXX")"
trap 'rm -rf "${tmp}"' EXIT
mkdir -p "${tmp}/bin"

# The same version stamps Distribution's Makefile sets, so `registry --version`
# and the registry's logs name the pinned release.
ldflags="-s -w \
 -X ${pkg}/version.version=${version} \
 -X ${pkg}/version.mainpkg=${pkg}"

log "building the Distribution registry ${version}"
(cd "${tools}" && go build -trimpath -buildvcs=false -ldflags "${ldflags}" -o "${tmp}/bin/registry" \
	"${pkg}/cmd/registry") >&2

chmod 755 "${tmp}"
# Publish atomically: a reader sees either nothing or a complete directory.
rm -rf "${dir}"
mv "${tmp}" "${dir}"
trap - EXIT
log "built ${dir} in $((SECONDS - start))s"
echo "${bin}"
