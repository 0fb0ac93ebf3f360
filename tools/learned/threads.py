"""Run the small learned models on one intra-op thread.

Why: the models are tiny (a few thousand parameters, batches of a few hundred short series), so
intra-op parallelism costs more in synchronisation than it gains; with two busy cores a training
step measured 2.8 s on two threads and 0.15 s on one. The previous setting is restored, so
callers that run big torch work keep theirs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def one_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
