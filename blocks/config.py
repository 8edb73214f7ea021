"""A client's configuration: a JSON object of keys and values the client application defines."""

from connector.engine.registry import block
from schemas import clients
from schemas import config as s
from schemas import results as r

CONFIG = "/api/v1/tenants/{tenant_id}/clients/{client_id}/config"

block(
    "getClientConfig",
    "GET",
    CONFIG,
    clients.OneClient,
    "Shows a client's configuration.",
    returns=r.Config,
)
block(
    "updateClientConfig",
    "PUT",
    CONFIG,
    s.UpdateClientConfig,
    "Replaces a client's configuration with the JSON object you give.",
    returns=r.Config,
)
block(
    "deleteClientConfig",
    "DELETE",
    CONFIG,
    clients.OneClient,
    "Deletes a client's configuration.",
    returns=r.Done,
)
