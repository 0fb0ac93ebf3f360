"""The parsed raw telemetry of dataset files, kept on disk as Arrow next to the user's data.

Why: parsing a Nezha day's CSV files (metrics of every pod, the case's trace and log slots) takes
about a CPU-second, and every ``tamo diagnose --case`` of that day parses the same files again.
The parsed table is written once as an Arrow IPC file and memory-mapped on the next run (a few
milliseconds). The key is what the table was built from — the reader's name, its arguments and
each source file's path, size and modification time — so an edited or replaced file is parsed
again, never served stale. Nothing here knows about labels: the cache holds what the files say.
A damaged cache file is ignored and rewritten; writes are atomic (temp file + rename); the
least recently used files go when the folder passes ``LIMIT_BYTES``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pyarrow as pa

from tools.core.settings import get_settings

VERSION = "1"  # bump when a reader's output changes for the same files
LIMIT_BYTES = 2 << 30  # least recently used files beyond this much are removed


def cache_dir() -> Path:
    return get_settings().data_dir / "cache" / "parsed"


def _key(reader: str, args: Sequence[str], sources: Sequence[Path]) -> str:
    h = hashlib.sha256(f"{VERSION}\0{reader}\0{chr(0).join(args)}".encode())
    for path in sources:
        st = path.stat()
        h.update(f"\0{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()[:32]


def cached_table(
    reader: str, args: Sequence[str], sources: Sequence[Path], build: Callable[[], pa.Table]
) -> pa.Table:
    """``build()``, or the table it built before from the same ``sources`` (unchanged files)."""
    path = cache_dir() / f"{reader}-{_key(reader, args, sources)}.arrow"
    if path.is_file():
        try:
            with pa.memory_map(str(path)) as source:
                table = pa.ipc.open_file(source).read_all()
            os.utime(path)  # recently used: kept longest
            return table
        except (OSError, pa.ArrowInvalid):
            pass  # damaged or half-written by a crashed older version: parse again
    table = build()
    _write(path, table)
    _evict(path.parent)
    return table


def _evict(folder: Path) -> None:
    with contextlib.suppress(OSError):
        files = sorted(folder.glob("*.arrow"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
        total = 0
        for path in files:
            total += path.stat().st_size
            if total > LIMIT_BYTES:
                path.unlink(missing_ok=True)


def _write(path: Path, table: pa.Table) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        tmp.replace(path)
    except OSError:  # a read-only or full data dir costs speed, never the answer
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
