"""The testbed publishes its fault catalogue as a document the product reads as data."""

from __future__ import annotations

from pathlib import Path

from testbed.catalog import CATALOG_FILE, ERROR_CODE_MEANINGS, FAULTS, MODULES, publish
from tools.core.fault_catalog import load_fault_catalog


def test_the_published_document_validates_and_says_what_the_catalog_says(tmp_path: Path) -> None:
    cat = load_fault_catalog(publish(tmp_path / CATALOG_FILE))
    assert cat.modules == MODULES and set(cat.faults) == set(FAULTS)
    for name, f in FAULTS.items():
        got = cat.faults[name]
        assert (got.target, got.scope, got.error_code) == (f.target, f.scope, f.error_code)
        assert [str(a) for a in got.clears] == [str(a) for a in f.clears]
        assert [str(a) for a in got.bypasses] == [str(a) for a in f.bypasses]
    assert {c: (m.fault, m.blame) for c, m in cat.error_codes.items()} == ERROR_CODE_MEANINGS
