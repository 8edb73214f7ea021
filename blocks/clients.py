"""Clients: the devices and users of a tenant, their tokens, logs, sessions and metrics."""

from connector.registry import block
from schemas import clients as s

CLIENTS = "/api/v1/tenants/{tenant_id}/clients"
CLIENT = CLIENTS + "/{client_id}"

block(
    "createClient",
    "POST",
    CLIENTS,
    s.CreateClient,
    "Creates a client (an IoT device or a user) in a tenant, with the topics it may use "
    "and its provisioning parameters.",
)
block(
    "getClients",
    "GET",
    CLIENTS,
    s.GetClients,
    "Lists a tenant's clients, optionally filtered by type, security and state.",
)
block("getSingleClient", "GET", CLIENT, s.OneClient, "Shows one client.")
block(
    "updateClient",
    "PUT",
    CLIENT,
    s.UpdateClient,
    "Changes a client; only the arguments you give change.",
)
block("deleteClient", "DELETE", CLIENT, s.OneClient, "Deletes a client.")
block(
    "getClientAuthToken",
    "GET",
    CLIENT + "/auth_token",
    s.OneClient,
    "Shows the auth token of a client of type user.",
)
block(
    "getClientInfo",
    "GET",
    CLIENT + "/info",
    s.OneClient,
    "Shows what InstaMsg knows about a client's connection and device.",
)
block(
    "getClientNetworkLogs",
    "GET",
    CLIENT + "/network_logs",
    s.GetClientNetworkLogs,
    "Lists the network information a client's library reported: useful to troubleshoot "
    "devices on a poor network.",
)
block(
    "getClientSessions",
    "GET",
    CLIENT + "/sessions",
    s.GetClientSessions,
    "Lists a client's sessions: when it connected and disconnected.",
)
block(
    "getClientMetrics",
    "GET",
    CLIENT + "/metrics",
    s.GetClientMetrics,
    "Shows a client's metrics summed up over the last day or month.",
)
block(
    "getClientLogs",
    "GET",
    CLIENT + "/logs",
    s.GetClientLogs,
    "Lists the logs of a client, written by the client itself or by InstaMsg: useful to "
    "see what happens at the device's end and at the server's.",
)
block(
    "updateClientAuthToken",
    "PUT",
    CLIENT + "/reset_auth_token",
    s.OneClient,
    "Gives a client a new auth token; the old one stops working.",
)
block(
    "updateClientCertificate",
    "PUT",
    CLIENT + "/reset_certificate",
    s.OneClient,
    "Gives a client a new certificate; the old one stops working.",
)
