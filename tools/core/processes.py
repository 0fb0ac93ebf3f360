"""Whether a process id still names a running process.

Why one definition: a server file (``tamo serve``) and a state file (the local Prometheus) both
record a pid and must tell a live owner from a stale file. A zombie, a child that has exited but
was not yet reaped, has a pid but serves nothing, so it counts as gone; a pid owned by another
user (``PermissionError``) is alive.
"""

from __future__ import annotations

import os
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """True while ``pid`` is a running (not zombie) process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:  # no /proc (macOS): kill(0) is all there is
        return True
