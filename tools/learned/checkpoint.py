"""Checkpoints that know what made them, and refuse to load into anything else.

Why so strict: a checkpoint silently loaded into changed model code, or one trained on another
dataset, gives confident nonsense. Every file stores its kind, its config, the code version (the
package version plus a hash of the model source files) and the dataset signature, and
:func:`load_checkpoint` names exactly which of those does not match.
"""

from __future__ import annotations

import hashlib
import io
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from tools.core.errors import CheckpointError

_MODEL_SOURCES = (
    "channels.py",
    "series.py",
    "aligned.py",
    "diffusion.py",
    "fusion.py",
    "localize.py",
    "classifier.py",
    "changepoint.py",
    "incident.py",
    "ranker.py",
)
FORMAT = "tamo-learned/1"


def code_version() -> str:
    """``<package version>+<12 hex of sha256 over the model source files>``."""
    try:
        pkg = version("tamo-rca")
    except PackageNotFoundError:
        pkg = "0+unknown"
    h = hashlib.sha256()
    here = Path(__file__).parent
    for name in _MODEL_SOURCES:
        h.update(name.encode())
        h.update((here / name).read_bytes())
    return f"{pkg}+{h.hexdigest()[:12]}"


def save_checkpoint(
    path: Path,
    kind: str,
    state_dict: dict[str, Any],
    config: dict[str, Any],
    dataset: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> None:
    """Write atomically (temp file + rename): a crash never leaves half a checkpoint."""
    payload = {
        "format": FORMAT,
        "kind": kind,
        "state_dict": state_dict,
        "config": config,
        "code_version": code_version(),
        "dataset": dataset,
        "extra": extra or {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(payload, buf)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(path)


def load_checkpoint(path: Path, kind: str, dataset: str | None = None) -> dict[str, Any]:
    """Load and verify a checkpoint; raises :class:`CheckpointError` saying what is wrong."""
    if not path.is_file():
        raise CheckpointError("checkpoint file not found", source=str(path))
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        raise CheckpointError(
            f"corrupt or unreadable checkpoint ({type(exc).__name__})", source=str(path)
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"not a TAMO learned-model checkpoint (expected format {FORMAT})", source=str(path)
        )
    if payload.get("kind") != kind:
        raise CheckpointError(
            f"checkpoint holds a {payload.get('kind')!r} model, expected {kind!r}", source=str(path)
        )
    current = code_version()
    if payload.get("code_version") != current:
        raise CheckpointError(
            f"checkpoint made by code version {payload.get('code_version')}, "
            f"this is {current}; retrain",
            source=str(path),
        )
    made_for = (payload.get("dataset") or {}).get("name")
    if dataset is not None and made_for != dataset:
        raise CheckpointError(
            f"checkpoint was trained on dataset {made_for!r}, not {dataset!r}", source=str(path)
        )
    return payload
