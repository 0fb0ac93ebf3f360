"""Reading a ``torch.save`` checkpoint without torch: tensors come back as numpy arrays.

Why: loading the trained bundle was the one reason inference imported torch. A ``torch.save``
file is a zip archive holding a pickle (``data.pkl``) whose tensors point at raw little-endian
storages (``data/<key>``). The unpickler here admits only what our checkpoints contain — plain
containers, ``OrderedDict``, tensors of the storage types below — and refuses any other global,
as ``torch.load(weights_only=True)`` does, so a crafted file cannot run code.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

_STORAGES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _Storage:
    def __init__(self, dtype: type, data: bytes) -> None:
        self.array = np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<"))


def _rebuild_tensor(
    storage: _Storage,
    offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    *_: object,
) -> np.ndarray:
    flat = storage.array
    if not size:
        return np.array(flat[offset])
    item = flat.itemsize
    view = np.lib.stride_tricks.as_strided(
        flat[offset:], shape=size, strides=tuple(s * item for s in stride)
    )
    return np.array(view)  # a copy: writable, contiguous, independent of the archive


class _Unpickler(pickle.Unpickler):
    def __init__(self, archive: zipfile.ZipFile, prefix: str, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self._archive = archive
        self._prefix = prefix

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if module == "torch" and name in _STORAGES:
            return _STORAGES[name]
        raise pickle.UnpicklingError(f"checkpoint refers to {module}.{name}, not allowed")

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r:.60}")
        _, dtype, key, _location, _numel = pid
        return _Storage(dtype, self._archive.read(f"{self._prefix}data/{key}"))


def read_torch_file(path: Path) -> Any:
    """The object ``torch.save`` wrote to ``path``, tensors as numpy arrays.

    Raises ``zipfile.BadZipFile``, ``KeyError`` or ``pickle.UnpicklingError`` on a damaged or
    foreign file; the checkpoint loader turns those into one clear error.
    """
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pkl = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pkl is None:
            raise KeyError("no data.pkl in the archive: not a torch.save file")
        prefix = pkl[: -len("data.pkl")]
        byteorder = f"{prefix}byteorder"
        if byteorder in names and archive.read(byteorder).strip() != b"little":
            raise pickle.UnpicklingError("big-endian checkpoint")
        return _Unpickler(archive, prefix, archive.read(pkl)).load()
