"""What every block's argument schema shares.

Attribute names are the InstaMsg wire names (snake_case); ``data_key`` is the
argument name flow builders use (camelCase). Loading a block's arguments
therefore yields exactly the names that go upstream.
"""

from __future__ import annotations

from collections.abc import Mapping

from marshmallow import EXCLUDE, Schema, ValidationError, pre_load, validates_schema

from schemas.fields import AccessToken, Credentials, Datepicker, Id, Select


def _given(value) -> bool:
    return value is not None and value != ""


class BlockSchema(Schema):
    """Base of every argument schema.

    * ``""`` and ``null`` count as not given (flow builders send empty fields).
    * Unknown arguments are ignored: RapidAPI clients send extras such as ``to``.
    * ``at_least_one`` names arguments of which one must be given (updates).
    * ``one_of`` holds rules, each a choice between groups of arguments, one group to
      give whole: the ways to authenticate, uploadFile's file sources. The schema's
      validators check them; the manifest and OpenAPI document show them from here.
    """

    at_least_one: tuple[str, ...] = ()
    one_of: tuple[tuple[tuple[str, ...], ...], ...] = ()

    class Meta:
        unknown = EXCLUDE

    @pre_load
    def drop_blank(self, data, **kwargs):
        if not isinstance(data, Mapping):
            return data
        return {key: value for key, value in data.items() if _given(value)}

    @validates_schema
    def check_at_least_one(self, data, **kwargs):
        if not self.at_least_one:
            return
        keys = {self.fields[name].data_key or name: name for name in self.at_least_one}
        if not any(name in data for name in keys.values()):
            # One message under each of them: each is missing, and any one would do.
            message = "Give at least one of: " + ", ".join(keys) + "."
            raise ValidationError({key: [message] for key in keys})

    @validates_schema
    def check_time_window(self, data, **kwargs):
        start, end = data.get("start"), data.get("end")
        if start is not None and end is not None and end < start:
            raise ValidationError("Must not be before start.", field_name="end")


class Basic(BlockSchema):
    """The two OAuth2 calls authenticate with the app's key and secret."""

    client_key = Credentials(
        "The client key of your InstaMsg app.",
        data_key="clientKey",
        required=True,
        into="auth",
        example="demo-key",
    )
    client_secret = Credentials(
        "The client secret of your InstaMsg app.",
        data_key="clientSecret",
        required=True,
        into="auth",
        example="demo-secret",
    )


#: What a missing way to authenticate is called; counted as a missing required argument.
AUTH_MISSING = "Give accessToken, or clientKey and clientSecret."


class Bearer(BlockSchema):
    """Every /api/v1 call carries an OAuth2 access token: the caller's own, or one the
    connector gets (and renews) itself from the app's client key and secret."""

    # It travels in an HTTP header: visible ASCII only (found by fuzzing), no "Bearer ".
    access_token = AccessToken(
        "An access token from the getAccessToken block (access_token in its result), without "
        'a "Bearer " prefix. Or leave it out and give clientKey and clientSecret: the '
        "connector then gets and renews tokens itself.",
        data_key="accessToken",
        into="auth",
    )
    client_key = Credentials(
        "Instead of accessToken: your InstaMsg app's client key.",
        data_key="clientKey",
        into="auth",
        example="demo-key",
    )
    client_secret = Credentials(
        "Instead of accessToken: your InstaMsg app's client secret.",
        data_key="clientSecret",
        into="auth",
        example="demo-secret",
    )
    one_of = ((("access_token",), ("client_key", "client_secret")),)

    @validates_schema
    def check_auth(self, data, **kwargs):
        if "access_token" in data:
            return
        key, secret = "client_key" in data, "client_secret" in data
        if key and not secret:
            raise ValidationError(AUTH_MISSING, field_name="clientSecret")
        if secret and not key:
            raise ValidationError(AUTH_MISSING, field_name="clientKey")
        if not key:
            raise ValidationError(AUTH_MISSING, field_name="accessToken")


class TenantScoped(Bearer):
    tenant_id = Id(
        "The tenant's ID (id in createTenant's result).", data_key="tenantId", required=True
    )


class ClientScoped(TenantScoped):
    client_id = Id(
        "The client's ID (id in createClient's result).",
        data_key="clientId",
        required=True,
        example="cc9fec913fe65",
    )


def sorting(*by: str):
    """The optional sorting arguments of the list calls: ``sort_by, sort_order``.

    InstaMsg's docs name no sort fields; the options are the fields of the list's items
    that it can be sorted by (the sandbox sorts by exactly these), so that a misspelt one
    is refused before it leaves rather than by InstaMsg."""
    return (
        Select(
            "The field of the listed items to sort by.",
            options=list(by),
            data_key="sortBy",
        ),
        Select(
            "The sort direction.",
            options=["asc", "desc"],
            labels={"asc": "Ascending", "desc": "Descending"},
            data_key="sortOrder",
        ),
    )


def time_window():
    """The optional ``start, end`` of a time window (see BlockSchema's order check)."""
    return (
        Datepicker(
            "The beginning of the time window: a date and time (ISO 8601), or unix time in "
            "seconds or milliseconds. Sent to InstaMsg as unix milliseconds.",
            example="2026-11-25T00:00:00Z",
        ),
        Datepicker(
            "The end of the time window, not before start: a date and time (ISO 8601), or "
            "unix time in seconds or milliseconds. Sent to InstaMsg as unix milliseconds.",
            example="2026-11-26T00:00:00Z",
        ),
    )
