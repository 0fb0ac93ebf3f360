"""Nezha (FSE 2023) Online Boutique and Train-Ticket days as labelled cases.

Definitions (the data card ``../shared/datasets/README.md`` section 1 is the evidence):

* **case** = one fault-list entry; ``case_id`` ``<day>/<inject_pod>/<HHMMSS>``; service =
  ``inject_pod.rsplit('-', 2)[0]``; fault type = ``inject_type``; injected_at = ``inject_time``
  read as UTC (never ``inject_timestamp``, which is 8 h off for most TT faults).
* **system**: ``TT`` when the day's metric folder has ``ts-*`` pods, else ``OB``.
* **window**: the case's three minute slots ``M, M+1, M+2`` (M = minute of ``inject_time``)
  cover roughly ``M-52 s .. M+170 s``; a slot file ``HH_MM`` holds the ~60 s before
  ``HH:MM`` plus a collector offset, and a few files run 90-180 s. The window is
  ``[M - 1 min, M + 3 min)`` and every table of ``load_case`` is cut to it (spans by start time),
  so a store built from the case answers window queries with exactly these rows.
* **baseline** (fault-free): the ``construct_data/<day>`` slot(s) Nezha itself uses as normal
  time (``traceid/HH_MM_traceid.csv`` names them: OB ``03_51``, TT ``08_50``), window
  ``[S - 3 min, S + 1 min)`` because that slot's file can start up to ~2 min early (TT ``08_50``
  spans 08:48:16-08:51:04), clipped so it never overlaps a case window. ``baseline_metrics``
  are the metric rows of that same window by default (OB: 1 row per series, TT: 4);
  ``load_case(..., metric_baseline_minutes=N)`` takes instead the N minutes of metric rows just
  before the case window (more samples, but possibly the tail of the previous fault).
* **metrics** of a case: every pod file, ``front_service.csv`` as ``entry_*`` series of the
  entry service (OB ``frontend``, TT ``ts-gateway-service``, where TT traces enter) and, for OB,
  ``source_50``/``destination_50`` as ``edge_latency_p50_seconds``; names in
  :mod:`tools.telemetry.datasets.nezha_files`.
* Any trace/log slot may be missing (``MISSING_FILES.tsv``: OB has logs for 2 of 72 slots and no
  fault-free traces); ``modalities`` lists what the files hold for the case.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Collection, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import networkx as nx
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ValidationError

from tools.core.errors import DatasetError, InputError
from tools.telemetry.datasets.base import check_kinds
from tools.telemetry.datasets.columnar import duck_query
from tools.telemetry.datasets.files import (
    csv_stem,
    find_csv,
    list_csv,
    read_ahead,
    require_dir,
)
from tools.telemetry.datasets.nezha_files import (
    read_dependencies,
    read_edge_metrics,
    read_entry_metrics,
    read_logs,
    read_pod_metrics,
    read_spans,
    read_trace_ids,
)
from tools.telemetry.datasets.parsed_cache import cached_table
from tools.telemetry.model import (
    LOG_SCHEMA,
    METRIC_SCHEMA,
    SPAN_SCHEMA,
    CaseTelemetry,
    LabelledCase,
    Modality,
    TimeWindow,
)

ENTRY_SERVICE = {"OB": "frontend", "TT": "ts-gateway-service"}
_MINUTE = timedelta(minutes=1)
_SLOTS_PER_CASE = 3
_DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class _Fault(BaseModel):
    inject_time: str
    inject_pod: str
    inject_type: str


def _slot(t: datetime) -> str:
    return t.strftime("%H_%M")


def _minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def _case_window(first: datetime) -> TimeWindow:
    """``[M - 1 min, M + 3 min)`` for the slots ``M .. M+2`` (see the module docstring)."""
    return TimeWindow(start=first - _MINUTE, end=first + _SLOTS_PER_CASE * _MINUTE)


class NezhaAdapter:
    """Adapter for the ``nezha/`` folder (``rca_data/<day>``, ``construct_data/<day>``)."""

    name = "nezha"

    # -- layout --------------------------------------------------------------------------------

    def _rca(self, root: Path) -> Path:
        require_dir(root, "Nezha dataset folder")
        return require_dir(root / "rca_data", "Nezha rca_data folder")

    def parts(self, root: Path) -> list[str]:
        """Days (``YYYY-MM-DD`` folders of ``rca_data`` that hold a fault list)."""
        rca = self._rca(root)
        return sorted(
            d.name
            for d in rca.iterdir()
            if _DAY_RE.match(d.name) and (d / f"{d.name}-fault_list.json").is_file()
        )

    def _days(self, root: Path, parts: list[str] | None) -> list[str]:
        present = self.parts(root)
        if parts is None:
            return present
        for day in parts:
            if day not in present:
                raise DatasetError(
                    f"no fault list for day {day!r} (present: {', '.join(present) or 'none'})",
                    source=str(root / "rca_data" / day / f"{day}-fault_list.json"),
                )
        return sorted(set(parts))

    @staticmethod
    def system(day_dir: Path) -> str:
        metric = require_dir(day_dir / "metric", "Nezha metric folder")
        return "TT" if any(p.name.startswith("ts-") for p in list_csv(metric, "_metric")) else "OB"

    # -- cases ---------------------------------------------------------------------------------

    def _faults(self, path: Path) -> list[_Fault]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON: {exc.msg}", path=str(path), line=exc.lineno) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DatasetError(f"cannot read fault list: {exc}", source=str(path)) from None
        if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
            raise InputError("expected an object of hour -> list of faults", path=str(path))
        try:
            return [_Fault.model_validate(f) for hour in data.values() for f in hour]
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "entry"
            raise InputError(f"fault entry field {field}: {err['msg']}", path=str(path)) from None

    def cases(self, root: Path, parts: list[str] | None = None) -> list[LabelledCase]:
        out: list[LabelledCase] = []
        for day in self._days(root, parts):
            out.extend(self._day_cases(root, day))
        return out

    def _day_cases(self, root: Path, day: str) -> list[LabelledCase]:
        day_dir = root / "rca_data" / day
        fault_list = day_dir / f"{day}-fault_list.json"
        system = self.system(day_dir)
        has_metrics = bool(list_csv(day_dir / "metric", "_metric"))
        staged = []
        for fault in self._faults(fault_list):
            try:
                at = datetime.strptime(fault.inject_time, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
            except ValueError:
                raise InputError(
                    f"inject_time {fault.inject_time!r} is not YYYY-MM-DD HH:MM:SS",
                    path=str(fault_list),
                ) from None
            first = _minute(at)
            slots = [_slot(first + i * _MINUTE) for i in range(_SLOTS_PER_CASE)]
            modalities = [Modality.METRICS] if has_metrics else []
            if any(find_csv(day_dir / "trace" / f"{s}_trace.csv") for s in slots):
                modalities.append(Modality.TRACES)
            if any(find_csv(day_dir / "log" / f"{s}_log.csv") for s in slots):
                modalities.append(Modality.LOGS)
            staged.append((at, fault, _case_window(first), modalities))
        staged.sort(key=lambda s: s[0])
        baseline = self._baseline_window(root, day, [w for _, _, w, _ in staged])
        return [
            LabelledCase(
                case_id=f"{day}/{fault.inject_pod}/{at:%H%M%S}",
                dataset=self.name,
                system=system,
                service=fault.inject_pod.rsplit("-", 2)[0],
                fault_type=fault.inject_type,
                injected_at=at,
                window=window,
                baseline=baseline,
                pod=fault.inject_pod,
                modalities=modalities,
            )
            for at, fault, window, modalities in staged
        ]

    @staticmethod
    def _baseline_slots(root: Path, day: str) -> list[datetime]:
        """Fault-free minute slots of ``construct_data/<day>`` (named by its trace-id lists)."""
        try:
            date = datetime.fromisoformat(day)
        except ValueError:
            raise DatasetError("not a valid date", source=str(root / "rca_data" / day)) from None
        slots = []
        for path in list_csv(root / "construct_data" / day / "traceid", "_traceid"):
            try:
                clock = datetime.strptime(csv_stem(path).removesuffix("_traceid"), "%H_%M")
            except ValueError:
                continue
            slots.append(date.replace(hour=clock.hour, minute=clock.minute, tzinfo=UTC))
        return sorted(slots)

    def _baseline_window(
        self, root: Path, day: str, case_windows: list[TimeWindow]
    ) -> TimeWindow | None:
        slots = self._baseline_slots(root, day)
        if not slots:
            return None
        start, end = slots[0] - 3 * _MINUTE, slots[-1] + _MINUTE
        for w in case_windows:  # clip to the neighbouring faults
            if w.end <= slots[0]:
                start = max(start, w.end)
            elif w.start >= slots[-1]:
                end = min(end, w.start)
        return TimeWindow(start=start, end=end) if end > start else None

    # -- telemetry -----------------------------------------------------------------------------

    def _case_day(self, root: Path, case: LabelledCase) -> str:
        if case.dataset != self.name:
            raise DatasetError(f"case {case.case_id} belongs to dataset {case.dataset!r}")
        day = case.case_id.split("/", 1)[0]
        self._days(root, [day])
        return day

    def load_case(
        self, root: Path, case: LabelledCase, *, metric_baseline_minutes: int | None = None
    ) -> CaseTelemetry:
        """Abnormal-window tables of ``case`` plus its fault-free baseline (see module doc)."""
        day = self._case_day(root, case)
        rca = root / "rca_data" / day
        slots = _window_slots(case.window)
        metrics = day_metrics(str(rca / "metric"), self.system(rca))
        ct = CaseTelemetry(
            case=case,
            spans=_cut(_read_slots(rca / "trace", slots, "trace"), "start_ns", case.window),
            logs=_cut(_read_slots(rca / "log", slots, "log"), "ts_ns", case.window),
            metrics=_cut(metrics, "ts_ns", case.window),
        )
        if case.baseline is not None:
            construct = root / "construct_data" / day
            base_slots = tuple(_slot(s) for s in self._baseline_slots(root, day))
            base_spans = _baseline_slots_table(str(construct / "trace"), base_slots, "trace")
            base_logs = _baseline_slots_table(str(construct / "log"), base_slots, "log")
            ct.baseline_spans = _cut(base_spans, "start_ns", case.baseline)
            ct.baseline_logs = _cut(base_logs, "ts_ns", case.baseline)
            ct.baseline_metrics = _cut(metrics, "ts_ns", case.baseline)
        if metric_baseline_minutes is not None:
            before = TimeWindow(
                start=case.window.start - metric_baseline_minutes * _MINUTE, end=case.window.start
            )
            ct.baseline_metrics = _cut(metrics, "ts_ns", before)
        return ct

    def iter_telemetry(
        self, root: Path, parts: list[str] | None = None, kinds: Collection[str] | None = None
    ) -> Iterator[tuple[str, str, pa.Table]]:
        """Every trace, log and metric file of the days (``rca_data`` and the fault-free
        ``construct_data`` slots; ``construct_data/*/metric`` duplicates ``rca_data`` and is
        skipped). Trace-id lists are not telemetry and are skipped too. Files are read two
        ahead on worker threads while the caller consumes the previous one."""
        wanted = check_kinds(kinds)
        jobs = self._telemetry_jobs(root, self._days(root, parts))
        return read_ahead(job for job in jobs if job[0] in wanted)

    def _telemetry_jobs(
        self, root: Path, days: list[str]
    ) -> Iterator[tuple[str, Path, Callable[[Path], pa.Table]]]:
        for day in days:
            rca = root / "rca_data" / day
            construct = root / "construct_data" / day
            for kind, folder, reader in (
                ("spans", "trace", read_spans),
                ("logs", "log", read_logs),
            ):
                for base in (rca, construct):
                    for path in list_csv(base / folder, f"_{folder}"):
                        yield kind, path, reader
            system = self.system(rca)  # also checks the metric folder exists
            for path, reader in _metric_readers(rca / "metric", system):
                yield "metrics", path, reader

    def trace_ids(self, root: Path, case: LabelledCase) -> pa.Array:
        """Distinct trace ids listed for the case's slots (``traceid/HH_MM_traceid.csv``).

        The lists are complete even where the trace files are missing (most OB slots), so they
        tell "there was traffic we have no spans for" from "there was no traffic"."""
        day = self._case_day(root, case)
        folder = root / "rca_data" / day / "traceid"
        lists = [
            read_trace_ids(p)
            for s in _window_slots(case.window)
            if (p := find_csv(folder / f"{s}_traceid.csv")) is not None
        ]
        if not lists:
            return pa.array([], pa.string())
        return pc.unique(pa.chunked_array(lists, pa.string()))

    def dependency_graph(self, root: Path, day: str) -> nx.DiGraph:
        """OB ``metric/dependency.csv`` as a service call graph (edge attribute ``weight``);
        an empty graph for days without one (TT)."""
        self._days(root, [day])
        graph = nx.DiGraph()
        path = find_csv(root / "rca_data" / day / "metric" / "dependency.csv")
        if path is not None:
            for source, target, weight in read_dependencies(path):
                graph.add_edge(source, target, weight=weight)
        return graph


def _window_slots(window: TimeWindow) -> list[str]:
    """The case's own minute slots ``M..M+2`` for a window ``[M - 1 min, M + 3 min)``."""
    first = _minute(window.start) + _MINUTE
    count = int((window.end - first) / _MINUTE)
    return [_slot(first + i * _MINUTE) for i in range(max(count, 1))]


def _read_slots(folder: Path, slots: list[str], kind: str) -> pa.Table:
    paths = [p for s in slots if (p := find_csv(folder / f"{s}_{kind}.csv")) is not None]
    if not paths:
        return (SPAN_SCHEMA if kind == "trace" else LOG_SCHEMA).empty_table()
    return cached_table(f"nezha-{kind}-slots", [], paths, lambda: _parse_slots(paths, kind))


def _parse_slots(paths: list[Path], kind: str) -> pa.Table:
    if kind == "trace":
        reader, schema, key = read_spans, SPAN_SCHEMA, "start_ns"
    else:
        reader, schema, key = read_logs, LOG_SCHEMA, "ts_ns"
    tables = [reader(p) for p in paths]
    if len(tables) == 1:
        return tables[0]
    # neighbouring slot files overlap (long files repeat up to ~1000 rows of the next slot)
    sql = (
        "SELECT * FROM t QUALIFY row_number() OVER (PARTITION BY trace_id, span_id) = 1"
        if kind == "trace"
        else "SELECT DISTINCT * FROM t"
    )
    return duck_query(f"{sql} ORDER BY {key}", t=pa.concat_tables(tables)).cast(schema)


@functools.lru_cache(maxsize=8)
def _baseline_slots_table(folder: str, slots: tuple[str, ...], kind: str) -> pa.Table:
    """The fault-free slot files, read once per day: every case of the day shares them."""
    return _read_slots(Path(folder), list(slots), kind)


def _cut(table: pa.Table, column: str, window: TimeWindow) -> pa.Table:
    ts = table[column]
    keep = pc.and_(pc.greater_equal(ts, window.start_ns), pc.less(ts, window.end_ns))
    return table.filter(keep)


def _metric_readers(folder: Path, system: str) -> Iterator[tuple[Path, Callable[[Path], pa.Table]]]:
    """Each metric file of a day with the reader for its kind."""
    require_dir(folder, "Nezha metric folder")
    for path in list_csv(folder, "_metric"):
        yield path, read_pod_metrics
    entry = find_csv(folder / "front_service.csv")
    if entry is not None:
        yield entry, functools.partial(read_entry_metrics, service=ENTRY_SERVICE[system])
    for side in ("source", "destination"):
        edges = find_csv(folder / f"{side}_50.csv")
        if edges is not None:
            yield edges, functools.partial(read_edge_metrics, reported_by=side)


@functools.lru_cache(maxsize=4)
def day_metrics(folder: str, system: str) -> pa.Table:
    """All metric series of one day (cached in memory and on disk: ``load_case`` cuts every case
    of the day from it)."""
    readers = list(_metric_readers(Path(folder), system))

    def parse() -> pa.Table:
        tables = [reader(path) for path, reader in readers]
        return pa.concat_tables(tables) if tables else METRIC_SCHEMA.empty_table()

    return cached_table("nezha-day-metrics", [system], [p for p, _ in readers], parse)
