"""The rooms of crates/ext must stack: no cycle of `crate::` references between them.

A room is a folder under crates/ext/src or a top-level file there (lib.rs aside). Every
`crate::room` path in a room's code (in `use` lines or inline) is an arrow to another room;
arrows inside one folder are not counted. Prints the arrows and exits 1 on a cycle, naming it.
Run by `scripts/dev.sh lint` (and so `make lint`).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "crates" / "ext" / "src"
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


def main() -> int:
    graph = edges()
    verbose = "-v" in sys.argv
    if verbose:
        for room in sorted(graph):
            print(f"{room:10} -> {', '.join(sorted(graph[room])) or '-'}")
    cycle = find_cycle(graph)
    if cycle:
        print("crates/ext rooms form a cycle: " + " -> ".join(cycle), file=sys.stderr)
        return 1
    if verbose:
        print("no cycle between rooms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
