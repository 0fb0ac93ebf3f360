"""``tamo slack``: the Slack bot over Socket Mode (no public endpoint needed).

Tokens come from the environment: ``SLACK_BOT_TOKEN`` (xoxb-…) and ``SLACK_APP_TOKEN`` (xapp-…,
Socket Mode). Who may press Approve is ``TAMO_REPAIR_APPROVERS`` (``slack:<user id>`` entries,
beside the other fronts' principals); unset, nobody may.
"""

from __future__ import annotations

import os

import typer

from tamo.console import err_console, fail
from tools.core.settings import get_settings


def register(app: typer.Typer) -> None:
    @app.command()
    def slack() -> None:
        """Run the Slack bot: mention it or use /tamo; approve repairs with the buttons."""
        bot, app_token = os.environ.get("SLACK_BOT_TOKEN"), os.environ.get("SLACK_APP_TOKEN")
        if not bot or not app_token:
            fail("set SLACK_BOT_TOKEN and SLACK_APP_TOKEN (Socket Mode) to run the Slack bot")
        from slack_bolt import App
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        from agent.run import Investigator
        from agent.slack import SlackFront
        from tools.toolbox.context import ToolContext

        bolt = App(token=bot)
        SlackFront(Investigator(ToolContext.from_settings(get_settings()))).register(bolt)
        err_console.print("TAMO-RCA Slack bot connected (Socket Mode)")
        SocketModeHandler(bolt, app_token).start()
