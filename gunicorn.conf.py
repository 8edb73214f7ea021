"""gunicorn settings, shared by `make run`, the Dockerfile and the tests that start a server.

Every value can be changed through the environment; the defaults are for a
small machine. Threads let one worker wait on many slow InstaMsg answers.
"""

import multiprocessing
import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8080')}"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "16"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = 20
keepalive = 5
# Build the app once in the master: one start-up log line, and workers fork ready to serve.
# Nothing opened at import (sockets, SQLite connections) is used across the fork.
preload_app = True
# The connector writes its own structured access line for every request.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "warning")
