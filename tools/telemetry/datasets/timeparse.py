"""Wall-clock timestamp strings of the datasets -> epoch nanoseconds, UTC.

Why a module of its own: the Nezha files carry two textual clocks that the standard parsers
trip over. Metric ``Time`` columns are Go ``time.Time.String()`` output,
``2022-08-22 03:51:19.573905004 +0000 UTC m=+0.079858984``: a fraction of 0-9 digits whose
length varies row to row, a numeric offset plus zone name, and a monotonic-clock suffix
``m=+<s>``. Log ``Timestamp`` columns are RFC 3339 (``...T08:42:22.383150913Z``) except for a
few rows with neither zone nor ``Z`` (``2023-01-29T09:33:14.716``), which the data card says are
UTC. One grammar covers both; the vectorised path (pyarrow compute, no per-row Python) serves
the bulk readers and the scalar path gives the same answer for one string and locates the first
bad row when the vectorised path fails.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from tools.core.errors import InputError

_NS = 1_000_000_000

#: date, time, optional 1-9 digit fraction, optional zone (Z, +hhmm [NAME], +hh:mm), optional Go
#: monotonic suffix. A missing zone means UTC (all dataset clocks are UTC).
WALLCLOCK_PATTERN = (
    r"^(?P<date>\d{4}-\d{2}-\d{2})[ T](?P<clock>\d{2}:\d{2}:\d{2})"
    r"(?:\.(?P<frac>\d{1,9}))?"
    r"(?:Z|\s?(?P<off>[+-]\d{2}:?\d{2})(?: [A-Za-z]{1,6})?)?"
    r"(?: m=[+-]\d+(?:\.\d+)?)?$"
)
_WALLCLOCK_RE = re.compile(WALLCLOCK_PATTERN)


def _offset_seconds(off: str | None) -> int:
    if not off:
        return 0
    digits = off[1:].replace(":", "")
    seconds = int(digits[:2]) * 3600 + int(digits[2:4]) * 60
    return -seconds if off[0] == "-" else seconds


def parse_wallclock_ns(text: str, *, source: str = "<string>", line: int | None = None) -> int:
    """One Go ``time.Time`` / RFC 3339 string -> epoch ns UTC; :class:`InputError` if malformed."""
    m = _WALLCLOCK_RE.match(text.strip())
    if m is None:
        raise InputError(f"not a timestamp: {text[:80]!r}", path=source, line=line)
    try:
        base = datetime.strptime(f"{m['date']} {m['clock']}", "%Y-%m-%d %H:%M:%S")
    except ValueError as exc:
        raise InputError(
            f"invalid timestamp {text[:80]!r}: {exc}", path=source, line=line
        ) from None
    frac = int((m["frac"] or "").ljust(9, "0"))
    epoch_s = int(base.replace(tzinfo=UTC).timestamp()) - _offset_seconds(m["off"])
    return epoch_s * _NS + frac


def wallclock_ns(
    values: pa.Array | pa.ChunkedArray, *, source: str, first_line: int = 2
) -> pa.Array:
    """Vectorised :func:`parse_wallclock_ns` over a string column (row ``i`` is file line
    ``first_line + i``, used only to name the first malformed row in the error)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if len(values) == 0:
        return pa.array([], pa.int64())
    parts = pc.extract_regex(pc.utf8_trim_whitespace(values), WALLCLOCK_PATTERN)
    try:
        if parts.null_count:
            raise ValueError("pattern mismatch")
        stamp = pc.binary_join_element_wise(
            pc.struct_field(parts, "date"), pc.struct_field(parts, "clock"), " "
        )
        seconds = pc.strptime(stamp, format="%Y-%m-%d %H:%M:%S", unit="s", error_is_null=False)
    except (pa.ArrowInvalid, ValueError):
        _raise_first_bad(values, source, first_line)
        raise  # unreachable: _raise_first_bad always raises
    epoch_s = pc.cast(seconds, pa.int64())
    frac = pc.cast(pc.utf8_rpad(pc.struct_field(parts, "frac"), 9, "0"), pa.int64())
    off = pc.replace_substring(pc.struct_field(parts, "off"), ":", "")
    total = pc.add(pc.multiply(epoch_s, _NS), frac)
    if pc.any(pc.not_equal(off, "")).as_py():
        off = pc.if_else(pc.equal(off, ""), "+0000", off)
        hh = pc.cast(pc.utf8_slice_codeunits(off, 1, 3), pa.int64())
        mm = pc.cast(pc.utf8_slice_codeunits(off, 3, 5), pa.int64())
        off_s = pc.add(pc.multiply(hh, 3600), pc.multiply(mm, 60))
        off_s = pc.if_else(pc.starts_with(off, "-"), pc.negate(off_s), off_s)
        total = pc.subtract(total, pc.multiply(off_s, _NS))
    return total


def _raise_first_bad(values: pa.Array, source: str, first_line: int) -> None:
    for i, text in enumerate(values.to_pylist()):
        parse_wallclock_ns(text or "", source=source, line=first_line + i)
    raise InputError("unparseable timestamp column", path=source)
