"""Every InstaMsg block, one module per resource. Importing this package registers them."""

from blocks import auth, clients, config, files, messages, tenants  # noqa: F401
