"""``python -m testbed controller``: the controller process (see ``runner.py``)."""

from __future__ import annotations

import sys

from testbed.runner import main

if __name__ == "__main__":  # not when multiprocessing re-imports it as ``__mp_main__``
    main(sys.argv[1:])
