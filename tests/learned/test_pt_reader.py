from __future__ import annotations

import io
import pickle
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tools.learned.pt_reader import read_torch_file

DTYPES = [torch.float32, torch.float64, torch.int64, torch.int32, torch.bool, torch.uint8]


def test_tensors_come_back_as_equal_arrays(tmp_path: Path) -> None:
    w = torch.randn(4, 3)
    payload = {
        "state_dict": {
            "w": w,
            "transposed": w.T,  # a strided view of the same storage
            "slice": torch.arange(10)[3:7],  # an offset into it
            "scalar": torch.tensor(float("inf")),
        },
        "config": {"labels": ["a", "b"], "x": 1.5, "flag": True, "none": None},
    }
    torch.save(payload, tmp_path / "m.pt")
    got = read_torch_file(tmp_path / "m.pt")
    assert got["config"] == payload["config"]
    for key, tensor in payload["state_dict"].items():
        array = got["state_dict"][key]
        assert array.shape == tuple(tensor.shape) and array.flags.writeable, key
        assert np.array_equal(array, tensor.numpy()), key


@settings(max_examples=25, deadline=None)
@given(
    shape=st.lists(st.integers(0, 4), min_size=0, max_size=3),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**16),
)
def test_any_shape_and_dtype_round_trips(shape: list[int], dtype: torch.dtype, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    tensor = (torch.rand(shape, generator=gen) * 100).to(dtype)
    buf = io.BytesIO()
    torch.save({"t": tensor}, buf)
    with tempfile.NamedTemporaryFile(suffix=".pt") as f:
        f.write(buf.getvalue())
        f.flush()
        assert np.array_equal(read_torch_file(Path(f.name))["t"], tensor.numpy())


class _RunsCode:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("ran",))


def test_any_other_global_is_refused(tmp_path: Path) -> None:
    torch.save({"x": _RunsCode()}, tmp_path / "evil.pt")
    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        read_torch_file(tmp_path / "evil.pt")


@settings(max_examples=25, deadline=None)
@given(junk=st.binary(max_size=200))
def test_junk_raises_one_of_the_documented_errors(junk: bytes) -> None:
    with tempfile.NamedTemporaryFile(suffix=".pt") as f:
        f.write(junk)
        f.flush()
        with pytest.raises((zipfile.BadZipFile, KeyError, pickle.UnpicklingError)):
            read_torch_file(Path(f.name))
