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
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel

from tools.telemetry.errors import BackendError, TamoError
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
    labels: dict[str, str] = {}
    if labels_json:
        for k, v in json.loads(labels_json).items():
            if k != "__name__" and v is not None:
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


def write_openmetrics(table: pa.Table, out: IO[str]) -> OpenMetricsSummary:
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
        out.write("# EOF\n")
        return OpenMetricsSummary(samples=0, series=0, metrics=[], min_ts_ns=None, max_ts_ns=None)
    raw_names = table["name"].to_pylist()
    unique_raw = sorted(set(raw_names))
    clean = {n: _sanitize(n, _NAME_INVALID) for n in unique_raw}
    bad = pc.or_(pc.is_nan(table["value"]), pc.less(table["value"], 0.0))
    not_counters = {clean[n] for n in pc.unique(table["name"].filter(bad)).to_pylist()}
    families = _families(sorted(set(clean.values())), not_counters)

    # One text prefix per distinct series; rows refer to it by index.
    keys = zip(
        raw_names,
        table["service"].to_pylist(),
        table["pod"].to_pylist(),
        table["labels"].to_pylist(),
        strict=True,
    )
    prefix_of: dict[tuple[str, str | None, str | None, str | None], int] = {}
    prefixes: list[str] = []
    sort_keys: list[tuple[str, str]] = []
    series_idx: list[int] = []
    for key in keys:
        idx = prefix_of.get(key)
        if idx is None:
            idx = prefix_of[key] = len(prefixes)
            name = clean[key[0]]
            prefixes.append(name + _label_text(key[3], key[1], key[2]))
            sort_keys.append((families[name][0], prefixes[-1]))
        series_idx.append(idx)
    # Rank series by (family, text) so a plain integer sort orders the file.
    order = sorted(range(len(prefixes)), key=sort_keys.__getitem__)
    rank = [0] * len(prefixes)
    for r, i in enumerate(order):
        rank[i] = r
    work = pa.table(
        {
            "series": pa.array([rank[i] for i in series_idx], pa.int64()),
            "ts_ns": table["ts_ns"],
            "row": pa.array(range(table.num_rows), pa.int64()),
        }
    )
    idx = pc.sort_indices(
        work, [("series", "ascending"), ("ts_ns", "ascending"), ("row", "ascending")]
    )
    work = work.take(idx)
    values = table["value"].take(work["row"])
    # Keep the last row of each (series, ts): drop a row when the next has the same key.
    series_col, ts_col = work["series"], work["ts_ns"]
    n = work.num_rows
    if n > 1:
        same_next = pc.and_(
            pc.equal(series_col.slice(0, n - 1), series_col.slice(1)),
            pc.equal(ts_col.slice(0, n - 1), ts_col.slice(1)),
        )
        keep = pa.concat_arrays([pc.invert(same_next).combine_chunks(), pa.array([True])])
        series_col, ts_col, values = (
            series_col.filter(keep),
            ts_col.filter(keep),
            values.filter(keep),
        )

    ranked_prefixes = pa.array([prefixes[i] for i in order], pa.string())
    lines = pc.binary_join_element_wise(
        pc.take(ranked_prefixes, series_col), _value_text(values), _timestamp_text(ts_col), " "
    ).to_pylist()
    kind_of = dict(families.values())
    family_of_rank = [sort_keys[i][0] for i in order]
    series_list = series_col.to_pylist()
    start = 0
    for pos in range(1, len(lines) + 1):
        family = family_of_rank[series_list[pos - 1]]
        if pos < len(lines) and family_of_rank[series_list[pos]] == family:
            continue
        out.write(f"# TYPE {family} {kind_of[family]}\n")
        out.write("\n".join(lines[start:pos]))
        out.write("\n")
        start = pos
    out.write("# EOF\n")
    return OpenMetricsSummary(
        samples=len(lines),
        series=len(prefixes),
        metrics=sorted(families),
        min_ts_ns=pc.min(ts_col).as_py(),
        max_ts_ns=pc.max(ts_col).as_py(),
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
    min_ts_ns: int | None = None
    max_ts_ns: int | None = None
    example_metric: str | None = None


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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child counts as gone.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


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

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

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
        return self._pid is not None and _alive(self._pid)

    # -- backfill ------------------------------------------------------------------------------

    def backfill(self, metrics: pa.Table | Iterable[pa.Table]) -> OpenMetricsSummary:
        """Turn ``METRIC_SCHEMA`` rows into TSDB blocks under ``data_dir`` (several tables may
        come one after another; overlapping blocks are merged by Prometheus)."""
        tables = [metrics] if isinstance(metrics, pa.Table) else list(metrics)
        promtool = find_binary("promtool")
        was_running = self.running
        if was_running:
            self.stop()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        total = OpenMetricsSummary(samples=0, series=0, metrics=[], min_ts_ns=None, max_ts_ns=None)
        for i, table in enumerate(tables):
            om_file = self.workdir / f"backfill-{i}.om"
            with om_file.open("w", encoding="utf-8") as fh:
                summary = write_openmetrics(table, fh)
            if summary.samples:
                self._promtool(promtool, om_file)
            om_file.unlink()
            total = _merge(total, summary)
        self.metric_names.update(total.metrics)
        for ts in (total.min_ts_ns, total.max_ts_ns):
            if ts is not None:
                self.min_ts_ns = ts if self.min_ts_ns is None else min(self.min_ts_ns, ts)
                self.max_ts_ns = ts if self.max_ts_ns is None else max(self.max_ts_ns, ts)
        if was_running:
            self.start()
        return total

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
        if pid is not None and _alive(pid):
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
            if not _alive(pid):
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
            min_ts_ns=self.min_ts_ns,
            max_ts_ns=self.max_ts_ns,
            example_metric=min(self.metric_names) if self.metric_names else None,
        )

    @classmethod
    def attach(cls, state: LocalPrometheusState) -> LocalPrometheus:
        """A handle on a server started earlier (possibly by another process)."""
        prom = cls(Path(state.workdir), port=state.port)
        prom.min_ts_ns, prom.max_ts_ns = state.min_ts_ns, state.max_ts_ns
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


def _merge(a: OpenMetricsSummary, b: OpenMetricsSummary) -> OpenMetricsSummary:
    lo = [t for t in (a.min_ts_ns, b.min_ts_ns) if t is not None]
    hi = [t for t in (a.max_ts_ns, b.max_ts_ns) if t is not None]
    return OpenMetricsSummary(
        samples=a.samples + b.samples,
        series=a.series + b.series,
        metrics=sorted(set(a.metrics) | set(b.metrics)),
        min_ts_ns=min(lo) if lo else None,
        max_ts_ns=max(hi) if hi else None,
    )
