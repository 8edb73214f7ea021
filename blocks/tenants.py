"""Tenants: the accounts that own clients and share out message quotas."""

from connector.engine.registry import block
from schemas import results as r
from schemas import tenants as s

TENANT = "/api/v1/tenants/{id}"

block(
    "createTenant",
    "POST",
    "/api/v1/tenants",
    s.CreateTenant,
    "Creates a tenant with its own client and message quotas.",
    returns=r.Tenant,
)
block(
    "getTenants",
    "GET",
    "/api/v1/tenants",
    s.GetTenants,
    "Lists your tenants, optionally only the active or the inactive ones.",
    returns=[r.Tenant],
)
block(
    "getSingleTenant",
    "GET",
    TENANT,
    s.OneTenant,
    "Shows one tenant.",
    returns=r.Tenant,
)
block(
    "updateTenant",
    "PUT",
    TENANT,
    s.UpdateTenant,
    "Changes a tenant's name, description or quotas; only the arguments you give change.",
    returns=r.Tenant,
)
block(
    "deleteTenant",
    "DELETE",
    TENANT,
    s.OneTenant,
    "Deletes a tenant.",
    returns=r.Deleted,
)
