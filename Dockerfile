# The connector image: the same gunicorn command and config file as `make run`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=8080 \
    INSTAMSG_SANDBOX=1 \
    INSTAMSG_DATA_DIR=/app/data

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

RUN useradd --create-home --uid 10001 connector
COPY --chown=connector:connector . .
RUN mkdir -p /app/data && chown connector:connector /app/data
USER connector

EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8080') + '/healthz', timeout=4)"

CMD ["gunicorn", "-c", "gunicorn.conf.py", "app:serve()"]
