"""Bearer-token auth for the streamable HTTP transport.

Why a static token: TAMO-RCA's MCP server is usually run next to the SRE (loopback, no token) or
behind a team's gateway; the minimum for anything reachable from elsewhere is a shared secret,
compared in constant time, never logged.
"""

from __future__ import annotations

import hmac
import ipaddress

from fastmcp.server.auth import TokenVerifier
from fastmcp.server.auth.auth import AccessToken

from tools.core.errors import ConfigError


class BearerTokenVerifier(TokenVerifier):
    """Accepts exactly one token."""

    def __init__(self, token: str) -> None:
        super().__init__()
        if len(token) < 16:
            raise ConfigError(
                "MCP bearer token must be at least 16 characters", source="TAMO_MCP_TOKEN"
            )
        self._token = token.encode()

    async def verify_token(self, token: str) -> AccessToken | None:
        if hmac.compare_digest(token.encode(), self._token):
            return AccessToken(token="***", client_id="tamo-mcp-client", scopes=[])
        return None

    def __repr__(self) -> str:  # never print the secret
        return "BearerTokenVerifier(***)"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def http_auth(host: str, token: str | None) -> BearerTokenVerifier | None:
    """The auth an HTTP server on ``host`` needs: a token is mandatory off loopback."""
    if token:
        return BearerTokenVerifier(token)
    if not is_loopback(host):
        raise ConfigError(
            f"refusing to serve MCP over HTTP on {host} without a bearer token "
            "(set TAMO_MCP_TOKEN or --token, or bind to 127.0.0.1)",
            source="tamo mcp",
        )
    return None
