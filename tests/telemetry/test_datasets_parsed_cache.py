from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest

from tools.telemetry.datasets import parsed_cache
from tools.telemetry.datasets.parsed_cache import cached_table


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setattr(parsed_cache, "cache_dir", lambda: folder)
    return folder


def _source(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "metrics.csv"
    path.write_text(text)
    return path


def _parser(path: Path, calls: list[int]):
    def build() -> pa.Table:
        calls.append(1)
        return pa.table({"line": path.read_text().splitlines()})

    return build


def test_a_second_read_of_unchanged_files_is_served_from_disk(cache: Path, tmp_path: Path) -> None:
    src = _source(tmp_path, "a\nb\n")
    calls: list[int] = []
    first = cached_table("r", ["x"], [src], _parser(src, calls))
    again = cached_table("r", ["x"], [src], _parser(src, calls))
    assert calls == [1] and again.equals(first)
    assert [p.suffix for p in cache.iterdir()] == [".arrow"]  # no temp file left behind


def test_a_changed_file_or_other_arguments_are_parsed_again(cache: Path, tmp_path: Path) -> None:
    src = _source(tmp_path, "a\nb\n")
    calls: list[int] = []
    cached_table("r", ["x"], [src], _parser(src, calls))
    cached_table("r", ["y"], [src], _parser(src, calls))
    src.write_text("a\nb\nc\n")
    st = src.stat()
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    table = cached_table("r", ["x"], [src], _parser(src, calls))
    assert calls == [1, 1, 1] and table.column("line").to_pylist() == ["a", "b", "c"]


def test_a_damaged_cache_file_is_parsed_again(cache: Path, tmp_path: Path) -> None:
    src = _source(tmp_path, "a\n")
    calls: list[int] = []
    cached_table("r", [], [src], _parser(src, calls))
    for path in cache.iterdir():
        path.write_bytes(b"not arrow")
    table = cached_table("r", [], [src], _parser(src, calls))
    assert calls == [1, 1] and table.column("line").to_pylist() == ["a"]


def test_an_unwritable_cache_still_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setattr(parsed_cache, "cache_dir", lambda: blocker / "cache")
    src = _source(tmp_path, "a\n")
    calls: list[int] = []
    assert cached_table("r", [], [src], _parser(src, calls)).num_rows == 1
    assert cached_table("r", [], [src], _parser(src, calls)).num_rows == 1
    assert calls == [1, 1]


def test_least_recently_used_files_go_past_the_limit(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _source(tmp_path, "a\n" * 1000)
    calls: list[int] = []
    cached_table("old", [], [src], _parser(src, calls))
    size = next(cache.iterdir()).stat().st_size
    monkeypatch.setattr(parsed_cache, "LIMIT_BYTES", int(size * 1.5))
    cached_table("new", [], [src], _parser(src, calls))
    assert [p.name.split("-")[0] for p in cache.iterdir()] == ["new"]
