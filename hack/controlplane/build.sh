#!/usr/bin/env bash
# build.sh builds the local test control plane (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl, kwok) from the Go modules
# pinned in hack/tools/go.mod and hack/tools/etcd/go.mod, into a cache directory
# keyed by those versions:
#
#   ${XDG_CACHE_HOME:-$HOME/.cache}/deploybot/controlplane/<key>/bin
#
# It also copies kwok's "fast" node and pod stage files from the kwok module
# into <key>/stages. If every binary already exists nothing is built.
#
# Progress goes to stderr; the last line on stdout is the bin directory.
# A cold build takes about 9 minutes on 2 cores.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tools="$(cd "${here}/../tools" && pwd)"
export GOWORK=off

log() { echo "controlplane/build.sh: $*" >&2; }

modversion() { # dir module
	(cd "$1" && go list -m -f '{{.Version}}' "$2")
}

k8s_version="$(modversion "${tools}" k8s.io/kubernetes)"
kwok_version="$(modversion "${tools}" sigs.k8s.io/kwok)"
etcd_version="$(modversion "${tools}/etcd" go.etcd.io/etcd/server/v3)"
go_version="$(go env GOVERSION)"
# The hash covers the full dependency pins, so editing go.mod/go.sum (or the
# etcd main) yields a new cache entry instead of stale binaries.
# layout names the cache directory layout this script produces; bump it when
# the layout changes.
layout=2
sum="$( (echo "layout=${layout}" && cat "${tools}/go.mod" "${tools}/go.sum" \
	"${tools}/etcd/go.mod" "${tools}/etcd/go.sum" "${tools}/etcd/main.go") |
	sha256sum | cut -c1-10)"
key="k8s-${k8s_version}_etcd-${etcd_version}_kwok-${kwok_version}_${go_version}_${sum}"

cache_root="${XDG_CACHE_HOME:-${HOME}/.cache}/deploybot/controlplane"
dir="${cache_root}/${key}"
bin="${dir}/bin"
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)

complete() {
	local b
	for b in "${binaries[@]}"; do
		[[ -x "${bin}/${b}" ]] || return 1
	done
	[[ -f "${dir}/stages/node/node-initialize.yaml" && -f "${dir}/stages/pod/pod-ready.yaml" ]] || return 1
}

if complete; then
	log "up to date: ${dir}"
	echo "${bin}"
	exit 0
fi

mkdir -p "${cache_root}"
# Several test binaries may ask for the control plane at once (go test ./...):
# serialise builds, and re-check after taking the lock.
exec 9>"${cache_root}/.${key}.lock"
log "waiting for build lock ${cache_root}/.${key}.lock"
flock 9
if complete; then
	log "built by another process: ${dir}"
	echo "${bin}"
	exit 0
fi

start=${SECONDS}
tmp="$(mktemp -d "${cache_root}/.build-${key}.XXXXXX")"
trap 'rm -rf "${tmp}"' EXIT
mkdir -p "${tmp}/bin" "${tmp}/stages/node" "${tmp}/stages/pod"

version_pkg=k8s.io/component-base/version
minor="${k8s_version#v*.}"
minor="${minor%%.*}"
major="${k8s_version#v}"
major="${major%%.*}"
ldflags="-s -w \
 -X ${version_pkg}.gitVersion=${k8s_version} \
 -X ${version_pkg}.gitMajor=${major} \
 -X ${version_pkg}.gitMinor=${minor} \
 -X ${version_pkg}.gitTreeState=clean"

log "building kube-apiserver, kube-controller-manager, kube-scheduler, kubectl ${k8s_version} and kwok ${kwok_version} (cold: ~9 min on 2 cores)"
(cd "${tools}" && go build -trimpath -buildvcs=false -ldflags "${ldflags}" -o "${tmp}/bin/" \
	k8s.io/kubernetes/cmd/kube-apiserver \
	k8s.io/kubernetes/cmd/kube-controller-manager \
	k8s.io/kubernetes/cmd/kube-scheduler \
	k8s.io/kubernetes/cmd/kubectl \
	sigs.k8s.io/kwok/cmd/kwok) >&2

log "building etcd ${etcd_version}"
(cd "${tools}/etcd" && go build -trimpath -buildvcs=false -ldflags "-s -w" -o "${tmp}/bin/etcd" .) >&2

kwok_dir="$(cd "${tools}" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
if [[ -z "${kwok_dir}" || ! -d "${kwok_dir}/kustomize/stage" ]]; then
	(cd "${tools}" && go mod download sigs.k8s.io/kwok) >&2
	kwok_dir="$(cd "${tools}" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
fi
# The stages kwok's own "fast" kustomization combines: node/fast, pod/fast and
# the node heartbeat that keeps a long-running node's status fresh.
for stage in node/fast node/heartbeat-with-lease pod/fast; do
	kind="${stage%%/*}"
	cp "${kwok_dir}/kustomize/stage/${stage}/"*.yaml "${tmp}/stages/${kind}/"
done
# kustomization.yaml is not a Stage; kwok's --config takes Stage documents only.
rm -f "${tmp}/stages/"*/kustomization.yaml
chmod -R u+w "${tmp}/stages"

chmod 755 "${tmp}"
# Publish atomically: a reader sees either nothing or a complete directory.
rm -rf "${dir}"
mv "${tmp}" "${dir}"
trap - EXIT
log "built ${dir} in $((SECONDS - start))s"
echo "${bin}"
