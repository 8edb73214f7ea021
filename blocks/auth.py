"""OAuth2: getting and revoking access tokens."""

from connector.engine.registry import block
from schemas import auth as s
from schemas import results as r

block(
    "getAccessToken",
    "POST",
    "/oauth2/token",
    s.GetAccessToken,
    "Gets an OAuth2 access token for your InstaMsg app from its client key and secret. "
    "Every other block takes the token as accessToken.",
    auth="basic",
    query={"grant_type": "client_credentials"},
    body="form",
    repeatable=True,  # asking for a token twice does no harm
    keyed=False,  # nor does it need a key: a kept token would be replayed after it expired
    grants_token=True,
    returns=r.AccessToken,
)

block(
    "invalidateAccessToken",
    "POST",
    "/oauth2/invalidate_token",
    s.InvalidateAccessToken,
    "Revokes an access token, so that it can no longer be used.",
    auth="basic",
    body="form",
    destructive=True,  # the token stops working
    revokes_token=True,
    returns=r.Done,
)
