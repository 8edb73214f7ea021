"""Arguments of the client configuration blocks."""

from schemas.base import ClientScoped
from schemas.fields import JSON


class UpdateClientConfig(ClientScoped):
    config = JSON(
        "The configuration as a JSON object of keys and values, defined by your client "
        'application, e.g. {"PING_REQ_INTERVAL": 180}.',
        required=True,
        example={"PING_REQ_INTERVAL": 180},
    )
