"""The import layering of ``../shared/ARCHITECTURE.md``, checked on the source tree with ``ast``.

Why a walk over the source and not ``import``: a lazy import inside a function is as much a
dependency as one at the top, and importing every module would run their side effects. Every
``import``/``from ... import`` in every product and ``evals`` module is read (relative imports
resolved) and its package checked against what the importing package may use:

    tools.core < tools.telemetry < tools.traces, tools.learned < tools.repair < tools.toolbox
    < agent < mcp_server < tamo

``testbed`` is the outside world (third-party only); ``evals`` uses the product like a client but
never the CLI; no product module imports ``evals`` or ``tests``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

_TOOLS_BELOW_TOOLBOX = {"tools.core", "tools.telemetry", "tools.traces", "tools.learned"}
_TOOLS = {*_TOOLS_BELOW_TOOLBOX, "tools.repair", "tools.toolbox", "tools"}
# package -> the project packages it may import (itself always allowed)
MAY_IMPORT: dict[str, set[str]] = {
    "tools": set(),
    "tools.core": set(),
    "tools.telemetry": {"tools.core"},
    "tools.traces": {"tools.core", "tools.telemetry"},
    "tools.learned": {"tools.core", "tools.telemetry"},
    "tools.repair": {"tools.core", "tools.telemetry", "tools.traces"},
    "tools.toolbox": _TOOLS_BELOW_TOOLBOX | {"tools.repair"},
    "agent": _TOOLS,
    "mcp_server": _TOOLS | {"agent"},
    "tamo": _TOOLS | {"agent", "mcp_server", "testbed"},
    "evals": _TOOLS | {"agent", "mcp_server", "testbed"},
    "testbed": set(),
}
PACKAGES = sorted(MAY_IMPORT, key=len, reverse=True)  # longest prefix first
PROJECT = {*MAY_IMPORT, "tests"}


def package_of(module: str) -> str | None:
    """The layer a dotted module name belongs to, or ``None`` for a third-party module."""
    return next((p for p in PACKAGES if module == p or module.startswith(p + ".")), None) or (
        "tests" if module == "tests" or module.startswith("tests.") else None
    )


def module_name(path: Path) -> str:
    parts = list(path.with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """``(line, dotted name)`` of every import in ``source``, relative ones resolved."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            # ``from tools import learned`` imports the subpackage ``tools.learned``
            out += [(node.lineno, f"{name}.{a.name}") for a in node.names]
    return out


def violations(files: dict[str, str]) -> list[str]:
    """``path:line: a imports b`` for every import that goes against :data:`MAY_IMPORT`."""
    found = []
    for rel, source in sorted(files.items()):
        path = Path(rel)
        module = module_name(path)
        own = package_of(module)
        if own is None or own == "tests":
            continue
        for line, target in imported_modules(source, module, path.name == "__init__.py"):
            theirs = package_of(target)
            if theirs is None or theirs == own:
                continue
            if theirs not in MAY_IMPORT[own] and not (own.startswith(theirs + ".")):
                found.append(f"{rel}:{line}: {own} imports {target}")
    return found


def _source_tree() -> dict[str, str]:
    files = {}
    for top in sorted(p for p in PROJECT if "." not in p and p != "tests"):
        for path in (REPO / top).rglob("*.py"):
            files[str(path.relative_to(REPO))] = path.read_text(encoding="utf-8")
    return files


# Violations still being removed, each with the work that removes it. The test asserts the list
# exactly, so a fixed one fails here until its entry goes: the list can only shrink.
BEING_REMOVED: set[str] = set()


def test_the_source_tree_respects_the_layers() -> None:
    files = _source_tree()
    assert len(files) > 100, "the walk found too few modules: wrong repository root?"
    assert set(violations(files)) == BEING_REMOVED


