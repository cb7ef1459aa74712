# bonecds CDS Hooks service. Build: docker build -t bonecds .
# Run for a demo:  docker run -p 8099:8080 -e BONECDS_AUTH=dev bonecds   (tokens: docker exec <id> bonecds token)
# Run for real:    mount a trusted-clients file and set BONECDS_CLIENTS_FILE (authentication is on by default)
# The same image also runs the one-shot fixture loader (`bonecds load-fixtures ...`, see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed system account, so files in the data volume keep one owner across rebuilds.
RUN groupadd --system bonecds \
    && useradd --system --gid bonecds --home-dir /home/bonecds --create-home --shell /usr/sbin/nologin bonecds

WORKDIR /app
COPY . /app
RUN pip install --no-cache-dir . \
    && rm -rf /app/build /app/*.egg-info

# Created and chowned before VOLUME: a fresh named volume copies this directory, owner included.
RUN mkdir -p /var/lib/bonecds && chown bonecds:bonecds /var/lib/bonecds
VOLUME ["/var/lib/bonecds"]

ENV DATABASE_URL=sqlite:////var/lib/bonecds/bonecds.sqlite3 \
    BONECDS_PUBLIC_BASE_URL=http://localhost:8080 \
    BONECDS_DEV_KEY_FILE=/var/lib/bonecds/dev-client-key.json

USER bonecds
EXPOSE 8080

# The slim image has no curl; urlopen raises on connection errors and non-2xx answers, which exits non-zero.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]

CMD ["bonecds", "serve", "--host", "0.0.0.0", "--port", "8080"]
