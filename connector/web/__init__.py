"""The HTTP face, on Flask: the routes, request bodies, API keys, envelopes as responses, the
playground and rate limits."""
