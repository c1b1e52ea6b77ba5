# syntax=docker/dockerfile:1
# tenantgate: a static Go binary on distroless (no shell, no package manager,
# runs as uid 65532). Build:   docker build -t tenantgate .
# The fake AWS endpoints for local use: docker build --target fakeaws -t tenantgate-fakeaws .

FROM golang:1.26 AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
ARG DATE=unknown
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    make build BIN=/out VERSION="${VERSION}" COMMIT="${COMMIT}" DATE="${DATE}"

# Local fake STS + Bedrock runtime (verifies SigV4). Not for production.
FROM gcr.io/distroless/static-debian12:nonroot AS fakeaws
COPY --from=build /out/fakeaws /fakeaws
USER 65532:65532
ENTRYPOINT ["/fakeaws"]

# Distroless has no shell or curl, so there is no Docker HEALTHCHECK here:
# probe GET :9192/healthz (liveness) and :9192/readyz (readiness) from the
# orchestrator, or use the grpc.health.v1 service on :9191.
# The bundled examples/tenantgate.yaml serves gRPC on 0.0.0.0:9191 with mutual
# TLS: mount tenantgate-server.{crt,key} and the link CA tenantgate-ca.crt at
# /etc/tenantgate/tls (scripts/dev-certs.sh makes local ones), or mount a config
# of your own (127.0.0.1 beside Envoy, or unix:/path on a shared volume).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tenantgate /tenantgate
COPY examples/tenantgate.yaml /etc/tenantgate/tenantgate.yaml
USER 65532:65532
EXPOSE 9191 9192
ENTRYPOINT ["/tenantgate"]
CMD ["serve", "--config", "/etc/tenantgate/tenantgate.yaml"]
