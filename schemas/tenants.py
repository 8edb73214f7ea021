"""Arguments of the tenant blocks."""

from schemas.base import Bearer, sorting
from schemas.fields import Boolean, Id, Number, String


def tenant_fields(required: bool):
    """``name, description, max_clients, max_messages``: required to create, optional to update."""
    return (
        String("The tenant's name, for example Company 1.", required=required, example="Company 1"),
        String("A short description of the tenant.", example="Sensors of the north farm"),
        Number(
            "How many clients this tenant may create: a whole number, 0 or more.",
            minimum=0,
            data_key="maxClients",
            required=required,
            example=10,
        ),
        Number(
            "How many messages all clients of this tenant may send together: a whole number, "
            "0 or more. Use it to share out the messages your account has bought.",
            minimum=0,
            data_key="maxMessages",
            required=required,
            example=10000,
        ),
    )


class CreateTenant(Bearer):
    name, description, max_clients, max_messages = tenant_fields(required=True)


class GetTenants(Bearer):
    active = Boolean(
        "true lists only active tenants, false only inactive ones; leave it empty for both."
    )
    sort_by, sort_order = sorting(
        "id", "name", "created_at", "updated_at", "max_clients", "max_messages"
    )


class OneTenant(Bearer):
    id = Id("The tenant's ID (id in createTenant's result).", required=True)


class UpdateTenant(OneTenant):
    name, description, max_clients, max_messages = tenant_fields(required=False)
    at_least_one = ("name", "description", "max_clients", "max_messages")
