from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from evals.protocols import PROTOCOLS, folds
from tools.telemetry.model import LabelledCase, TimeWindow

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _case(system: str, i: int, fault: str) -> LabelledCase:
    t = T0 + timedelta(minutes=10 * i)
    sock = system == "SockShop"
    return LabelledCase(
        case_id=f"{fault}/{i % 3 + 1}" if sock else f"day/{system}/{i}",
        dataset="x",
        system=system,
        service=f"s{i % 4}",
        fault_type=fault,
        injected_at=None if sock else t,
        window=TimeWindow(start=t, end=t + timedelta(minutes=4)),
    )


CASES = [_case("OB", i, ("cpu", "delay", "exception")[i % 3]) for i in range(9)]
CASES += [_case("TT", i, ("exception", "return")[i % 2]) for i in range(8)]
CASES += [_case("SockShop", i, ("cpu", "mem")[i % 2]) for i in range(6)]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_no_fold_trains_on_a_test_case(protocol: str) -> None:
    seen = []
    for _, _, test, train in folds(CASES, protocol):
        assert test and not set(test) & set(train)
        seen += test
    assert len(seen) == len(set(seen))


def test_leave_one_fault_type_out_never_trains_on_that_type() -> None:
    n = 0
    for _, system, test, train in folds(CASES, "lofo"):
        held = {CASES[i].fault_type for i in test}
        assert len(held) == 1 and {CASES[i].system for i in test} == {system}
        assert not held & {CASES[i].fault_type for i in train}
        n += len(test)
    assert n == len(CASES)


def test_leave_one_day_out_holds_out_contiguous_blocks_and_sock_shop_runs() -> None:
    for _, system, test, _ in folds(CASES, "lodo"):
        if system == "SockShop":
            assert len({CASES[i].case_id.rsplit("/", 1)[1] for i in test}) == 1
        else:
            times = sorted(CASES[i].injected_at for i in test)
            others = [c.injected_at for c in CASES if c.system == system]
            inside = [t for t in others if times[0] <= t <= times[-1]]
            assert len(inside) == len(test)


def test_cross_system_trains_on_other_systems_only() -> None:
    for _, system, _test, train in folds(CASES, "cross-system"):
        assert {CASES[i].system for i in train} == {"OB", "TT", "SockShop"} - {system}
    (fold,) = folds(CASES, "OB->TT")
    assert {CASES[i].system for i in fold[3]} == {"OB"}
    assert {CASES[i].system for i in fold[2]} == {"TT"}
