"""Arguments of the OAuth2 blocks."""

from schemas.base import Basic
from schemas.fields import String


class GetAccessToken(Basic):
    pass


class InvalidateAccessToken(Basic):
    # The wire name is access_token, sent in the query string (instamsg-api.md).
    access_token = String(
        "The access token to revoke.",
        data_key="token",
        required=True,
        secret=True,
        nonblank=True,
        into="query",
    )
