#!/usr/bin/env python3
"""Replace the citations of the old outside spec with citations of docs/, using docs/spec-map.tsv.

Each line of the map is `<exact text>\t<replacement>`; `\\n`, `\\t` and `\\\\` in either column
stand for a newline, a tab and a backslash. Keys are applied longest first, as exact string
replacements, to the project's source and documentation files (target/, .venv/ and .git/ are
skipped, and so is docs/ itself). After replacing, a line keeps its width where that is part of
its layout: a `# -- title ----` banner gets its dashes re-padded and a `│ ... │` box line its
spaces. A comment line that became longer than the limit is re-wrapped into the comment line
that follows it (or a new one). The script then reports the count per key, keys that matched
nothing, lines still over the limit, and every remaining mention of SPEC or STYLE.md.

Usage: scripts/apply_spec_map.py [--root DIR] [--map FILE] [--dry-run] [--width N]
"""

from __future__ import annotations

import argparse
import os
import re
import sys

SUFFIXES = (".rs", ".py", ".pyi", ".md", ".toml", ".sh", ".txt", ".cfg", ".ini", ".yml", ".yaml")
NAMES = ("Makefile",)
SKIP_DIRS = {"target", ".venv", ".git", "docs", "node_modules", "__pycache__"}
LEFTOVER = re.compile(r"SPEC|STYLE\.md|§")
BANNER = re.compile(r"^(\s*# -- .*?) (-{3,})$")
BOX = re.compile(r"^(.*\S)( +)│$")
COMMENT = re.compile(r"^(\s*(?://[/!]?|#) )(\S.*)$")


def unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            out.append({"n": "\n", "t": "\t", "\\": "\\"}.get(text[i + 1], "\\" + text[i + 1]))
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def load_map(path: str) -> list[tuple[str, str]]:
    pairs = []
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if not line.strip():
                continue
            if line.count("\t") != 1:
                sys.exit(f"{path}:{n}: expected exactly one tab")
            key, value = (unescape(part) for part in line.split("\t"))
            pairs.append((key, value))
    keys = [k for k, _ in pairs]
    dupes = {k for k in keys if keys.count(k) > 1}
    if dupes:
        sys.exit(f"{path}: duplicate keys: {sorted(dupes)}")
    return sorted(pairs, key=lambda kv: (-len(kv[0]), kv[0]))


def files(root: str):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith(SUFFIXES) or name in NAMES:
                yield os.path.join(dirpath, name)


def keep_width(old: str, new: str) -> str:
    """Restore the width of a banner or box line whose content changed length."""
    if len(new) == len(old) or "\n" in new:
        return new
    m_old, m_new = BANNER.match(old), BANNER.match(new)
    if m_old and m_new:
        dashes = max(3, len(old) - len(m_new.group(1)) - 1)
        return f"{m_new.group(1)} {'-' * dashes}"
    m_old, m_new = BOX.match(old), BOX.match(new)
    if m_old and m_new:
        spaces = max(1, len(old) - len(m_new.group(1)) - 1)
        return f"{m_new.group(1)}{' ' * spaces}│"
    return new


def rewrap(lines: list[str], i: int, width: int) -> None:
    """Move the words of comment line i that pass `width` to the start of the next line."""
    m = COMMENT.match(lines[i])
    if not m or len(lines[i]) <= width:
        return
    prefix, words = m.group(1), m.group(2).split(" ")
    keep: list[str] = []
    for w in words:
        if keep and len(prefix) + len(" ".join([*keep, w])) > width:
            break
        keep.append(w)
    moved = words[len(keep) :]
    if not moved:
        return
    lines[i] = prefix + " ".join(keep)
    nxt = COMMENT.match(lines[i + 1]) if i + 1 < len(lines) else None
    if nxt and nxt.group(1) == prefix and not BANNER.match(lines[i + 1]):
        lines[i + 1] = prefix + " ".join([*moved, nxt.group(2)])
    else:
        lines.insert(i + 1, prefix + " ".join(moved))
    rewrap(lines, i + 1, width)


def apply(path: str, pairs, counts, width: int, dry_run: bool) -> list[str]:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    originals = set(text.split("\n"))
    new_text = text
    # Keys spanning lines first (they are the longest, and may contain shorter keys).
    for key, value in pairs:
        if "\n" in key and key in new_text:
            counts[key] += new_text.count(key)
            new_text = new_text.replace(key, value)
    # Then line by line, so that each changed line can keep its width.
    lines = []
    for line in new_text.split("\n"):
        new = line
        for key, value in pairs:
            if "\n" not in key and key in new:
                counts[key] += new.count(key)
                new = new.replace(key, value)
        lines.extend(keep_width(line, new).split("\n"))
    i = 0
    while i < len(lines):
        if lines[i] not in originals and len(lines[i]) > width and not BANNER.match(lines[i]):
            rewrap(lines, i, width)
        i += 1
    new_text = "\n".join(lines)
    if new_text == text:
        return []
    long_lines = [
        f"{path}:{n}: {len(line)} columns"
        for n, line in enumerate(lines, 1)
        if line not in originals and len(line) > width and not path.endswith(".md")
    ]
    if not dry_run:
        with open(path, "w", encoding="utf-8") as f:
            f.write(new_text)
    return long_lines


def main() -> int:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--root", default=here, help="tree to rewrite (default: this checkout)")
    ap.add_argument("--map", default=None, help="map file (default: ROOT/docs/spec-map.tsv)")
    ap.add_argument("--dry-run", action="store_true", help="report only, write nothing")
    ap.add_argument("--width", type=int, default=100, help="line limit for code (default 100)")
    args = ap.parse_args()
    map_path = args.map or os.path.join(args.root, "docs", "spec-map.tsv")
    pairs = load_map(map_path)
    counts = {k: 0 for k, _ in pairs}
    long_lines: list[str] = []
    for path in files(args.root):
        if os.path.abspath(path) == os.path.abspath(__file__):
            continue
        long_lines += apply(path, pairs, counts, args.width, args.dry_run)

    total = sum(counts.values())
    mode = "dry run" if args.dry_run else "written"
    print(f"{total} replacements from {len(pairs)} keys ({mode})")
    for key, _ in pairs:
        if counts[key]:
            print(f"  {counts[key]:3d}  {key!r}")
    unused = [k for k, _ in pairs if not counts[k]]
    if unused:
        print(f"{len(unused)} keys matched nothing:")
        for k in unused:
            print(f"       {k!r}")
    if long_lines:
        print(f"{len(long_lines)} changed lines are longer than {args.width} columns:")
        for entry in long_lines:
            print(f"  {entry}")
    leftovers = []
    for path in files(args.root):
        if os.path.abspath(path) == os.path.abspath(__file__):
            continue
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if LEFTOVER.search(line):
                    leftovers.append(f"  {path}:{n}: {line.strip()[:120]}")
    if args.dry_run:
        print("(dry run: the leftover list below is of the unchanged tree)")
    if leftovers:
        print(f"{len(leftovers)} mentions of SPEC / STYLE.md / § remain:")
        print("\n".join(leftovers))
        return 1
    print("no mention of SPEC / STYLE.md / § remains")
    return 0


if __name__ == "__main__":
    sys.exit(main())
