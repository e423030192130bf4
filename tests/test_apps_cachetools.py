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
