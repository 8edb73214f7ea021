"""The base under every layer: JSON log lines, Prometheus metrics, the system's poll, and the
gunicorn worker (which nothing imports: gunicorn.conf.py names it)."""
