from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tools.core.errors import InputError
from tools.core.fault_catalog import load_fault_catalog

CATALOG = {
    "system": "demo",
    "modules": ["Front", "Back"],
    "calls": {"Front": ["Back"]},
    "error_codes": {"BACK_DOWN": {"fault": "back-down", "blame": "self"}},
    "faults": {
        "back-down": {
            "name": "back-down",
            "target": "Back",
            "scope": "process",
            "description": "Back stops answering",
            "error_code": "BACK_DOWN",
            "clears": [{"kind": "restart", "arg": "Back"}],
        }
    },
}


def test_a_published_catalogue_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(CATALOG))
    cat = load_fault_catalog(path)
    assert cat.calls["Front"] == ("Back",)
    assert str(cat.faults["back-down"].clears[0]) == "restart(Back)"
    assert cat.error_codes["BACK_DOWN"].blame == "self"


def test_a_bad_field_is_one_line_naming_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    bad = json.loads(json.dumps(CATALOG))
    bad["faults"]["back-down"]["scope"] = "cosmic"
    path.write_text(json.dumps(bad))
    with pytest.raises(InputError, match=r"catalog\.json: faults\.back-down\.scope"):
        load_fault_catalog(path)


def test_a_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing\.json"):
        load_fault_catalog(tmp_path / "missing.json")


@given(st.text(max_size=200))
def test_arbitrary_text_is_an_input_error_never_a_traceback(text: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "catalog.json"
        path.write_text(text, encoding="utf-8")
        try:
            load_fault_catalog(path)
        except InputError as exc:
            assert "catalog.json" in str(exc)
