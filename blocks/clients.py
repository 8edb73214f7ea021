"""Clients: the devices and users of a tenant, their tokens, logs, sessions and metrics."""

from connector.engine.registry import block
from schemas import clients as s
from schemas import results as r

CLIENTS = "/api/v1/tenants/{tenant_id}/clients"
CLIENT = CLIENTS + "/{client_id}"

block(
    "createClient",
    "POST",
    CLIENTS,
    s.CreateClient,
    "Creates a client (an IoT device or a user) in a tenant, with the topics it may use "
    "and its provisioning parameters.",
    returns=r.Client,
)
block(
    "getClients",
    "GET",
    CLIENTS,
    s.GetClients,
    "Lists a tenant's clients, optionally filtered by type, security and state.",
    returns=[r.Client],
)
block(
    "getSingleClient",
    "GET",
    CLIENT,
    s.OneClient,
    "Shows one client.",
    returns=r.Client,
)
block(
    "updateClient",
    "PUT",
    CLIENT,
    s.UpdateClient,
    "Changes a client; only the arguments you give change.",
    returns=r.Client,
)
block(
    "deleteClient",
    "DELETE",
    CLIENT,
    s.OneClient,
    "Deletes a client.",
    returns=r.Deleted,
)
block(
    "getClientAuthToken",
    "GET",
    CLIENT + "/auth_token",
    s.OneClient,
    "Shows the auth token of a client of type user.",
    returns=r.ClientAuthToken,
)
block(
    "getClientInfo",
    "GET",
    CLIENT + "/info",
    s.OneClient,
    "Shows what InstaMsg knows about a client's connection and device.",
    returns=r.ClientInfo,
)
block(
    "getClientNetworkLogs",
    "GET",
    CLIENT + "/network_logs",
    s.GetClientNetworkLogs,
    "Lists the network information a client's library reported: useful to troubleshoot "
    "devices on a poor network.",
    returns=[r.NetworkLog],
)
block(
    "getClientSessions",
    "GET",
    CLIENT + "/sessions",
    s.GetClientSessions,
    "Lists a client's sessions: when it connected and disconnected.",
    returns=[r.Session],
)
block(
    "getClientMetrics",
    "GET",
    CLIENT + "/metrics",
    s.GetClientMetrics,
    "Shows a client's metrics summed up over the last day or month.",
    returns=r.Metrics,
)
block(
    "getClientLogs",
    "GET",
    CLIENT + "/logs",
    s.GetClientLogs,
    "Lists the logs of a client, written by the client itself or by InstaMsg: useful to "
    "see what happens at the device's end and at the server's.",
    returns=[r.LogLine],
)
block(
    "updateClientAuthToken",
    "PUT",
    CLIENT + "/reset_auth_token",
    s.OneClient,
    "Gives a client a new auth token; the old one stops working.",
    idempotent=False,  # each call makes a new one
    returns=r.ClientAuthToken,
)
block(
    "updateClientCertificate",
    "PUT",
    CLIENT + "/reset_certificate",
    s.OneClient,
    "Gives a client a new certificate; the old one stops working.",
    idempotent=False,  # each call makes a new one
    returns=r.ClientCertificate,
)
