# The connector image: the same gunicorn command and config file as `make run`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=8080 \
    INSTAMSG_SANDBOX=1 \
    INSTAMSG_DATA_DIR=/app/data

WORKDIR /app
COPY requirements.txt .
# Where pip reads its settings during the build when a machine needs some (a mirror, a proxy's
# CA bundle), mounted for the build only: .ci/build-image passes it. Unset, pip's defaults.
ARG PIP_CONFIG_FILE
RUN pip install --no-cache-dir -r requirements.txt

# The data directory (the SQLite stores) is written by the user everything runs as.
RUN useradd --create-home --uid 10001 connector \
    && mkdir -p /app/data && chown connector:connector /app/data
USER connector

EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8080') + '/healthz', timeout=4)"

CMD ["gunicorn", "-c", "gunicorn.conf.py", "app:serve()"]

# The code last: a change to it rebuilds this one layer, not the ones above. It stays root's:
# the connector's user reads it and writes only its data directory.
COPY . .
