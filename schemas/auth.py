"""Arguments of the OAuth2 blocks."""

from schemas.base import Basic
from schemas.fields import Credentials


class GetAccessToken(Basic):
    pass


class InvalidateAccessToken(Basic):
    # The wire name is access_token, sent in the query string (instamsg-api.md).
    access_token = Credentials(
        "The access token to revoke (access_token in getAccessToken's result).",
        data_key="token",
        required=True,
        into="query",
        example="pxlsbzDwv42Uw5WS9yq7OD0vQJtb67ET",
    )
