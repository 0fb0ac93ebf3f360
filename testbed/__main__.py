"""``python -m testbed MODULE|controller``: run one testbed process (see ``runner.py``)."""

from __future__ import annotations

import sys

from testbed.runner import main

main(sys.argv[1:])
