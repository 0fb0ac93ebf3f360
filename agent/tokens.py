"""Token counting with tiktoken's ``cl100k_base``, offline.

Why this dance: tiktoken downloads its BPE ranks on first use, and TAMO-RCA must run with no
network. The ``bpe-openai`` wheel ships the very same ``cl100k_base.tiktoken`` file; we place it
in tiktoken's cache under the key tiktoken looks for (tiktoken then checks the file's published
SHA-256 itself), so the counts are tiktoken's own.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import tiktoken
from platformdirs import user_cache_dir

_CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"


def _seed_cache() -> None:
    cache = Path(
        os.environ.setdefault("TIKTOKEN_CACHE_DIR", user_cache_dir("tamo-rca") + "/tiktoken")
    )
    target = cache / hashlib.sha1(_CL100K_URL.encode()).hexdigest()
    if target.exists():
        return
    cache.mkdir(parents=True, exist_ok=True)
    packed = resources.files("bpe_openai.data").joinpath("cl100k_base.tiktoken.gz").read_bytes()
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(gzip.decompress(packed))
    tmp.replace(target)


@lru_cache(maxsize=1)
def encoding() -> tiktoken.Encoding:
    _seed_cache()
    return tiktoken.get_encoding("cl100k_base")


def count(text: str) -> int:
    return len(encoding().encode(text, disallowed_special=()))


def count_json(value: Any) -> int:
    return count(json.dumps(value, separators=(",", ":"), default=str))


def count_messages(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
) -> int:
    """Prompt tokens of a chat request, OpenAI's accounting: 3 per message + 3 to prime."""
    n = 3
    for m in messages:
        n += 3
        for key in ("role", "content", "name"):
            if m.get(key):
                n += count(str(m[key]))
        if m.get("tool_calls"):
            n += count_json(m["tool_calls"])
    if tools:
        n += count_json(tools)
    return n
