"""Layout rules of the Rust crates, read from their sources: no two types
share a name, and no module cycle."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

CRATES = Path(__file__).resolve().parent.parent / "crates"


def _sources(crate: Path) -> dict[tuple[str, ...], str]:
    out = {}
    for p in sorted((crate / "src").rglob("*.rs")):
        parts = p.relative_to(crate / "src").with_suffix("").parts
        if parts[-1] in ("mod", "lib"):
            parts = parts[:-1]
        code = re.sub(r"//[^\n]*", "", p.read_text())
        out[parts] = code.split("#[cfg(test)]")[0]
    return out


def _expand(prefix: str, body: str) -> list[str]:
    items, depth, cur = [], 0, ""
    for ch in body:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    items.append(cur)
    paths = []
    for it in (i.strip() for i in items):
        m = re.match(r"^([\w:]*?)(?:::)?\{(.*)\}$", it, re.S)
        if m:
            paths += _expand(prefix + (f"::{m.group(1)}" if m.group(1) else ""), m.group(2))
        elif it:
            paths.append(f"{prefix}::{it.split(' as ')[0].strip()}")
    return paths


def _edges(files: dict[tuple[str, ...], str], is_dir: set[tuple[str, ...]]) -> dict:
    mods = set(files)
    edges: dict[tuple[str, ...], set[tuple[str, ...]]] = {m: set() for m in mods}
    for m, code in files.items():
        paths = re.findall(r"\b((?:crate|super|self)(?:::\w+)+)(?!::\{)", code)
        for g in re.finditer(r"use\s+((?:crate|super|self)(?:::\w+)*)::\{", code):
            i, depth = g.end(), 1
            while depth:
                depth += {"{": 1, "}": -1}.get(code[i], 0)
                i += 1
            paths += _expand(g.group(1), code[g.end() : i - 1])
        for path in paths:
            parts = path.split("::")
            here = list(m) if m in is_dir else list(m[:-1])
            if parts[0] == "crate":
                base, rest = [], parts[1:]
            elif parts[0] == "self":
                base, rest = list(m), parts[1:]
            else:
                base, rest = here, parts[1:]
                while rest and rest[0] == "super":
                    base, rest = base[:-1], rest[1:]
            target, best = list(base), None
            for x in rest:
                target.append(x)
                if tuple(target) in mods:
                    best = tuple(target)
            if best and best != m and m[: len(best)] != best:
                edges[m].add(best)
    return edges


def _cycles(edges: dict) -> list[set[str]]:
    index: dict = {}
    low: dict = {}
    stack: list = []
    on: set = set()
    found: list[set[str]] = []

    def visit(v: tuple[str, ...]) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append({"::".join(x) for x in comp})

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_new_module_cycles() -> None:
    for crate in sorted(p for p in CRATES.iterdir() if (p / "src").is_dir()):
        files = _sources(crate)
        is_dir = {k for k in files if (crate / "src" / Path(*k) / "mod.rs").exists() or k == ()}
        cycles = _cycles(_edges(files, is_dir))
        assert not cycles, f"{crate.name}: module cycle(s) {cycles}"


def test_the_scan_sees_a_cycle() -> None:
    files = {("a",): "use crate::b::X;", ("b",): "use crate::{a::Y, c};", ("c",): ""}
    assert _cycles(_edges(files, set())) == [{"a", "b"}]


def test_no_two_types_share_a_name() -> None:
    where: dict[str, set[Path]] = defaultdict(set)
    decl = re.compile(
        r"^\s*(?:pub(?:\([a-z]+\))?\s+)?(?:struct|enum|type|trait)\s+([A-Z]\w*)", re.M
    )
    for p in CRATES.glob("*/src/**/*.rs"):
        for name in decl.findall(p.read_text().split("#[cfg(test)]")[0]):
            where[name].add(p)
    # One file may define a type once per interpreter version (cfg-gated).
    shared = {
        n: sorted(str(p.relative_to(CRATES)) for p in ps) for n, ps in where.items() if len(ps) > 1
    }
    assert not shared, shared
