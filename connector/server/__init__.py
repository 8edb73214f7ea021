"""The top: the gunicorn worker the connector runs on (nothing imports it; gunicorn.conf.py
names it)."""
