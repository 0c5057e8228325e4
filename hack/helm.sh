#!/usr/bin/env bash
# helm.sh runs the Helm CLI pinned in hack/tools/helm/go.mod, building it once
# into a cache directory keyed by that version and the module's pins:
#
#   ${XDG_CACHE_HOME:-$HOME/.cache}/deploybot/helm/<version>-<sum>/helm
#
# then execs it with the given arguments, e.g.
#
#   bash hack/helm.sh lint charts/deploybot
#   bash hack/helm.sh template deploybot charts/deploybot -f values.yaml
#
# `bash hack/helm.sh --path` prints the binary's path instead (for tests).
# Build progress goes to stderr; a cold build takes about 2 minutes on 2 cores.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mod="${here}/tools/helm"
export GOWORK=off

version="$(cd "${mod}" && go list -m -f '{{.Version}}' helm.sh/helm/v3)"
sum="$(cat "${mod}/go.mod" "${mod}/go.sum" | sha256sum | cut -c1-10)"
dir="${XDG_CACHE_HOME:-${HOME}/.cache}/deploybot/helm/${version}-${sum}"
bin="${dir}/helm"

if [[ ! -x "${bin}" ]]; then
	mkdir -p "${dir}"
	# Concurrent test binaries may ask at once: one builds, the others wait.
	exec 9>"${dir}/.lock"
	flock 9
	if [[ ! -x "${bin}" ]]; then
		echo "helm.sh: building helm ${version} into ${dir}" >&2
		tmp="$(mktemp "${dir}/.helm.XXXXXX")"
		trap 'rm -f "${tmp}"' EXIT
		# helm's own Makefile sets the version through these variables.
		(cd "${mod}" && CGO_ENABLED=0 go build -trimpath -buildvcs=false \
			-ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=${version}" \
			-o "${tmp}" helm.sh/helm/v3/cmd/helm) >&2
		chmod 755 "${tmp}"
		mv "${tmp}" "${bin}"
		trap - EXIT
	fi
	exec 9>&-
fi

if [[ "${1:-}" == "--path" ]]; then
	echo "${bin}"
	exit 0
fi
exec "${bin}" "$@"
