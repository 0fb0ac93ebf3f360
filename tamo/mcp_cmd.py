"""``tamo mcp``: serve the TAMO-RCA tools to Claude Desktop/Code, IDEs and other MCP clients.

stdio by default (the client starts the process); ``--transport http`` serves streamable HTTP,
which requires a bearer token (``TAMO_MCP_TOKENS=alice=<token>,...``, ``--token`` or
``TAMO_MCP_TOKEN``) unless bound to loopback. A real repair needs an identity: the token's
principal over HTTP, the local OS account over stdio.
``--dataset/--case`` serves one labelled case (handy for demos); otherwise the configured
sources (embedded store or Prometheus/Loki/Jaeger/Tempo).
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from tamo.console import fail
from tamo.imports import heavy_imports
from tools.core.settings import get_settings


class Transport(StrEnum):
    stdio = "stdio"
    http = "http"


def register(app: typer.Typer) -> None:
    @app.command()
    def mcp(
        transport: Annotated[
            Transport, typer.Option(help="stdio (default) or streamable HTTP")
        ] = Transport.stdio,
        host: Annotated[str, typer.Option(help="HTTP bind address")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="HTTP port")] = 8765,
        token: Annotated[
            str | None,
            typer.Option(help="HTTP bearer token (default: $TAMO_MCP_TOKEN)", show_default=False),
        ] = None,
        dataset: Annotated[
            str | None, typer.Option(help="serve one labelled case of this dataset")
        ] = None,
        root: Annotated[Path | None, typer.Option(help="dataset directory")] = None,
        case: Annotated[str | None, typer.Option(help="case id")] = None,
    ) -> None:
        """Run the MCP server (tools, resources, the investigate_alert prompt)."""
        with heavy_imports():
            from agent.scope import case_context
            from mcp_server.auth import http_auth, parse_tokens
            from mcp_server.server import build_server, warm_up
            from tools.toolbox.context import ToolContext

        settings = get_settings()
        if dataset or case:
            if not (dataset and case):
                fail("--dataset and --case go together")
            ctx = case_context(dataset, root or settings.datasets_root / dataset, case, settings)
        else:
            ctx = ToolContext.from_settings(settings)
        warm_up(ctx)  # models and the graph load while the server starts accepting
        if transport is Transport.stdio:
            from tools.repair.identity import os_principal

            # the client started this process as the local user: that account is the identity
            build_server(ctx, local_principal=os_principal()).run(
                transport="stdio", show_banner=False
            )
            return
        tokens = parse_tokens(os.environ.get("TAMO_MCP_TOKENS"))
        auth = http_auth(host, token or os.environ.get("TAMO_MCP_TOKEN"), tokens)
        build_server(ctx, auth).run(transport="http", host=host, port=port, show_banner=False)
