# syntax=docker/dockerfile:1
#
# probe, the health-probe sidecar image.
#
#   docker build -t probe:0.1.0 --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) .
#   docker run --rm -p 8080:8080 -e DATABASE_URL=... -e REDIS_URL=... probe:0.1.0
#
# The default config is baked in at /etc/probe/probe.yaml (PROBE_CONFIG points there).
# Replace it by mounting a file over that path, or point PROBE_CONFIG somewhere else.
# docs/deploy.md explains the stages and the expected image size.

ARG PYTHON_VERSION=3.11

# ---------------------------------------------------------------- builder
# Builds probe's wheel and installs it with its dependencies into a virtualenv, then
# strips debug symbols from the compiled extensions (asyncpg and aiohttp ship theirs:
# about 20 MB). The runtime stage copies only that virtualenv: no compiler, no pip
# cache, no source tree.
FROM python:${PYTHON_VERSION}-slim AS builder

RUN apt-get update \
 && apt-get install -y --no-install-recommends binutils \
 && rm -rf /var/lib/apt/lists/*

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Only what the wheel is built from; .dockerignore keeps the rest of the context out.
COPY pyproject.toml README.md ./
COPY probe/ probe/

# Dependencies come as wheels too; all of them publish manylinux wheels for CPython
# 3.11+, so nothing is compiled here. `--build-arg EXTRAS=otlp` bakes in the OTLP push
# (docs/metrics.md, about 14 MB more); the default image leaves it out.
ARG EXTRAS=""
RUN pip wheel --wheel-dir /wheels ".${EXTRAS:+[$EXTRAS]}" \
 && python -m venv --without-pip /opt/probe \
 && pip --python /opt/probe/bin/python install --no-index --find-links /wheels \
        "probe${EXTRAS:+[$EXTRAS]}" \
 && find /opt/probe -name '*.so' -exec strip --strip-unneeded {} + \
 && find /opt/probe \( -name '*.pyx' -o -name '*.pxd' -o -name '*.pyi' \) -delete

# ---------------------------------------------------------------- runtime
FROM python:${PYTHON_VERSION}-slim AS runtime

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=""

LABEL org.opencontainers.image.title="probe" \
      org.opencontainers.image.description="Health-probe sidecar: checks PostgreSQL, Redis, HTTP/TCP services, BullMQ queues and the container; serves /health /ready /live and /metrics; alerts to Slack and Alertmanager" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.base.name="docker.io/library/python:${PYTHON_VERSION}-slim"

# A fixed numeric uid, so Kubernetes `runAsNonRoot` can verify it without a passwd lookup.
RUN groupadd --system --gid 10001 probe \
 && useradd --system --uid 10001 --gid probe --home-dir /var/lib/probe --no-create-home \
            --shell /usr/sbin/nologin probe \
 && install -d -o probe -g probe -m 0750 /var/lib/probe

COPY --from=builder /opt/probe /opt/probe
# config/probe.yaml in the repo is a symlink; copy the file it points to.
COPY probe/default.yaml /etc/probe/probe.yaml

ENV PATH="/opt/probe/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PROBE_CONFIG=/etc/probe/probe.yaml \
    PROBE_STATE_FILE=/var/lib/probe/alert-state.json \
    PROBE_HISTORY=sqlite:///var/lib/probe/history.db

USER 10001:10001
WORKDIR /var/lib/probe

EXPOSE 8080

# /live answers from the agent's own progress, never from PostgreSQL or Redis, so a
# dependency outage cannot mark this container unhealthy. `probe ping` is stdlib-only
# and follows PROBE_LISTEN's port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["probe", "ping"]

# The agent stops scheduling, finishes in-flight checks and closes connections on SIGTERM.
STOPSIGNAL SIGTERM

ENTRYPOINT ["probe"]
CMD ["run"]
