from __future__ import annotations

import os
import subprocess
import sys

from tools.core.processes import pid_alive


def test_a_running_process_is_alive_an_exited_one_is_not() -> None:
    assert pid_alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: the pid names nothing
    assert not pid_alive(child.pid)


def test_an_unreaped_child_counts_as_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, left a zombie
        assert not pid_alive(child.pid)
    finally:
        child.wait()
