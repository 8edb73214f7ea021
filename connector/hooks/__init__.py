"""A face for webhook senders: a stored block call that a sender reaches at its own URL, its
signature checked on the raw body, its payload mapped to the block's arguments, and each
delivery run once under its delivery id (the engine's Idempotency-Key rules, in the hook's
own scope). No web framework here: connector/web/hooks.py and the CLI are its faces."""
