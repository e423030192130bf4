"""The Rust marker scanner agrees with Python's own tokenizer on real code.

Markers are added to standard-library modules (full of strings, f-strings,
brackets and continuations); the statement each one must tag is computed with
`tokenize`, then compared with what `frontrun._native.scan_markers` finds.
"""

from __future__ import annotations

import importlib
import io
import tokenize
from pathlib import Path

import pytest

from frontrun import _native

MODULES = [
    "argparse",
    "asyncio.base_events",
    "dataclasses",
    "email._header_value_parser",
    "inspect",
    "logging",
    "shutil",
    "pydoc",
    "string",
    "textwrap",
    "tokenize",
    "typing",
]


def module_source(name: str) -> str:
    path = importlib.import_module(name).__file__
    assert path is not None
    return Path(path).read_text(encoding="utf-8")


def statements(source: str) -> list[tuple[int, int, int]]:
    """(first line, last line, indent column) of every logical line."""
    out = []
    start: tuple[int, int] | None = None
    skip = {tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in skip or tok.type == tokenize.ENDMARKER:
            continue
        if start is None:
            start = tok.start
        if tok.type == tokenize.NEWLINE:
            out.append((start[0], tok.start[0], start[1]))
            start = None
    return out


def comment_rows(source: str) -> set[int]:
    toks = tokenize.generate_tokens(io.StringIO(source).readline)
    return {t.start[0] for t in toks if t.type == tokenize.COMMENT}


@pytest.mark.parametrize("module", MODULES)
def test_inline_markers_tag_the_statement_start(module: str, tmp_path: Path) -> None:
    source = module_source(module)
    lines = source.splitlines()
    commented = comment_rows(source)
    expected = {}
    for i, (first, last, _) in enumerate(statements(source)):
        if last in commented or lines[last - 1].rstrip().endswith("\\"):
            continue
        name = f"m{i}"
        lines[last - 1] += f"  # frontrun: {name}"
        expected[name] = first
    path = tmp_path / f"{module.replace('.', '_')}_marked.py"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    compile(path.read_text(), str(path), "exec")  # still valid Python
    assert len(expected) > 100
    assert dict(_native.scan_markers(str(path))) == expected


@pytest.mark.parametrize("module", MODULES)
def test_own_line_markers_tag_the_next_statement(module: str, tmp_path: Path) -> None:
    source = module_source(module)
    lines = source.splitlines()
    out: list[str] = []
    expected = {}
    starts = {first: indent for first, _, indent in statements(source)}
    for row, line in enumerate(lines, start=1):
        if row in starts and row % 3 == 0:
            out.append(" " * starts[row] + f"# frontrun: s{row}")
            expected[f"s{row}"] = len(out) + 1
        out.append(line)
    path = tmp_path / f"{module.replace('.', '_')}_own_line.py"
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    compile(path.read_text(), str(path), "exec")
    assert len(expected) > 30
    assert dict(_native.scan_markers(str(path))) == expected
