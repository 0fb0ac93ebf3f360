"""Labelled RCA datasets (Nezha OB/TT, RCD Sock Shop) as cases and columnar telemetry.

``get_adapter(name)`` returns a :class:`DatasetAdapter`; see ``/work/team/readme_datasets.md``
for how cases, windows and metric names are defined.
"""

from __future__ import annotations

from tools.core.errors import DatasetError
from tools.telemetry.datasets.base import DatasetAdapter
from tools.telemetry.datasets.nezha import NezhaAdapter
from tools.telemetry.datasets.sockshop import SockShopAdapter

ADAPTERS: dict[str, type[DatasetAdapter]] = {
    NezhaAdapter.name: NezhaAdapter,
    SockShopAdapter.name: SockShopAdapter,
}


def get_adapter(name: str) -> DatasetAdapter:
    """The adapter registered under ``name`` (``nezha`` or ``sockshop-rcd``)."""
    try:
        return ADAPTERS[name]()
    except KeyError:
        known = ", ".join(sorted(ADAPTERS))
        raise DatasetError(f"unknown dataset {name!r} (known: {known})") from None


__all__ = ["ADAPTERS", "DatasetAdapter", "NezhaAdapter", "SockShopAdapter", "get_adapter"]
