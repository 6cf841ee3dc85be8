# gslb in a FROM scratch image: the static binary and nothing else.
#
# Build the binary first, then the image (this needs no network):
#
#   make image                      # = the two steps below
#   CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o dist/image/gslb ./cmd/gslb
#   podman build -f Dockerfile -t gslb dist/image     # or docker build
#
# Run a node (its config and zones mounted read-only, its state in a volume):
#
#   podman run -d --name gslb -p 53:5353/udp -p 53:5353/tcp \
#     -v ./examples/cluster:/etc/gslb:ro -v gslb-data:/var/lib/gslb \
#     gslb serve --config /etc/gslb/us-east-1.yaml
#
# The node listens on unprivileged ports inside the container (map 53 to
# them outside): it runs as an unprivileged user and needs no capability.
FROM scratch
COPY gslb /usr/bin/gslb
# The data directory, writable by the image's user (a named volume mounted
# here inherits the owner).
COPY --chown=65532:65532 data/ /var/lib/gslb/
USER 65532:65532
# DNS (UDP and TCP), admin (metrics, API, dashboard), Raft, region proxy.
EXPOSE 5353/udp 5353/tcp 9153/tcp 7946/tcp 8080/tcp
VOLUME ["/var/lib/gslb"]
ENTRYPOINT ["/usr/bin/gslb"]
CMD ["--help"]
