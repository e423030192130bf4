"""The tracer's caches stay bounded in a long-lived process (issue 7, defect 7):
many distinct code objects, item keys, shared objects and opaque callees do
not grow them past their bounds."""

from __future__ import annotations

import pytest

from frontrun import _native

pytestmark = pytest.mark.skipif(not _native._tracer_supported(), reason="tracer unsupported")

CODES, THREAD_CODES, KEYS, TYPE_NAMES, CALLEES = range(5)


class Holder:
    def __init__(self) -> None:
        self.d: dict[str, int] = {}
        self.v = 0


def test_code_cache_is_bounded() -> None:
    bound = _native._tracer_cache_bounds()[CODES]
    fns = []
    for i in range(bound + 200):
        ns: dict[str, object] = {}
        # A distinct code object each time (distinct constant).
        exec(compile(f"def f(h):\n    h.v = {i}\n", f"<generated-{i}>", "exec"), ns)
        fns.append(ns["f"])
    h = Holder()

    def run_all() -> None:
        for f in fns:
            f(h)  # type: ignore[operator]

    _native._trace_count(run_all, [h])
    sizes = _native._tracer_cache_sizes()
    assert 0 < sizes[CODES] <= bound
    assert sizes[THREAD_CODES] <= bound


def test_key_texts_are_bounded() -> None:
    bound = _native._tracer_cache_bounds()[KEYS]
    h = Holder()

    def many_keys() -> None:
        for i in range(bound + 500):
            h.d[f"k{i}"] = i

    assert _native._trace_count(many_keys, [h]) >= bound + 500
    assert 0 < _native._tracer_cache_sizes()[KEYS] <= bound


def test_type_names_are_bounded() -> None:
    bound = _native._tracer_cache_bounds()[TYPE_NAMES]
    roots = [Holder() for _ in range(bound + 100)]
    _native._trace_count(lambda: None, list(roots))
    # The next execution starts by forgetting the previous one's names.
    _native._trace_count(lambda: None, [Holder()])
    assert 0 < _native._tracer_cache_sizes()[TYPE_NAMES] <= bound


def test_callee_cache_is_bounded() -> None:
    bound = _native._tracer_cache_bounds()[CALLEES]
    h = Holder()
    fns = []
    for i in range(bound + 100):
        ns: dict[str, object] = {}
        # Distinct untraced (opaque) Python callees: a `<frozen …>` file is
        # not traced.
        exec(compile("def g(x):\n    return 0\n", f"<frozen gen{i}>", "exec"), ns)
        fns.append(ns["g"])

    def call_all() -> None:
        for g in fns:
            g(h.d)  # type: ignore[operator]

    _native._trace_count(call_all, [h])
    assert 0 < _native._tracer_cache_sizes()[CALLEES] <= bound
