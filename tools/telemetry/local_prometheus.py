"""A real Prometheus on a loopback port: offline PromQL over backfilled data, or scraping a testbed.

Why: PromQL is how SREs ask metric questions, and the RCA tools speak it through
:class:`~tools.telemetry.backends.prometheus.PrometheusClient`. To run the same queries over a
dataset on a laptop, the dataset's ``METRIC_SCHEMA`` rows are written as OpenMetrics, turned into
TSDB blocks by ``promtool tsdb create-blocks-from openmetrics``, and served by ``prometheus``
itself, with a 10-year retention (backfilled data from 2022-2023 would otherwise be deleted at
start-up by the default 15-day retention). The same class scrapes live targets (the testbed's
``/metrics`` endpoints) every second when given ``scrape_targets``.

Scrape targets are ``host:port``, a URL (``http://127.0.0.1:9101/metrics``) or ``job=URL`` to
set the ``job`` label (which the tools read as the service when no ``service`` label exists).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Self
from urllib.parse import urlsplit

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel

from tools.core.errors import BackendError, TamoError
from tools.core.processes import pid_alive
from tools.telemetry.model import METRIC_SCHEMA

INSTALL_HINT = "install it (`make setup` runs `apt-get install -y prometheus` as root)"
_NAME_INVALID = "[^a-zA-Z0-9_:]"
_LABEL_INVALID = "[^a-zA-Z0-9_]"
_PARTIAL_SUFFIXES = ("_bucket", "_count", "_sum", "_created")


def find_binary(name: str) -> str:
    """Path of ``prometheus``/``promtool`` on ``PATH``, or a ``TamoError`` saying to install it."""
    path = shutil.which(name)
    if path is None:
        raise TamoError(f"`{name}` not found on PATH; {INSTALL_HINT}")
    return path


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------------------------
# OpenMetrics
# ---------------------------------------------------------------------------------------------


def _sanitize(name: str, invalid: str) -> str:
    clean = re.sub(invalid, "_", name)
    return "_" + clean if not clean or clean[0].isdigit() else clean


def escape_label_value(value: str) -> str:
    """OpenMetrics label-value escaping: backslash, double quote and newline."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _label_text(labels_json: str | None, service: str | None, pod: str | None) -> str:
    """``{k="v",...}`` sorted; an empty value is left out (Prometheus treats it as absent)."""
    labels: dict[str, str] = {}
    if labels_json:
        for k, v in json.loads(labels_json).items():
            if k != "__name__" and v is not None and str(v) != "":
                labels[_sanitize(str(k), _LABEL_INVALID)] = str(v)
    if service and "service" not in labels:
        labels["service"] = service
    if pod and "pod" not in labels:
        labels["pod"] = pod
    if not labels:
        return ""
    inner = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


def _families(names: list[str], not_counters: set[str]) -> dict[str, tuple[str, str]]:
    """metric name -> (family name, OpenMetrics type).

    ``x_total`` is a counter of family ``x`` unless ``x`` is itself a metric or some value is
    negative or NaN (which OpenMetrics forbids for counters); histogram and
    summary parts (``_bucket``, ``_sum`` ...) cannot be reassembled into their family from rows,
    so they are ``unknown``; everything else is a ``gauge``.
    """
    present = set(names)
    out: dict[str, tuple[str, str]] = {}
    for n in names:
        if n.endswith("_total") and len(n) > 6 and n[:-6] not in present and n not in not_counters:
            out[n] = (n[:-6], "counter")
        elif n.endswith(_PARTIAL_SUFFIXES):
            out[n] = (n, "unknown")
        else:
            out[n] = (n, "gauge")
    return out


def _value_text(values: pa.ChunkedArray) -> pa.Array:
    text = pc.cast(values, pa.string())
    text = pc.if_else(pc.is_nan(values), "NaN", text)
    text = pc.if_else(pc.equal(values, math.inf), "+Inf", text)
    return pc.if_else(pc.equal(values, -math.inf), "-Inf", text)


