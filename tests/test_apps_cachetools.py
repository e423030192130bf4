"""cachetools (an installed package, traced): its accesses are explained at
the user's line that called into it, and the Bug line names the user's
object, not the library's cache."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import frontrun

cachetools = pytest.importorskip("cachetools")


@cachetools.cached(cache=cachetools.LRUCache(maxsize=16))
def _price(item: str) -> int:
    return len(item) * 10


class Cart:
    def __init__(self) -> None:
        self.total = 0
        self.lock = threading.Lock()


def _buy(cart: Cart) -> None:
    p = _price("apple")
    t = cart.total
    cart.total = t + p


def _buy_locked(cart: Cart) -> None:
    p = _price("apple")
    with cart.lock:
        cart.total += p


def _invariant(cart: Any) -> bool:
    return bool(cart.total == 100)


def test_lost_update_explained_at_the_users_lines() -> None:
    r = frontrun.explore(Cart, [_buy, _buy], _invariant)
    assert r.property_holds is False, r.explanation
    assert "lost update on Cart.total" in r.explanation
    lines = [ln for ln in r.explanation.splitlines() if ln.startswith("  _buy#")]
    assert lines and all("test_apps_cachetools.py:" in ln for ln in lines), r.explanation
    assert 'p = _price("apple")' in r.explanation


def test_full_frames_show_the_cache_internals() -> None:
    r = frontrun.explore(Cart, [_buy, _buy], _invariant, full_frames=True)
    assert r.property_holds is False, r.explanation
    assert "via " in r.explanation and "__init__.py:" in r.explanation, r.explanation


def test_the_locked_fix_is_proven() -> None:
    r = frontrun.explore(Cart, [_buy_locked, _buy_locked], _invariant)
    assert r.property_holds is True and r.exhausted, r.explanation


_module_lock = threading.Lock()  # a real lock: made at import, before explore()


@cachetools.cached(cache=cachetools.LRUCache(maxsize=16), lock=_module_lock)
def _price_locked(item: str) -> int:
    return len(item) * 10


def _buy_with_module_lock(cart: Cart) -> None:
    p = _price_locked("pear")
    with cart.lock:
        cart.total += p


@pytest.mark.timeout(40)
def test_a_real_lock_made_at_import_is_named_not_waited_for() -> None:
    # A thread paused inside the cache's critical section holds the real
    # lock; the other blocks on it in C. The execution stops at once (well
    # before timeout_per_run, which the test timeout is shorter than), and
    # the verdict is inconclusive, never a pass, naming the lock and holder.
    r = frontrun.explore(
        Cart,
        [_buy_with_module_lock, _buy_with_module_lock],
        lambda c: c.total == 80,
        timeout_per_run=60,
    )
    assert r.property_holds is None and not r.exhausted, r.explanation
    assert "blocked on the real lock `lock`" in r.explanation, r.explanation
    assert (
        "buy_with_module_lock#0' holds it, acquired at" in r.explanation
        or "#1' holds it, acquired at" in r.explanation
    ), r.explanation
    assert "setup()" in r.explanation
