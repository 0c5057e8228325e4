# deploybot's container image: `deploybot serve`, a static Go binary on a
# minimal non-root base. Build from the repository root:
#
#   docker build --build-arg VERSION="$(git describe --always --dirty)" -t deploybot .
#
# deploy/dockerfile_test.go parses this file (BuildKit's own parser) and checks
# the stages, the pins, the numeric user and the build command, and runs that
# go build command to show it makes a static, stripped binary.

# Build stage: the Go toolchain image at the exact Go version go.mod names, so
# the binary is built with the same standard library the tests ran against.
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
# Modules first, in their own layer: a source edit does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# CGO_ENABLED=0: a static binary that needs no libc in the run stage.
# -trimpath: no build machine paths in the binary (reproducible builds).
# -s -w: no symbol table or DWARF; about a third smaller, and nothing in the
# image runs a debugger.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/deploybot ./cmd/deploybot

# Run stage: distroless static, nonroot variant, rather than UBI micro. The
# binary needs no libc, shell or package manager, only CA certificates (the
# Slack and Discord APIs, the Kubernetes API server) and tzdata (schedules in
# a time zone), which distroless static ships in about 2 MB; UBI micro adds a
# bash, coreutils and an RPM database we would never use, and its tzdata is
# not guaranteed. Nothing here runs a shell: the chart's probes are HTTP and
# its preStop hook is the kubelet's own sleep.
#
# Pinned by digest (the tag says what it is, the digest which one). The digest
# was copied from public Dockerfiles that pin this tag; it could not be
# checked against the registry from here. Refresh it with
#   crane digest gcr.io/distroless/static-debian12:nonroot
FROM gcr.io/distroless/static-debian12:nonroot@sha256:d093aa3e30dbadd3efe1310db061a14da60299baff8450a17fe0ccc514a16639
COPY --from=build /out/deploybot /usr/local/bin/deploybot
# 65532 is distroless's "nonroot". Numeric, so the kubelet can verify
# runAsNonRoot without reading /etc/passwd. OpenShift's restricted-v2 SCC runs
# the container as an arbitrary UID of the namespace's range instead, which
# works as well: the binary writes nowhere but the emptyDir the chart mounts.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/deploybot"]
CMD ["serve", "--config", "/etc/deploybot/config.yaml"]
