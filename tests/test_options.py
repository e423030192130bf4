"""The options of every entry point are one `_native.ExploreOptions`, and
`_native._explore` answers with a typed `ExploreOutcome`, not a dict."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

import frontrun
from frontrun import _explore, _native
from frontrun.bytecode import explore_interleavings
from frontrun.dpor import explore_dpor


def _setup() -> dict[str, int]:
    return {"n": 0}


def _bump(s: dict[str, int]) -> None:
    s["n"] = s["n"] + 1


def _two(s: dict[str, int]) -> bool:
    return s["n"] == 2


def test_native_explore_returns_a_typed_outcome() -> None:
    pool = _explore._pool()
    opts = _native.ExploreOptions(strategy="dpor", reproduce_on_failure=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = _native._explore(pool, _setup, [_bump, _bump], _two, None, opts)
    assert isinstance(out, _native.ExploreOutcome)
    assert out.property_holds is False
    assert out.failure_kind == "invariant"
    assert isinstance(out.counterexample, str)
    with pytest.raises(AttributeError):
        out.property_holds = True  # type: ignore[misc]


def test_the_defaults_live_in_explore_options() -> None:
    opts = _explore._options("explore", _explore.Options, {})
    default = _native.ExploreOptions()
    for name in ("strategy", "timeout_per_run", "max_attempts", "reproduce_on_failure"):
        assert getattr(opts, name) == getattr(default, name)
    assert opts.strategy == "mixed"
    settling = opts.settling()
    assert (settling.strategy, settling.max_executions, settling.reproduce_on_failure) == (
        "dpor",
        1,
        0,
    )
    assert settling.timeout_per_run == opts.timeout_per_run


@pytest.mark.parametrize(
    ("call", "bad"),
    [
        (lambda **kw: frontrun.explore(_setup, [_bump], _two, **kw), "max_attempt"),
        (
            lambda **kw: explore_dpor(setup=_setup, threads=[_bump], invariant=_two, **kw),
            "strategy",
        ),
        (
            lambda **kw: explore_interleavings(setup=_setup, threads=[_bump], invariant=_two, **kw),
            "preemption_bound",
        ),
        (lambda **kw: frontrun.replay("x", _setup, [_bump], _two, **kw), "seed"),
    ],
)
def test_an_option_the_entry_point_does_not_take_is_refused(call: Any, bad: str) -> None:
    with pytest.raises(TypeError, match=f"unexpected keyword argument '{bad}'"):
        call(**{bad: 1})


def test_each_entry_point_runs_with_its_options() -> None:
    r = explore_dpor(setup=_setup, threads=[_bump, _bump], invariant=_two, reproduce_on_failure=0)
    assert r.property_holds is False and r.failure_kind == "invariant"
    assert r.counterexample is not None
    again = frontrun.replay(r.counterexample, _setup, [_bump, _bump], _two, timeout_per_run=5)
    assert again.property_holds is False and again.reproduce_attempts == 0
    s = explore_interleavings(
        setup=_setup, threads=[_bump, _bump], invariant=_two, max_attempts=50, seed=3
    )
    assert s.property_holds is False
