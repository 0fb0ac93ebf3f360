"""Does the harness's BARO rank every RCD Sock Shop case as RCAEval's own ``baro()`` does?

Why a separate check: RCAEval (PyPI ``RCAEval``) cannot be a dependency: on Python 3.11 its
``RCAEval.e2e`` package imports its torch/causal-learn methods eagerly. Its ``baro()`` itself needs
only pandas and scikit-learn, so this script loads that one file (and ``io/time_series.py``) from
an unpacked wheel, feeds it each case as RCAEval reads a case (``normal.csv`` then
``anomalous.csv`` as one frame, ``inject_time`` = the first anomalous row, ``dataset="sock-shop"``)
and compares the service rankings (a column ``carts_cpu`` / ``carts_lat_90`` is service ``carts``).

    pip download --no-deps RCAEval -d /tmp/rcaeval && unzip -q /tmp/rcaeval/*.whl -d /tmp/rcaeval
    python -m evals.baro_agreement --rcaeval /tmp/rcaeval --root ../shared/datasets/sockshop-rcd
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import types
from pathlib import Path
from types import ModuleType

import pandas as pd

from evals.baselines import baro_rank
from tools.telemetry.datasets import get_adapter


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def rcaeval_baro(unpacked: Path) -> ModuleType:
    """RCAEval's ``e2e/baro.py`` with just the modules it imports (not its package ``__init__``)."""
    pkg = unpacked / "RCAEval"
    for name, path in (("RCAEval", pkg), ("RCAEval.io", pkg / "io")):
        stub = types.ModuleType(name)
        stub.__path__ = [str(path)]
        sys.modules.setdefault(name, stub)
    _load("RCAEval.io.time_series", pkg / "io" / "time_series.py")
    return _load("rcaeval_e2e_baro", pkg / "e2e" / "baro.py")


def _service(column: str) -> str:
    return column.rsplit("_", 2)[0] if "_lat_" in column else column.rsplit("_", 1)[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rcaeval", type=Path, required=True, help="folder with the unpacked wheel")
    p.add_argument("--root", type=Path, default=Path("../shared/datasets/sockshop-rcd"))
    args = p.parse_args(argv)
    baro = rcaeval_baro(args.rcaeval)
    adapter = get_adapter("sockshop-rcd")
    same = theirs = ours = 0
    cases = adapter.cases(args.root)
    print("| case | truth | RCAEval top-3 | harness top-3 | same ranking |\n|---|---|---|---|---|")
    for case in cases:
        folder = args.root / "sock-shop-data" / case.case_id
        normal, anomal = (pd.read_csv(folder / f"{n}.csv") for n in ("normal", "anomalous"))
        data = pd.concat([normal, anomal], ignore_index=True)
        cols = baro.baro(data, inject_time=anomal["time"].iloc[0], dataset="sock-shop")["ranks"]
        reference = list(dict.fromkeys(_service(c) for c in cols))
        mine = baro_rank(adapter.load_case(args.root, case))
        same += mine == reference
        theirs += reference[0] == case.service
        ours += mine[0] == case.service
        print(
            f"| {case.case_id} | {case.service} | {', '.join(reference[:3])} | "
            f"{', '.join(mine[:3])} | {'yes' if mine == reference else 'NO'} |"
        )
    n = len(cases)
    print(
        f"\nAcc@1 RCAEval {theirs / n:.2f}, harness {ours / n:.2f}; "
        f"identical service rankings {same}/{n}"
    )
    return 0 if same == n else 1


if __name__ == "__main__":
    raise SystemExit(main())
