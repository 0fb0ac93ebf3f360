"""The one log normalisation + template layer: variable masking and a Drain-style streaming
template miner with persisted state.

Why our own (about 150 lines) instead of the drain3 package: drain3 pins dependencies that
conflict with fastmcp. The algorithm is Drain's (He et al., ICWS 2017): mask variables
(IPs, UUIDs, hex ids, numbers), route the line through a fixed-depth tree keyed by token count
and the first tokens, then join the most similar template in that leaf if the share of equal
tokens reaches the threshold (the differing positions become ``<*>``), else start a new one.
State (templates and their tree paths) is a small JSON file, so template ids stay stable
across runs and the T1 log branch, the fingerprints and ``search_logs`` see the same ids.

One change to Drain: a line that names its code location (Logback's ``Class#line``) is routed
by it first, so two statements never share a template however alike their words are. The code
location is what says which statement ran, and T1's "cut code path" evidence needs exactly that.
Only the first :data:`MAX_LINE_CHARS` characters of a line are read: its statement is at the
start, and payload dumps behind it would only cost masking time.
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel

from tools.core.errors import InputError

WILDCARD = "<*>"
MAX_LINE_CHARS = 240
# a Logback/Log4j code location, ``t.c.TravelServiceImpl#366``: which statement wrote the line
CODE_LOCATION = re.compile(r"[A-Za-z_][\w.$]*#\d+")
_MASKS = (
    (
        re.compile(
            r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
        ),
        "<UUID>",
    ),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b"), "<IP>"),
    # generated ids joined by dashes (task-3f2a-0001, ctx-12): digits and letters mixed
    (re.compile(r"(?<![\w.])(?=[\w-]*\d)(?=[\w-]*[A-Za-z])\w+(?:-\w+)+(?![\w.-])"), "<ID>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<HEX>"),
    (re.compile(r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"), "<HEX>"),
    # numbers, but not the line number of a code location (``Impl#366``)
    (re.compile(r"(?<![\w.#])[-+]?\d+(?:\.\d+)?(?:ms|s|us|ns|%)?(?![\w.])"), "<NUM>"),
)
_SEPARATORS = re.compile(r"[=,;:]+")
# What ``str.split()`` splits at (plus NUL, which is not text), as an RE2 class for Arrow.
_WHITESPACE = (
    r"[\x00\t\n\x0b\x0c\r\x1c-\x1f \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}"
    r"\x{202f}\x{205f}\x{3000}]+"
)
_TOKEN_SEP = "\x00"


_SPACES = re.compile(r"(\s+)")


def mask(line: str) -> str:
    """``line`` with its variables replaced by ``<UUID>``, ``<IP>``, ``<ID>``, ``<HEX>``, ``<NUM>``.

    Every mask stops at whitespace, and whitespace satisfies each mask's boundary exactly as the
    line's start and end do, so masking word by word is the same as masking the whole line.
    Words repeat across lines (logger names, levels, message words) and are masked once."""
    parts = _SPACES.split(line)
    parts[::2] = [_mask_word(w) for w in parts[::2]]
    return "".join(parts)


@lru_cache(maxsize=1 << 16)
def _mask_word(word: str) -> str:
    if "-" not in word and not any(c.isdigit() for c in word):
        return word  # every mask needs a digit, or a dash (an all-letter hex UUID)
    for pattern, token in _MASKS:
        word = pattern.sub(token, word)
    return word


def tokenize(line: str) -> list[str]:
    """The masked words of a line's first :data:`MAX_LINE_CHARS` characters, split further at
    ``= , ; :`` (the same as splitting the masked line, since no mask spans whitespace)."""
    words = line[:MAX_LINE_CHARS].replace(_TOKEN_SEP, " ").split()
    return [t for w in words for t in _word_tokens(w)]


@lru_cache(maxsize=1 << 16)
def _word_tokens(word: str) -> tuple[str, ...]:
    return tuple(t for t in _SEPARATORS.split(_mask_word(word)) if t)


class Template(BaseModel):
    template_id: int
    template: str
    count: int


class _Cluster:
    __slots__ = ("cid", "count", "path", "tokens")

    def __init__(self, cid: int, tokens: list[str], path: list[str], count: int = 1) -> None:
        self.cid, self.tokens, self.path, self.count = cid, tokens, path, count

    def view(self) -> Template:
        return Template(template_id=self.cid, template=" ".join(self.tokens), count=self.count)


class TemplateMiner:
    """Streaming template mining; ``add`` one line at a time, ``save``/``load`` the state."""

    def __init__(
        self,
        depth: int = 4,
        similarity: float = 0.4,
        max_children: int = 100,
        state_path: Path | None = None,
    ) -> None:
        if depth < 3:
            raise ValueError("depth must be >= 3 (root, length, at least one token level)")
        self.depth, self.similarity, self.max_children = depth, similarity, max_children
        self.state_path = state_path
        self._tree: dict[str, dict] = {}
        self._clusters: list[_Cluster] = []
        self._seen: dict[tuple[str, ...], int] = {}
        if state_path is not None and state_path.exists():
            self._load(state_path)

    # -- routing -----------------------------------------------------------------------------
    def _path(self, tokens: list[str], create: bool) -> list[str] | None:
        node = (
            self._tree.setdefault(str(len(tokens)), {})
            if create
            else self._tree.get(str(len(tokens)))
        )
        if node is None:
            return None
        path = [str(len(tokens))]
        where = next((t for t in tokens if CODE_LOCATION.fullmatch(t)), None)
        if where is not None:
            key = "@" + where
            if key not in node and not create:
                return None
            node = node.setdefault(key, {}) if create else node[key]
            path.append(key)
        for tok in tokens[: self.depth - 2]:
            key = WILDCARD if any(c.isdigit() for c in tok) or tok.startswith("<") else tok
            if key not in node:
                if not create:
                    key = WILDCARD
                    if key not in node:
                        return None
                elif len(node) >= self.max_children:
                    key = WILDCARD
            node = node.setdefault(key, {}) if create else node[key]
            path.append(key)
        return path

    def _leaf(self, path: list[str]) -> dict:
        node = self._tree
        for key in path:
            node = node.setdefault(key, {})
        return node.setdefault("__clusters__", {})  # type: ignore[return-value]

    @staticmethod
    def _sim(template: list[str], tokens: list[str]) -> tuple[float, int]:
        same = sum(1 for a, b in zip(template, tokens, strict=True) if a == b)
        wild = sum(1 for a in template if a == WILDCARD)
        return same / max(len(tokens), 1), wild

    def _best(self, leaf: dict, tokens: list[str]) -> _Cluster | None:
        best, best_key = None, (-1.0, -1)
        for cid in leaf:
            c = self._clusters[int(cid)]
            sim, wild = self._sim(c.tokens, tokens)
            if (sim, wild) > best_key:
                best, best_key = c, (sim, wild)
        return best if best is not None and best_key[0] >= self.similarity else None

    # -- public ------------------------------------------------------------------------------
    def add(self, line: str, count: int = 1) -> Template:
        """Assign ``line`` (seen ``count`` times) to a template, creating or generalising one."""
        return self._add_tokens(tokenize(line) or ["<EMPTY>"], count)

    def _add_tokens(self, tokens: list[str], count: int) -> Template:
        seen = self._seen.get(tuple(tokens))
        if seen is not None:  # the same masked line always joins the same template
            c = self._clusters[seen]
            c.count += count
            return c.view()
        path = self._path(tokens, create=True) or []
        leaf = self._leaf(path)
        c = self._best(leaf, tokens)
        if c is None:
            c = _Cluster(len(self._clusters), tokens, path, count)
            self._clusters.append(c)
            leaf[str(c.cid)] = True
        else:
            c.tokens = [a if a == b else WILDCARD for a, b in zip(c.tokens, tokens, strict=True)]
            c.count += count
        self._seen[tuple(tokens)] = c.cid
        return c.view()

    def template_ids(self, lines: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """The template id of every line of a column, the same as :meth:`add` line by line.

        Why columnar: a window holds tens of thousands of lines but few distinct words and
        fewer distinct token sequences. Lines are split into words and re-joined as masked
        tokens in Arrow, each distinct word is masked once, and each distinct token sequence is
        routed once (with its count), in order of first appearance. Null lines read as empty."""
        text = pc.utf8_slice_codeunits(pc.fill_null(lines, ""), 0, MAX_LINE_CHARS)
        if isinstance(text, pa.ChunkedArray):
            text = text.combine_chunks()
        words = pc.split_pattern_regex(text, pattern=_WHITESPACE)
        distinct = pc.dictionary_encode(words.flatten())
        masked = pa.array(
            [_TOKEN_SEP.join(_word_tokens(w)) for w in distinct.dictionary.to_pylist()],
            pa.string(),
        )
        per_line = pa.ListArray.from_arrays(words.offsets, pc.take(masked, distinct.indices))
        keys = pc.dictionary_encode(pc.binary_join(per_line, _TOKEN_SEP))
        codes = keys.indices.to_numpy(zero_copy_only=False)
        counts = np.bincount(codes, minlength=len(keys.dictionary))
        ids = np.array(
            [
                self._add_tokens(
                    [t for t in key.split(_TOKEN_SEP) if t] or ["<EMPTY>"], int(n)
                ).template_id
                for key, n in zip(keys.dictionary.to_pylist(), counts, strict=True)
            ],
            dtype=np.int64,
        )
        return ids[codes]

    def match(self, line: str) -> Template | None:
        """The template ``line`` belongs to, without learning from it."""
        tokens = tokenize(line) or ["<EMPTY>"]
        path = self._path(tokens, create=False)
        if path is None:
            return None
        node = self._tree
        for key in path:
            node = node.get(key, {})
        c = self._best(node.get("__clusters__", {}), tokens)
        return c.view() if c else None

    def templates(self) -> list[Template]:
        return sorted((c.view() for c in self._clusters), key=lambda t: -t.count)

    def save(self, path: Path | None = None) -> Path:
        """Write the state atomically (temp file + rename): never a half-written file."""
        target = path or self.state_path
        if target is None:
            raise ValueError("no state path given")
        target.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "version": 1,
            "depth": self.depth,
            "similarity": self.similarity,
            "max_children": self.max_children,
            "clusters": [
                {"id": c.cid, "tokens": c.tokens, "path": c.path, "count": c.count}
                for c in self._clusters
            ],
        }
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, target)
        return target

    def _load(self, path: Path) -> None:
        try:
            state = json.loads(path.read_text())
            self.depth, self.similarity = int(state["depth"]), float(state["similarity"])
            self.max_children = int(state["max_children"])
            for raw in state["clusters"]:
                c = _Cluster(
                    int(raw["id"]), list(raw["tokens"]), list(raw["path"]), int(raw["count"])
                )
                if c.cid != len(self._clusters):
                    raise ValueError(f"template ids out of order at {c.cid}")
                self._clusters.append(c)
                self._leaf(c.path)[str(c.cid)] = True
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"corrupt template miner state: {exc}", path=str(path)) from exc
