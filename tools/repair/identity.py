"""Who approves a repair: an authenticated principal, checked against ``TAMO_REPAIR_APPROVERS``.

Why principals and not names: an approval is only worth something if the one who gives it cannot
be the model that proposed the repair. So an approver is never a string a caller types; each
front derives it from what authenticated the request —

* ``os:<user>`` — the local OS account of the process (CLI, chat, MCP over stdio), read from the
  kernel's uid (``pwd``), not from ``$USER``, which anyone can set;
* ``slack:<user id>`` — the user id in the payload Slack signed;
* ``mcp:<principal>`` — the principal of the bearer token that authenticated an MCP HTTP request
  (``TAMO_MCP_TOKENS``);

and the repair runner refuses any approval whose principal is not in the allow-list. Automatic
approvals (``policy:<name>``) are the runner's own and count only where the policy allows
automatic repairs at all.
"""

from __future__ import annotations

import contextvars
import json
import os
import pwd
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from pydantic import field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tools.repair.safety import Approval


def os_principal() -> str:
    """``os:<user>`` of the process's real uid (not ``$USER``/``$LOGNAME``)."""
    return f"os:{pwd.getpwuid(os.getuid()).pw_name}"


def slack_principal(user_id: str | None) -> str | None:
    return f"slack:{user_id}" if user_id else None


def mcp_principal(client_id: str | None) -> str | None:
    return f"mcp:{client_id}" if client_id else None


def comma_list(value: object) -> object:
    """``a,b`` or a JSON list, as environment variables are usually written."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [v.strip() for v in text.split(",") if v.strip()]
    return value


class ApproverSettings(BaseSettings):
    """``TAMO_REPAIR_APPROVERS``: principals allowed to approve a real repair (empty: nobody)."""

    model_config = SettingsConfigDict(env_prefix="TAMO_REPAIR_", extra="ignore")

    approvers: Annotated[list[str], NoDecode] = []

    _split = field_validator("approvers", mode="before")(comma_list)


def approvers_from_env() -> list[str]:
    return ApproverSettings().approvers


# The approval of the request being served, set by the front that authenticated it and read by
# ``execute_repair``: a tool's arguments (which a model writes) never carry it.
_current: contextvars.ContextVar[Approval | None] = contextvars.ContextVar(
    "tamo_repair_approval", default=None
)


@contextmanager
def approving(approval: Approval) -> Iterator[None]:
    """Within this block, ``execute_repair`` runs with ``approval`` (a person's decision)."""
    token = _current.set(approval)
    try:
        yield
    finally:
        _current.reset(token)


def current_approval() -> Approval | None:
    return _current.get()
