"""The tracer's per-version details checked against the running interpreter:
on 3.11, the static stack-depth analysis (what 3.12+ relies on, where frames
do not record their depth) must equal the live depth at every opcode event
of a standard-library workload."""

from __future__ import annotations

import sys

import pytest

from frontrun import _native

ON_311 = sys.version_info[:2] == (3, 11)


@pytest.mark.skipif(not ON_311, reason="only 3.11 frames record the depth the analysis derives")
def test_static_depths_equal_live_depths_over_the_stdlib() -> None:
    codes, events = _native._tracer_self_check()
    # The workload reaches json, re, argparse, ast, asyncio, dataclasses…:
    # hundreds of code objects, every opcode event of each compared.
    assert codes >= 500
    assert events >= 200_000


@pytest.mark.skipif(not ON_311, reason="only 3.11 frames record the depth the analysis derives")
def test_a_wrong_analysis_fails_loudly() -> None:
    def always_empty(code: object) -> list[int]:
        # Right at each first instruction, wrong wherever a value is pushed.
        return [0] * (len(code.co_code) // 2)  # type: ignore[attr-defined]

    with pytest.raises(RuntimeError, match=r"disagrees with the live depth .* at \d+ of \d+"):
        _native._tracer_self_check(always_empty)


@pytest.mark.skipif(ON_311, reason="3.11 compares depths (tested above)")
def test_elsewhere_only_the_layout_is_checked() -> None:
    assert _native._tracer_self_check() == (0, 0)