def side_effect_imports(files: dict[str, str]) -> list[str]:
    """Project imports whose name the module never uses: imported only to run its side effects
    (how the MCP tool registry used to be filled), which hides a dependency the reader can't see."""
    found = []
    for rel, source in sorted(files.items()):
        tree = ast.parse(source)
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
            ):
                used |= {c.value for c in ast.walk(node.value) if isinstance(c, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                bound = [(a.name, a.asname or a.name.split(".")[0]) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                bound = [(f"{node.module}.{a.name}", a.asname or a.name) for a in node.names]
            else:
                continue
            for target, name in bound:
                if package_of(target) not in (None, "tests") and name not in used:
                    found.append(f"{rel}:{node.lineno}: {target} imported for its side effects")
    return found


def test_no_module_is_imported_only_for_its_side_effects() -> None:
    assert side_effect_imports(_source_tree()) == []


def test_a_registering_import_is_caught() -> None:
    source = "import agent.diagnose_tool  # noqa: F401 (registers diagnose_incident)\n"
    (found,) = side_effect_imports({"mcp_server/server.py": source})
    assert "agent.diagnose_tool imported for its side effects" in found
    used = "from agent.diagnose_tool import diagnose_incident\nTOOLS = [diagnose_incident]\n"
    assert side_effect_imports({"mcp_server/server.py": used}) == []


# The imports issue #14 lists, and the other directions the layers forbid, as synthetic modules.
VIOLATIONS = {
    "the CLI imports evals": ("tamo/learn_cmd.py", "from evals.harness import evaluate\n"),
    "evals imports tests": (
        "evals/bench_agent.py",
        "def f():\n    from tests.agent.fake_openai import FakeOpenAI\n",
    ),
    "evals imports the CLI as a library": (
        "evals/bench_repair.py",
        "from tamo.demo_cmd import SCENARIOS\n",
    ),
    "the data plane imports repair": (
        "tools/telemetry/errors.py",
        "from tools.repair.runner import RepairRunner\n",
    ),
    "core imports the data plane": ("tools/core/settings.py", "import tools.telemetry.store\n"),
    "the data plane imports the learned tools": (
        "tools/telemetry/store.py",
        "from tools import learned\n",
    ),
    "traces imports learned (same layer)": (
        "tools/traces/analyze.py",
        "from tools.learned.series import log_series\n",
    ),
    "the toolbox imports the agent": (
        "tools/toolbox/__init__.py",
        "import agent.diagnose_tool  # registers diagnose_incident\n",
    ),
    "the agent imports the MCP server": (
        "agent/graph.py",
        "from mcp_server.server import build_server\n",
    ),
    "a product module imports the testbed": (
        "tools/traces/live.py",
        "from testbed.catalog import FAULTS\n",
    ),
    "the testbed imports the product": ("testbed/catalog.py", "from tools.core import errors\n"),
    "a relative import climbing a layer": ("tools/telemetry/store.py", "from ..learned import x\n"),
    "the MCP server imports the CLI": ("mcp_server/server.py", "from tamo.console import fail\n"),
}


@pytest.mark.parametrize(("path", "source"), VIOLATIONS.values(), ids=VIOLATIONS.keys())
def test_each_forbidden_import_is_caught(path: str, source: str) -> None:
    (found,) = violations({path: source})
    assert found.startswith(f"{path}:")


ALLOWED = {
    "core is imported by the data plane": (
        "tools/telemetry/store.py",
        "from tools.core import errors\n",
    ),
    "the CLI wires the testbed": ("tamo/testbed_cmd.py", "from testbed import Testbed\n"),
    "a relative import within a package": ("tools/traces/analyze.py", "from .config import x\n"),
    "third-party": ("tools/core/settings.py", "import pydantic\nfrom os import path\n"),
    "tests may import anything": ("tests/x.py", "import evals.harness\nimport tamo.main\n"),
}


@pytest.mark.parametrize(("path", "source"), ALLOWED.values(), ids=ALLOWED.keys())
def test_allowed_imports_pass(path: str, source: str) -> None:
    assert violations({path: source}) == []
