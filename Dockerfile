# bonecds CDS Hooks service. Build: docker build -t bonecds .
# Run for a demo:  docker run -p 8099:8080 -e BONECDS_AUTH=dev -e BONECDS_PUBLIC_BASE_URL=http://localhost:8099 bonecds
#                  (tokens: docker exec <id> bonecds token --base-url http://localhost:8099)
# Run for real:    mount a trusted-clients file and set BONECDS_CLIENTS_FILE, BONECDS_PUBLIC_BASE_URL (the
#                  URL EHRs call, the tokens' audience) and DATABASE_URL (authentication is on by default)
# The same image also runs the one-shot fixture loader (see docker-compose.yml).
#
# The base image is pinned by version and by digest: the multi-platform index digest of
# python:3.11.14-slim-bookworm as other projects pin it (not checked against the registry from here;
# check it once, and before moving to a newer patch release, with
#   docker buildx imagetools inspect python:3.11.X-slim-bookworm      (the "Digest:" line)
# and change PYTHON_IMAGE here, or pass --build-arg PYTHON_IMAGE=... to review one first).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

# --- build stage: the bonecds wheel only (build tools stay here) -------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
# The build backend pyproject.toml asks for, pinned (pip would otherwise fetch the newest).
RUN pip install setuptools==80.9.0
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
COPY hooks ./hooks
COPY fixtures ./fixtures
RUN pip wheel --no-deps --no-build-isolation --wheel-dir /wheels .

# --- runtime stage -----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

# A fixed system account, so files in the data volume keep one owner across rebuilds.
RUN groupadd --system bonecds \
    && useradd --system --gid bonecds --home-dir /home/bonecds --create-home --shell /usr/sbin/nologin bonecds

WORKDIR /app
# Dependencies first, from the lock of every runtime package (transitive ones included, no test
# tools), so this layer is rebuilt only when pyproject.toml or constraints.txt change, never for a
# source edit.
COPY pyproject.toml constraints.txt ./
RUN pip install --no-deps -r constraints.txt
# Then the service itself; --no-deps: everything it needs is already installed, at the locked versions.
COPY --from=build /wheels /wheels
RUN pip install --no-deps /wheels/*.whl && rm -rf /wheels && pip check

# Runtime data (the development key, and the SQLite database if DATABASE_URL names it there) lives in
# a directory made for it; created and chowned before VOLUME, so a fresh named volume copies it,
# owner included. SQLite is the demo default only: an SQLite file is per machine, and in an anonymous
# volume it is gone with the container, so production sets DATABASE_URL to PostgreSQL (README
# "Docker image").
RUN mkdir -p /var/lib/bonecds && chown bonecds:bonecds /var/lib/bonecds
VOLUME ["/var/lib/bonecds"]

# PROMETHEUS_MULTIPROC_DIR: gunicorn's workers share their metrics through this directory, so a
# scrape reports every worker; it is on the container's own filesystem (not the volume) and
# `bonecds serve` clears it at start, so counters do not survive a restart. No public base URL is
# baked in: it is the URL EHRs use, which only the deployment knows (unset by default).
ENV DATABASE_URL=sqlite:////var/lib/bonecds/bonecds.sqlite3 \
    BONECDS_DEV_KEY_FILE=/var/lib/bonecds/dev-client-key.json \
    PROMETHEUS_MULTIPROC_DIR=/tmp/bonecds-metrics
RUN mkdir -p /tmp/bonecds-metrics && chown bonecds:bonecds /tmp/bonecds-metrics

USER bonecds
EXPOSE 8080

# The slim image has no curl; urlopen raises on connection errors and non-2xx answers, which exits non-zero.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]

CMD ["bonecds", "serve", "--host", "0.0.0.0", "--port", "8080"]
