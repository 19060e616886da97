"""The layers must stack: no cycle between the rooms of crates/ext, nor between the modules of
the Python package.

crates/ext: a room is a folder under crates/ext/src or a top-level file there (lib.rs aside).
Every `crate::room` path in a room's code (in `use` lines or inline) is an arrow to another
room; arrows inside one folder are not counted.

python/subinterpreters: every module (`.py` file; a package is its `__init__.py`) is a node.
Every import of a `subinterpreters.*` module in it, at the top or inside a function, absolute or
relative, is an arrow: `from pkg import name` points at `pkg.name` when that is a module, else
at `pkg`. Only the module named counts, not the parent packages Python loads on the way (every
module would otherwise point at the package `__init__`s above it). Code in strings (run in other
interpreters with `__import__`) is not an import. The extension `lowlevel` imports nothing back.

Exits 1 on a cycle, naming it and printing that graph's arrows; `-v` prints both graphs.
Run by `scripts/dev.sh lint` (and so `make lint`).
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "crates" / "ext" / "src"
PKG = ROOT / "python" / "subinterpreters"
# `crate::room`, also inside `use crate::{room::x, other::y}` groups.
PATH = re.compile(r"\bcrate::(\{[^}]*\}|[a-z_][a-z0-9_]*)")
NAME = re.compile(r"(?:^|[{,\s])([a-z_][a-z0-9_]*)(?=::|\s*[,}]|$)")
COMMENT = re.compile(r"//.*")


def room_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(SRC.rglob("*.rs")):
        room = room_of(path)
        if room == "lib":
            continue
        targets = graph.setdefault(room, set())
        text = COMMENT.sub("", path.read_text())
        for m in PATH.finditer(text):
            body = m.group(1)
            names = NAME.findall(body.strip("{}")) if body.startswith("{") else [body]
            targets.update(n for n in names if n != room and n != "self")
    return graph


def module_of(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def py_edges() -> dict[str, set[str]]:
    paths = {module_of(p): p for p in sorted(PKG.rglob("*.py"))}
    # The extension: its stub names it (it imports no module of the package).
    modules = set(paths) | {module_of(p) for p in PKG.rglob("*.pyi")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = graph.setdefault(name, set())
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                found = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            else:
                continue
            targets.update(
                t for t in found if t.split(".")[0] == PKG.name and t != name and t in modules
            )
    return graph


def short(module: str) -> str:
    return module.removeprefix(PKG.name + ".") if module != PKG.name else "(__init__)"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def show(graph: dict[str, set[str]], name, file=sys.stdout) -> None:
    width = max(len(name(n)) for n in graph)
    for node in sorted(graph):
        targets = ", ".join(sorted(name(t) for t in graph[node])) or "-"
        print(f"{name(node):{width}} -> {targets}", file=file)


def main() -> int:
    verbose = "-v" in sys.argv
    failed = 0
    checks = (
        ("crates/ext rooms", edges(), str),
        ("python/subinterpreters modules", py_edges(), short),
    )
    for what, graph, name in checks:
        if verbose:
            show(graph, name)
        cycle = find_cycle(graph)
        if cycle:
            if not verbose:
                show(graph, name, sys.stderr)
            print(f"{what} form a cycle: " + " -> ".join(map(name, cycle)), file=sys.stderr)
            failed = 1
        elif verbose:
            print(f"no cycle between {what}")
    return failed


if __name__ == "__main__":
    sys.exit(main())
