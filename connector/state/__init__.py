"""Below the engine: what outlives a call, Idempotency-Keys and shared managed tokens, in a SQLite
file or in Redis."""
