"""RCD (NeurIPS 2022) Sock Shop fault runs as labelled cases (metrics only).

Definitions (data card section 2):

* **case** = ``sock-shop-data/<service>-<fault>/<run>``; ``case_id`` ``<service>-<fault>/<run>``;
  service = folder name before the last ``-``; fault type = after it (``cpu`` hog, ``mem`` leak).
* **no injection time** exists: ``injected_at`` is None; the whole ``anomalous.csv`` lies in the
  fault period, so **window** = its time range ``[first, last + 1 s)``; **baseline** =
  ``normal.csv``'s range, a separate recording hours to days earlier (not contiguous).
* **metrics** (1 s rows), one series per container/service, ``pod`` null:

  ============================  =====================================  =====================
  column                        metric name                            labels
  ============================  =====================================  =====================
  ``<container>_cpu``           ``container_cpu_usage_percent`` (%     ``container``,
                                of one core, rate over 45 s)           ``service``
  ``<container>_mem``           ``container_memory_usage_bytes``       ``container``,
                                                                       ``service``
  ``<svc>_lod``                 ``service_request_rate_per_second``    ``service``
  ``<svc>_lat_<q>``             ``service_latency_p<q>_seconds``       ``service``
  ============================  =====================================  =====================

  ``service`` is the container name, so ``carts-db``, ``rabbitmq`` etc. are entities of their
  own (a database is not its service).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from tools.core.errors import DatasetError, InputError
from tools.telemetry.datasets.base import check_kinds
from tools.telemetry.datasets.columnar import const, labels_json, wide_to_long
from tools.telemetry.datasets.files import find_csv, read_ahead, read_csv, read_header, require_dir
from tools.telemetry.model import CaseTelemetry, LabelledCase, Modality, TimeWindow

_NS = 1_000_000_000
_COLUMN_RE = re.compile(
    r"^(?P<entity>[a-z0-9][a-z0-9-]*)_(?P<kind>cpu|mem|lod|lat_(?P<q>\d{1,3}))$"
)
_CASE_RE = re.compile(r"^(?P<service>[a-z0-9][a-z0-9-]*)-(?P<fault>[a-z0-9]+)$")


def sockshop_metric(column: str, *, source: str = "<column>") -> tuple[str, dict[str, str]]:
    """``carts-db_cpu`` -> (``container_cpu_usage_percent``, labels); :class:`InputError` if
    the column is none of the documented kinds."""
    m = _COLUMN_RE.match(column)
    if m is None:
        raise InputError(f"unexpected column {column!r}", path=source, line=1)
    entity, kind = m["entity"], m["kind"]
    if kind == "cpu":
        return "container_cpu_usage_percent", {"container": entity, "service": entity}
    if kind == "mem":
        return "container_memory_usage_bytes", {"container": entity, "service": entity}
    if kind == "lod":
        return "service_request_rate_per_second", {"service": entity}
    return f"service_latency_p{int(m['q'])}_seconds", {"service": entity}


def read_sockshop_metrics(path: Path) -> pa.Table:
    """One ``normal.csv``/``anomalous.csv`` -> long ``METRIC_SCHEMA`` (NaN dropped)."""
    header = read_header(path)
    if not header or header[0] != "time":
        raise InputError("first column must be 'time'", path=str(path), line=1)
    specs = [(c, *sockshop_metric(c, source=str(path))) for c in header[1:]]
    raw = read_csv(path, {"time": pa.int64()} | {c: pa.float64() for c, _, _ in specs})
    if raw["time"].null_count:
        raise InputError("empty 'time' cell", path=str(path))
    ts = pc.multiply(raw["time"].combine_chunks(), _NS)
    n = raw.num_rows
    parts = [
        wide_to_long(
            ts,
            [(name, raw[column].combine_chunks(), 1.0)],
            service=const(labels["service"], n),
            pod=const(None, n),
            labels=const(labels_json(labels), n),
        )
        for column, name, labels in specs
    ]
    return pa.concat_tables(parts)


class SockShopAdapter:
    """Adapter for the ``sockshop-rcd/`` folder (``sock-shop-data/<svc>-<fault>/<run>``)."""

    name = "sockshop-rcd"

    def _data(self, root: Path) -> Path:
        require_dir(root, "Sock Shop dataset folder")
        return require_dir(root / "sock-shop-data", "Sock Shop sock-shop-data folder")

    def _fault_dirs(self, root: Path) -> list[Path]:
        data = self._data(root)
        return sorted(d for d in data.iterdir() if d.is_dir() and _CASE_RE.match(d.name))

    def parts(self, root: Path) -> list[str]:
        runs = {r.name for d in self._fault_dirs(root) for r in d.iterdir() if r.is_dir()}
        return sorted(runs, key=lambda r: (len(r), r))

    def cases(self, root: Path, parts: list[str] | None = None) -> list[LabelledCase]:
        present = self.parts(root)
        runs = present if parts is None else list(dict.fromkeys(parts))
        for run in runs:
            if run not in present:
                raise DatasetError(
                    f"no fault folder has run {run!r} (present: {', '.join(present) or 'none'})",
                    source=str(self._data(root) / f"*/{run}"),
                )
        out = []
        for folder in self._fault_dirs(root):
            m = _CASE_RE.match(folder.name)
            assert m is not None  # _fault_dirs only keeps matching names
            for run in runs:
                run_dir = folder / run
                if not run_dir.is_dir():
                    continue
                out.append(
                    LabelledCase(
                        case_id=f"{folder.name}/{run}",
                        dataset=self.name,
                        system="SockShop",
                        service=m["service"],
                        fault_type=m["fault"],
                        injected_at=None,
                        window=_time_range(_require(run_dir, "anomalous")),
                        baseline=_time_range(_require(run_dir, "normal")),
                        modalities=[Modality.METRICS],
                    )
                )
        return out

    def _run_dir(self, root: Path, case: LabelledCase) -> Path:
        if case.dataset != self.name:
            raise DatasetError(f"case {case.case_id} belongs to dataset {case.dataset!r}")
        run_dir = self._data(root) / case.case_id
        return require_dir(run_dir, f"Sock Shop run of case {case.case_id}")

    def load_case(self, root: Path, case: LabelledCase) -> CaseTelemetry:
        """``metrics`` = the whole ``anomalous.csv``; ``baseline_metrics`` = ``normal.csv``."""
        run_dir = self._run_dir(root, case)
        return CaseTelemetry(
            case=case,
            metrics=read_sockshop_metrics(_require(run_dir, "anomalous")),
            baseline_metrics=read_sockshop_metrics(_require(run_dir, "normal")),
        )

    def iter_telemetry(
        self, root: Path, parts: list[str] | None = None, kinds: Collection[str] | None = None
    ) -> Iterator[tuple[str, str, pa.Table]]:
        """Both files of every run of ``parts`` (read ahead on worker threads)."""
        if "metrics" not in check_kinds(kinds):
            return iter(())
        data = self._data(root)
        jobs = [
            ("metrics", _require(data / case.case_id, stem), read_sockshop_metrics)
            for case in self.cases(root, parts)
            for stem in ("normal", "anomalous")
        ]
        return read_ahead(jobs)


def _require(run_dir: Path, stem: str) -> Path:
    path = find_csv(run_dir / f"{stem}.csv")
    if path is None:
        raise DatasetError(f"{stem}.csv(.gz) missing", source=str(run_dir / f"{stem}.csv"))
    return path


def _time_range(path: Path) -> TimeWindow:
    times = read_csv(path, {"time": pa.int64()})["time"]
    if len(times) == 0 or times.null_count:
        raise InputError("no rows, or an empty 'time' cell", path=str(path))
    lo, hi = pc.min_max(times).values()
    return TimeWindow.from_ns(lo.as_py() * _NS, (hi.as_py() + 1) * _NS)