def _timestamp_text(ts_ns: pa.ChunkedArray) -> pa.Array:
    """Epoch seconds with millisecond decimals (Prometheus stores milliseconds)."""
    ms = pc.divide(pc.add(ts_ns, 500_000), 1_000_000)  # integer division, rounded
    secs = pc.divide(ms, 1000)
    frac = pc.subtract(ms, pc.multiply(secs, 1000))
    frac_text = pc.utf8_lpad(pc.cast(frac, pa.string()), 3, "0")
    return pc.binary_join_element_wise(pc.cast(secs, pa.string()), frac_text, ".")


class OpenMetricsSummary(BaseModel):
    """What a backfill file holds; ``min_ts_ns``/``max_ts_ns`` tell a user which ``time=`` works."""

    samples: int
    series: int
    metrics: list[str]
    min_ts_ns: int | None
    max_ts_ns: int | None


SeriesKey = tuple[str, str | None, str | None, str | None]  # name, service, pod, labels JSON


def _series_keys(table: pa.Table) -> tuple[np.ndarray, list[SeriesKey]]:
    """Per row, the index of its series; and per series (name, service, pod, labels JSON).

    Vectorised: each column is dictionary-encoded and the rows' code tuples made unique with
    numpy, so Python only loops over distinct series (tens to thousands), never over samples.
    """
    codes, values = [], []
    for column in ("name", "service", "pod", "labels"):
        encoded = pc.dictionary_encode(table[column]).combine_chunks()
        codes.append(pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False))
        values.append(encoded.dictionary.to_pylist())
    sizes = [len(v) + 1 for v in values]  # +1: code -1 (null) shifted to 0
    if math.prod(sizes) < 2**62:  # one mixed-radix integer per row: a 1-D unique is fast
        packed = np.zeros(table.num_rows, dtype=np.int64)
        for code, size in zip(codes, sizes, strict=True):
            packed = packed * size + (code + 1)
        packed_unique, inverse = np.unique(packed, return_inverse=True)
        unique = np.empty((len(packed_unique), len(codes)), dtype=np.int64)
        for c in range(len(codes) - 1, -1, -1):
            unique[:, c] = packed_unique % sizes[c] - 1
            packed_unique = packed_unique // sizes[c]
    else:
        unique, inverse = np.unique(np.stack(codes, axis=1), axis=0, return_inverse=True)
    series = [
        tuple(values[c][code] if code >= 0 else None for c, code in enumerate(row))
        for row in unique.tolist()
    ]
    return inverse.reshape(-1), series  # type: ignore[return-value]


