"""Finding and reading the datasets' CSV files, with errors that name the file and line.

Why here: both datasets store a logical file ``NAME.csv`` either plain or gzip-compressed
(``NAME.csv.gz``), and real files carry the odd garbled row (one Nezha TT log row has text
after its closing quote). Files are gunzipped with ISA-L and parsed by pyarrow's multi-threaded
CSV reader, which is what keeps a whole Nezha day near a million spans per second; every
failure becomes an :class:`InputError` with ``path:line`` or a :class:`DatasetError` naming the
missing path, never a pyarrow traceback.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from isal import igzip, isal_zlib

from tools.core.errors import DatasetError, InputError

log = logging.getLogger(__name__)

_ROW_RE = re.compile(r"Row #(\d+)")
_COLUMNS_RE = re.compile(r"Expected \d+ columns, got \d+")
_CONVERSION_RE = re.compile(r"conversion error")


def find_csv(path: Path) -> Path | None:
    """``X.csv`` or ``X.csv.gz``, whichever exists (``path`` may name either); None if neither."""
    name = path.name.removesuffix(".gz")
    for candidate in (path.with_name(name), path.with_name(name + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{what} not found", source=str(path))
    return path


def csv_stem(path: Path) -> str:
    """``03_53_trace.csv.gz`` -> ``03_53_trace``."""
    return path.name.removesuffix(".gz").removesuffix(".csv")


def read_csv(
    path: Path,
    column_types: Mapping[str, pa.DataType],
    *,
    header: bool = True,
    skip_garbled_rows: bool = True,
) -> pa.Table:
    """Read one CSV (plain or gzip) with fixed column names and types.

    With ``header=False`` the columns are named by ``column_types`` in order. A header that
    lacks a required column, a value that does not convert, invalid UTF-8 or a truncated/corrupt
    gzip stream raises :class:`InputError` (``path:line`` where known). A row with the wrong
    number of fields is skipped with a warning naming ``path:line`` when ``skip_garbled_rows``
    (the real data has such rows), else it is an error too.
    """
    read_opts = pacsv.ReadOptions(column_names=None if header else list(column_types))
    convert_opts = pacsv.ConvertOptions(
        column_types=dict(column_types),
        include_columns=list(column_types),
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    data = _file_bytes(path, header)
    try:
        return pacsv.read_csv(
            pa.BufferReader(data),
            read_options=read_opts,
            parse_options=pacsv.ParseOptions(newlines_in_values=False),
            convert_options=convert_opts,
        )
    except pa.ArrowInvalid as exc:
        if _CONVERSION_RE.search(str(exc)):
            raise _conversion_error(path, data, read_opts, column_types, exc) from None
        if not (skip_garbled_rows and _COLUMNS_RE.search(str(exc))):
            raise _input_error(path, exc, header) from None
    except (pa.ArrowException, OSError) as exc:
        raise _input_error(path, exc, header) from None
    return _read_skipping_garbled(path, data, read_opts, convert_opts, header)


def _conversion_error(
    path: Path,
    data: bytes,
    read_opts: pacsv.ReadOptions,
    column_types: Mapping[str, pa.DataType],
    exc: pa.ArrowInvalid,
) -> InputError:
    """Name the line of the first value that does not convert (pyarrow only names the column):
    re-read the columns as text and bisect with vectorised casts, O(log rows) casts."""
    text = str(exc).splitlines()[0]
    try:
        raw = pacsv.read_csv(
            pa.BufferReader(data),
            read_options=read_opts,
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(column_types, pa.string()),
                include_columns=list(column_types),
                strings_can_be_null=True,  # the same cells read as null as in the typed read
            ),
        )
    except pa.ArrowException:
        return InputError(text[:300], path=str(path))
    first_line = 1 if read_opts.column_names else 2
    for name, type_ in column_types.items():
        values = raw[name].combine_chunks()
        if _casts(values, type_):
            continue
        lo, hi = 0, len(values)  # the prefix [0, lo) casts; [0, hi) does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if _casts(values.slice(0, mid), type_) else (lo, mid)
        bad = values[lo].as_py()
        message = f"column {name}: cannot read {bad!r} as {type_}"
        return InputError(message, path=str(path), line=first_line + lo)
    return InputError(text[:300], path=str(path))


def _casts(values: pa.Array, type_: pa.DataType) -> bool:
    try:
        pc.cast(values, type_)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


def _file_bytes(path: Path, header: bool) -> bytes:
    """The file's bytes, gunzipped with ISA-L when it ends in ``.gz`` (about 2.5x less CPU than
    zlib, the largest single cost of reading a Nezha day)."""
    try:
        data = path.read_bytes()
        return igzip.decompress(data) if path.name.endswith(".gz") else data
    except FileNotFoundError:
        raise DatasetError("file not found", source=str(path)) from None
    except (OSError, EOFError, isal_zlib.error) as exc:
        raise _input_error(path, exc, header) from None


def _read_skipping_garbled(
    path: Path,
    data: bytes,
    read_opts: pacsv.ReadOptions,
    convert_opts: pacsv.ConvertOptions,
    header: bool,
) -> pa.Table:
    """The slow path for a file with rows of the wrong width: decode it strictly (so a bad byte
    is reported by line), then parse single-threaded skipping and logging those rows."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError("invalid UTF-8", path=str(path), line=line) from None
    skipped: list[int] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        skipped.append(row.number or 0)
        return "skip"

    read_opts = pacsv.ReadOptions(
        column_names=read_opts.column_names, use_threads=False, block_size=len(data) + 1
    )
    try:
        table = pacsv.read_csv(
            pa.BufferReader(data),
            read_options=read_opts,
            parse_options=pacsv.ParseOptions(
                newlines_in_values=False, invalid_row_handler=on_invalid
            ),
            convert_options=convert_opts,
        )
    except (pa.ArrowException, OSError) as exc:
        raise _input_error(path, exc, header) from None
    lines = ", ".join(str(n) for n in skipped[:5])
    log.warning("%s: skipped %d garbled row(s) (line %s)", path, len(skipped), lines)
    return table


