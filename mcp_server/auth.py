"""Bearer-token auth for the streamable HTTP transport, one principal per token.

Why tokens with principals: TAMO-RCA's MCP server is usually run next to the SRE (loopback, no
token) or behind a team's gateway; the minimum for anything reachable from elsewhere is a secret,
compared in constant time, never logged. Each token names who holds it (``TAMO_MCP_TOKENS`` =
``alice=<token>,bob=<token>``, or one ``TAMO_MCP_TOKEN`` for principal ``tamo-mcp-client``), and
that principal — ``mcp:alice`` — is the identity a real repair's approval is checked against
(``TAMO_REPAIR_APPROVERS``).
"""

from __future__ import annotations

import hmac
import ipaddress

from fastmcp.server.auth import TokenVerifier
from fastmcp.server.auth.auth import AccessToken

from tools.core.errors import ConfigError

DEFAULT_PRINCIPAL = "tamo-mcp-client"


class BearerTokenVerifier(TokenVerifier):
    """Accepts the configured tokens; the access token's ``client_id`` is the token's principal."""

    def __init__(self, tokens: dict[str, str]) -> None:
        super().__init__()
        if not tokens:
            raise ConfigError("no MCP bearer token configured", source="TAMO_MCP_TOKENS")
        for principal, token in tokens.items():
            if len(token) < 16:
                raise ConfigError(
                    f"MCP bearer token of {principal!r} must be at least 16 characters",
                    source="TAMO_MCP_TOKENS",
                )
        self._tokens = [(p, t.encode()) for p, t in tokens.items()]

    async def verify_token(self, token: str) -> AccessToken | None:
        given = token.encode()
        found = None
        for principal, secret in self._tokens:  # compare with every token: constant work
            if hmac.compare_digest(given, secret):
                found = principal
        if found is None:
            return None
        return AccessToken(token="***", client_id=found, scopes=[])

    def __repr__(self) -> str:  # never print the secrets
        return f"BearerTokenVerifier({len(self._tokens)} tokens, ***)"


def parse_tokens(text: str | None) -> dict[str, str]:
    """``alice=<token>,bob=<token>`` -> ``{"alice": token, ...}``; a one-line error otherwise."""
    out: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        principal, sep, token = item.strip().partition("=")
        if not sep or not principal or not token:
            raise ConfigError(
                "TAMO_MCP_TOKENS entries are principal=token, comma-separated",
                source="TAMO_MCP_TOKENS",
            )
        out[principal] = token
    return out


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def http_auth(
    host: str, token: str | None, tokens: dict[str, str] | None = None
) -> BearerTokenVerifier | None:
    """The auth an HTTP server on ``host`` needs: a token is mandatory off loopback."""
    all_tokens = dict(tokens or {})
    if token:
        all_tokens.setdefault(DEFAULT_PRINCIPAL, token)
    if all_tokens:
        return BearerTokenVerifier(all_tokens)
    if not is_loopback(host):
        raise ConfigError(
            f"refusing to serve MCP over HTTP on {host} without a bearer token "
            "(set TAMO_MCP_TOKENS, TAMO_MCP_TOKEN or --token, or bind to 127.0.0.1)",
            source="tamo mcp",
        )
    return None