def write_openmetrics(table: pa.Table, out: IO[bytes]) -> OpenMetricsSummary:
    """Write ``METRIC_SCHEMA`` rows as one OpenMetrics exposition with timestamps, ``# EOF`` last.

    Families are contiguous with their ``# TYPE`` line first, each series' samples in time order
    (``promtool`` silently drops out-of-order samples), duplicate timestamps of a series kept
    once (the last row wins). Invalid metric/label name characters become ``_``; the ``service``
    and ``pod`` columns become labels when the labels JSON lacks them.
    """
    table = table.select(METRIC_SCHEMA.names).filter(
        pc.and_(pc.is_valid(table["ts_ns"]), pc.is_valid(table["value"]))
    )
    if table.num_rows == 0:
        out.write(b"# EOF\n")
        return OpenMetricsSummary(samples=0, series=0, metrics=[], min_ts_ns=None, max_ts_ns=None)
    row_series, series = _series_keys(table)
    clean = {n: _sanitize(n, _NAME_INVALID) for n in {key[0] for key in series}}
    bad = pc.or_(pc.is_nan(table["value"]), pc.less(table["value"], 0.0))
    not_counters = {clean[n] for n in pc.unique(table["name"].filter(bad)).to_pylist()}
    families = _families(sorted(set(clean.values())), not_counters)
    prefixes = [clean[name] + _label_text(labels, svc, pod) for name, svc, pod, labels in series]

    # A series is its text (keys that differ only by an empty service are one series); rank
    # the texts by (family, text) so that an integer sort orders the whole file.
    keyed = [
        (families[clean[key[0]]][0], prefix) for key, prefix in zip(series, prefixes, strict=True)
    ]
    texts = sorted(set(keyed))
    rank_of = {k: r for r, k in enumerate(texts)}
    rank = np.array([rank_of[k] for k in keyed], dtype=np.int64)
    work = pa.table(
        {
            "series": pa.array(rank[row_series]),
            "ts_ns": table["ts_ns"],
            "row": pa.array(np.arange(table.num_rows)),
        }
    )
    idx = pc.sort_indices(
        work, [("series", "ascending"), ("ts_ns", "ascending"), ("row", "ascending")]
    )
    work = work.take(idx)
    series_col = work["series"].to_numpy()
    ts_col = work["ts_ns"].to_numpy()
    # Keep the last row of each (series, ts): drop a row when the next has the same key.
    keep = np.ones(len(series_col), dtype=bool)
    keep[:-1] = (series_col[:-1] != series_col[1:]) | (ts_col[:-1] != ts_col[1:])
    rows = work["row"].to_numpy()[keep]
    series_col, ts_col = series_col[keep], ts_col[keep]
    values = table["value"].take(pa.array(rows))

    ranked = pa.array([text for _, text in texts], pa.large_string())
    lines = pc.binary_join_element_wise(
        pc.take(ranked, pa.array(series_col)),
        _value_text(values).cast(pa.large_string()),
        _timestamp_text(pa.array(ts_col)).cast(pa.large_string()),
        pa.scalar(" ", pa.large_string()),
    )
    # One newline-terminated line per element; the array's data buffer is then the file body,
    # written in slices per series (no Python string per sample).
    lines = pc.binary_join_element_wise(
        lines, pa.scalar("", pa.large_string()), pa.scalar("\n", pa.large_string())
    )
    lines = lines.combine_chunks() if isinstance(lines, pa.ChunkedArray) else lines
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[: len(lines) + 1]
    data = memoryview(lines.buffers()[2])
    kind_of = dict(families.values())
    family_of_rank = [(family, kind_of[family]) for family, _ in texts]
    bounds = np.flatnonzero(np.diff(series_col)) + 1 if len(series_col) else np.array([])
    starts = [0, *bounds.tolist()]
    ends = [*bounds.tolist(), len(series_col)]
    current = None
    for a, b in zip(starts, ends, strict=True):
        family, kind = family_of_rank[series_col[a]]
        if family != current:
            out.write(f"# TYPE {family} {kind}\n".encode())
            current = family
        out.write(data[offsets[a] : offsets[b]])
    out.write(b"# EOF\n")
    return OpenMetricsSummary(
        samples=len(rows),
        series=len(texts),
        metrics=sorted(families),
        min_ts_ns=int(ts_col.min()),
        max_ts_ns=int(ts_col.max()),
    )


# ---------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------


class LocalPrometheusState(BaseModel):
    """What ``tamo prometheus start`` leaves behind so that ``stop``/``status`` find the server."""

    pid: int
    url: str
    port: int
    workdir: str


def _scrape_config(targets: list[str], interval_s: float) -> str:
    """A ``prometheus.yml`` (JSON is valid YAML) scraping ``targets`` every ``interval_s``."""
    interval = f"{max(1, round(interval_s * 1000))}ms"
    jobs: dict[tuple[str, str, str], list[str]] = {}
    for target in targets:
        job, _, address = target.rpartition("=") if "=" in target else ("", "", target)
        parts = urlsplit(address if "://" in address else f"http://{address}")
        if not parts.hostname:
            raise TamoError(f"scrape target {target!r} has no host")
        netloc = f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname
        key = (job or "tamo", parts.scheme, parts.path or "/metrics")
        jobs.setdefault(key, []).append(netloc)
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {
                "job_name": f"{job}" if sum(k[0] == job for k in jobs) == 1 else f"{job}-{i}",
                "scheme": scheme,
                "metrics_path": path,
                "scrape_timeout": interval,
                "static_configs": [{"targets": addrs}],
            }
            for i, ((job, scheme, path), addrs) in enumerate(jobs.items())
        ],
    }
    return json.dumps(config, indent=2)