def _input_error(path: Path, exc: BaseException, header: bool) -> InputError:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    m = _ROW_RE.search(text)
    line = int(m.group(1)) + (1 if header else 0) if m else None
    if "No columns" in text or "Empty CSV" in text:
        text = "empty file (no header)"
    return InputError(text[:300], path=str(path), line=line)


def read_header(path: Path) -> list[str]:
    """The column names on the first line of a CSV (plain or gzip)."""
    try:
        opener = igzip.open if path.name.endswith(".gz") else open
        with opener(path, "rb") as stream:
            first = stream.readline(1 << 20).decode("utf-8")
    except FileNotFoundError:
        raise DatasetError("file not found", source=str(path)) from None
    except (OSError, EOFError, isal_zlib.error, UnicodeDecodeError) as exc:
        raise _input_error(path, exc, True) from None
    names = [n.strip().strip('"') for n in first.rstrip("\r\n").split(",")]
    if not first.strip() or not all(names):
        raise InputError("empty or malformed header", path=str(path), line=1)
    return names


def read_ahead(
    jobs: Iterable[tuple[str, Path, Callable[[Path], pa.Table]]], depth: int = 2
) -> Iterator[tuple[str, str, pa.Table]]:
    """``(kind, path, reader)`` jobs -> ``(kind, str(path), reader(path))`` in order, reading up
    to ``depth`` files ahead on worker threads (pyarrow and DuckDB release the GIL), so a bulk
    consumer's inserts overlap with decompressing and parsing the next files."""
    pending: deque[tuple[str, Path, Future[pa.Table]]] = deque()
    it = iter(jobs)
    with ThreadPoolExecutor(max_workers=depth, thread_name_prefix="dataset-read") as pool:
        try:
            for kind, path, reader in it:
                pending.append((kind, path, pool.submit(reader, path)))
                if len(pending) >= depth:
                    k, p, fut = pending.popleft()
                    yield k, str(p), fut.result()
            while pending:
                k, p, fut = pending.popleft()
                yield k, str(p), fut.result()
        finally:
            for _, _, fut in pending:
                fut.cancel()


def list_csv(folder: Path, suffix: str) -> list[Path]:
    """Files ``*<suffix>.csv`` or ``*<suffix>.csv.gz`` in ``folder``, one per logical name
    (the plain file wins when a copy has both), sorted; empty when the folder is absent."""
    if not folder.is_dir():
        return []
    found: dict[str, Path] = {}
    for path in folder.iterdir():
        if path.name.endswith((f"{suffix}.csv", f"{suffix}.csv.gz")) and path.is_file():
            stem = csv_stem(path)
            if stem not in found or path.suffix == ".csv":
                found[stem] = path
    return [found[k] for k in sorted(found)]
