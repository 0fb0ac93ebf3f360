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

import numpy as np

from tools.core.errors import CheckpointError
from tools.learned.pt_reader import read_torch_file

_MODEL_SOURCES = (
    "channels.py",
    "layers.py",
    "torch_rng.py",
    "series.py",
    "aligned.py",
    "diffusion.py",
    "fusion.py",
    "localize.py",
    "classifier.py",
    "classifier_train.py",
    "diffusion_train.py",
    "localize_train.py",
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
    """Write atomically (temp file + rename): a crash never leaves half a checkpoint.

    ``state_dict`` holds numpy arrays (the inference weights); the file is ``torch.save``'s, so
    torch (imported here, at training time only) can read it too."""
    import torch

    payload = {
        "format": FORMAT,
        "kind": kind,
        "state_dict": {k: torch.from_numpy(np.array(v, order="C")) for k, v in state_dict.items()},
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
    """Load and verify a checkpoint (tensors as numpy arrays, no torch); raises
    :class:`CheckpointError` saying what is wrong."""
    if not path.is_file():
        raise CheckpointError("checkpoint file not found", source=str(path))
    try:
        payload = read_torch_file(path)
    except Exception as exc:  # zipfile, pickle and numpy raise many types for a damaged file
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