class LocalPrometheus:
    """A ``prometheus`` process on ``127.0.0.1`` over ``workdir/data``.

    ``backfill`` before ``start`` (or while running: the server restarts on the same port to
    load the new blocks). As a context manager it starts on enter and stops on exit, removing
    ``workdir`` if ``cleanup=True``.
    """

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        scrape_targets: list[str] | None = None,
        scrape_interval_s: float = 1.0,
        *,
        cleanup: bool = False,
        ready_timeout_s: float = 30.0,
    ) -> None:
        self.workdir = Path(workdir)
        self.port = port
        self.scrape_targets = list(scrape_targets or [])
        self.scrape_interval_s = scrape_interval_s
        self.cleanup = cleanup
        self.ready_timeout_s = ready_timeout_s
        self.min_ts_ns: int | None = None
        self.max_ts_ns: int | None = None
        self.metric_names: set[str] = set()
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None
        self._load_backfill_summary()

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def summary_file(self) -> Path:
        """What the TSDB holds (time range, metric names): survives restarts of the server."""
        return self.workdir / "backfill.json"

    @property
    def log_file(self) -> Path:
        return self.workdir / "prometheus.log"

    @property
    def url(self) -> str:
        if self.port is None:
            raise TamoError("local Prometheus has no port yet: call start() first")
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def running(self) -> bool:
        return self._pid is not None and pid_alive(self._pid)

    # -- backfill ------------------------------------------------------------------------------

    def backfill(self, metrics: pa.Table | Iterable[pa.Table]) -> OpenMetricsSummary:
        """Turn ``METRIC_SCHEMA`` rows into TSDB blocks under ``data_dir``.

        Several tables are written as one OpenMetrics file and one ``promtool`` run (each run
        costs about a second, whatever its size). Calling ``backfill`` again adds blocks;
        Prometheus merges blocks that overlap.
        """
        tables = [metrics] if isinstance(metrics, pa.Table) else list(metrics)
        promtool = find_binary("promtool")
        was_running = self.running
        if was_running:
            self.stop()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        table = (
            pa.concat_tables([t.select(METRIC_SCHEMA.names).cast(METRIC_SCHEMA) for t in tables])
            if tables
            else METRIC_SCHEMA.empty_table()
        )
        om_file = self.workdir / "backfill.om"
        try:
            with om_file.open("wb") as fh:
                total = write_openmetrics(table, fh)
            if total.samples:
                self._promtool(promtool, om_file)
        finally:
            om_file.unlink(missing_ok=True)
        self.metric_names.update(total.metrics)
        for ts in (total.min_ts_ns, total.max_ts_ns):
            if ts is not None:
                self.min_ts_ns = ts if self.min_ts_ns is None else min(self.min_ts_ns, ts)
                self.max_ts_ns = ts if self.max_ts_ns is None else max(self.max_ts_ns, ts)
        self.summary_file.write_text(
            json.dumps(
                {
                    "min_ts_ns": self.min_ts_ns,
                    "max_ts_ns": self.max_ts_ns,
                    "metrics": sorted(self.metric_names),
                }
            )
        )
        if was_running:
            self.start()
        return total

    def reset(self) -> None:
        """Delete the TSDB and what was backfilled (the server must be stopped)."""
        if self.running:
            raise TamoError("stop the local Prometheus before resetting its TSDB")
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.summary_file.unlink(missing_ok=True)
        self.min_ts_ns = self.max_ts_ns = None
        self.metric_names = set()

    def _load_backfill_summary(self) -> None:
        try:
            saved = json.loads(self.summary_file.read_text())
        except (OSError, ValueError):
            return
        self.min_ts_ns, self.max_ts_ns = saved.get("min_ts_ns"), saved.get("max_ts_ns")
        self.metric_names = set(saved.get("metrics", []))

    def _promtool(self, promtool: str, om_file: Path) -> None:
        cmd = [
            promtool,
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--max-block-duration=24h",
            str(om_file),
            str(self.data_dir),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            detail = " ".join((done.stderr or done.stdout).split())[:300]
            raise TamoError(
                f"promtool backfill failed (exit {done.returncode}): {detail}", source=str(om_file)
            )

    # -- process -------------------------------------------------------------------------------

    def start(self, *, detach: bool = False) -> str:
        """Start Prometheus and wait until ``/-/ready``; returns the URL. With ``detach=True``
        the process survives this Python process (``tamo prometheus start``)."""
        if self.running:
            return self.url
        binary = find_binary("prometheus")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text(_scrape_config(self.scrape_targets, self.scrape_interval_s))
        fixed_port = self.port is not None
        for _ in range(1 if fixed_port else 3):
            port = self.port if fixed_port else free_loopback_port()
            assert port is not None
            self.port = port
            self._spawn(binary, config, detach)
            try:
                self._wait_ready()
                return self.url
            except _AddressInUse:
                self._reap()
        raise TamoError(
            f"could not bind Prometheus to 127.0.0.1:{self.port}", source=str(self.log_file)
        )

    def _spawn(self, binary: str, config: Path, detach: bool) -> None:
        cmd = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={self.data_dir}",
            "--storage.tsdb.retention.time=10y",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
            "--web.enable-admin-api",
            "--log.level=warn",
        ]
        with self.log_file.open("ab") as log:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=detach,
            )
        self._pid = self._proc.pid

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        ready = f"{self.url}/-/ready"
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                tail = self._log_tail()
                if "address already in use" in tail:
                    raise _AddressInUse
                raise TamoError(
                    f"prometheus exited with code {self._proc.returncode}: {tail}",
                    source=str(self.log_file),
                )
            try:
                if httpx.get(ready, timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise BackendError(f"prometheus not ready after {self.ready_timeout_s:g} s", url=ready)

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " ".join(" ".join(lines[-3:]).split())[:400]

    def _reap(self) -> None:
        if self._proc is not None:
            self._proc.wait()
        self._proc = None
        self._pid = None

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, wait up to ``timeout_s``, then SIGKILL. Removes ``workdir`` if ``cleanup``."""
        pid = self._pid
        if pid is not None and pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
            if not self._wait_exit(pid, timeout_s):
                os.kill(pid, signal.SIGKILL)
                self._wait_exit(pid, 5.0)
        if self._proc is not None:
            self._proc.wait()
        self._proc = None
        self._pid = None
        if self.cleanup:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _wait_exit(self, pid: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                return True
            if not pid_alive(pid):
                return True
            time.sleep(0.05)
        return False

    # -- state (for a detached server) ---------------------------------------------------------

    def state(self) -> LocalPrometheusState:
        if self._pid is None or self.port is None:
            raise TamoError("local Prometheus is not running")
        return LocalPrometheusState(
            pid=self._pid,
            url=self.url,
            port=self.port,
            workdir=str(self.workdir),
        )

    @classmethod
    def attach(cls, state: LocalPrometheusState) -> LocalPrometheus:
        """A handle on a server started earlier (possibly by another process)."""
        prom = cls(Path(state.workdir), port=state.port)
        cmdline = Path(f"/proc/{state.pid}/cmdline")
        if cmdline.exists() and str(prom.data_dir).encode() in cmdline.read_bytes():
            prom._pid = state.pid
        return prom

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _AddressInUse(Exception):
    """The free port picked was taken before Prometheus bound it (another test, another helper)."""
