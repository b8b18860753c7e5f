# syntax=docker/dockerfile:1
#
# backupd container image. Build from the repository root:
#
#   docker build -t backupd .
#   docker build --build-arg MARIADB_SERVER=false -t backupd:slim .
#
# The slim variant leaves out mariadb-server (about 150 MB): drills then need
# `scratch: { dsn: ... }` (a server where they may create and drop databases) instead of
# `scratch: embedded`, which starts a throwaway mariadbd inside the container.
#
# The binary is built by scripts/build.sh, the same script CI runs on every test run
# (scripts/test.sh builds and smoke-tests it), so this build step is exercised even where no
# container engine runs. Version, commit and date come from the .git directory in the build
# context, or from --build-arg VERSION=… COMMIT=… BUILD_DATE=… when the context has none.
#
# Nothing secret or site-specific is baked in. Mount at run time:
#   /etc/backupd/backupd.yaml   the config (listen: 0.0.0.0:9187, state_dir: /var/lib/backupd)
#   /etc/backupd/…              keys and secret files the config names (read-only)
#   /var/lib/backupd            state: alert incidents, spool, generated keys (a volume)
# and pass secrets the config reads as ${VAR} in the environment. See deploy/README.md.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=""
ARG COMMIT=""
ARG BUILD_DATE=""
RUN VERSION="$VERSION" COMMIT="$COMMIT" BUILD_DATE="$BUILD_DATE" scripts/build.sh -o /out/backupd \
 && /out/backupd version

FROM debian:bookworm-slim
ARG MARIADB_SERVER=true
# ca-certificates: https targets and SMTP with STARTTLS. tzdata: CRON_TZ= schedules (the binary
# embeds a copy too; this keeps `date` and the client tools right). mariadb-client, age, zstd:
# the by-hand restore path (`age -d -i key | zstd -d | mariadb`). mariadb-server: mariadbd and
# mariadb-install-db for `scratch: embedded` drills.
RUN set -eux; \
    server=""; \
    if [ "$MARIADB_SERVER" = "true" ]; then server="mariadb-server"; fi; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates tzdata mariadb-client age zstd $server; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --system --gid 10001 backupd; \
    useradd --system --uid 10001 --gid backupd --home-dir /var/lib/backupd --shell /usr/sbin/nologin backupd; \
    install -d -o backupd -g backupd -m 0700 /var/lib/backupd; \
    install -d -m 0755 /etc/backupd
COPY --from=build /out/backupd /usr/local/bin/backupd

# A numeric user, so that Kubernetes' runAsNonRoot can verify it without a passwd lookup.
USER 10001:10001
WORKDIR /var/lib/backupd
VOLUME ["/var/lib/backupd"]
EXPOSE 9187

# /healthz answers while the process serves; no curl in the image, backupd probes itself. The
# address must match listen: in the mounted config (the examples under deploy/ use 0.0.0.0:9187).
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
    CMD ["backupd", "healthcheck", "--addr", "127.0.0.1:9187"]

ENTRYPOINT ["backupd"]
CMD ["run", "--config", "/etc/backupd/backupd.yaml"]
