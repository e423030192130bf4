"""The ORM lost update in unmodified Django, found and its fixes proven.

    python examples/django_lost_update.py                    # psycopg 3
    python examples/django_lost_update.py --driver psycopg2  # psycopg2

Two threads each run the textbook Django deposit::

    with transaction.atomic():
        acct = BankAccount.objects.get(id=1)
        acct.balance += 100
        acct.save()

``frontrun.explore`` finds the lost update and proves two fixes with
``exhausted=True``: ``select_for_update()`` and ``F("balance") + 100``.
Django uses psycopg 3 when it is installed; ``--driver psycopg2`` hides it
so that Django falls back to psycopg2. Django is configured in this file
(no project needed); each explored thread gets its own Django connection,
as a thread of a real server would. A throwaway PostgreSQL is started
unless ``DATABASE_URL`` names a server. Exits 0 only if every outcome is
the expected one.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse


def configure(dsn: str) -> None:
    """Minimal Django settings for one PostgreSQL database."""
    import django
    from django.conf import settings

    u = urlparse(dsn)
    settings.configure(
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": u.path.lstrip("/"),
                "USER": u.username or "",
                "PASSWORD": u.password or "",
                "HOST": u.hostname or "",
                "PORT": u.port or "",
            }
        },
        INSTALLED_APPS=[],
        USE_TZ=True,
    )
    django.setup()


def run_all(dsn: str) -> bool:
    import psycopg2  # type: ignore[import-untyped,unused-ignore]
    from django.db import models, transaction
    from django.db.models import F

    import frontrun

    class BankAccount(models.Model):
        balance = models.IntegerField()

        class Meta:
            app_label = "bank"
            db_table = "bank_account"

    # --- the application code under test ---------------------------------

    def deposit() -> None:
        """The bug: read, add in Python, write back."""
        with transaction.atomic():
            acct = BankAccount.objects.get(id=1)
            acct.balance += 100
            acct.save()

    def deposit_select_for_update() -> None:
        """Fix 1: lock the row from the read to the commit."""
        with transaction.atomic():
            acct = BankAccount.objects.select_for_update().get(id=1)
            acct.balance += 100
            acct.save()

    def deposit_f_expression() -> None:
        """Fix 2: let the database do the addition."""
        BankAccount.objects.filter(id=1).update(balance=F("balance") + 100)

    # --- the exploration ----------------------------------------------------

    admin = psycopg2.connect(dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS bank_account")
        cur.execute("CREATE TABLE bank_account (id integer PRIMARY KEY, balance integer NOT NULL)")

    def setup() -> None:
        with admin.cursor() as cur:
            cur.execute("DELETE FROM bank_account; INSERT INTO bank_account VALUES (1, 0)")

    def invariant(_: Any) -> bool:
        with admin.cursor() as cur:
            cur.execute("SELECT balance FROM bank_account WHERE id = 1")
            return bool(cur.fetchone()[0] == 200)

    ok = True
    cases: list[tuple[Callable[[], None], bool]] = [
        (deposit, False),
        (deposit_select_for_update, True),
        (deposit_f_expression, True),
    ]
    for txn, expect in cases:
        start = time.perf_counter()

        def thread(_: Any, txn: Callable[[], None] = txn) -> None:
            txn()

        r = frontrun.explore(setup, [thread, thread], invariant, total_timeout=120)
        seconds = time.perf_counter() - start
        good = r.property_holds is expect and (r.exhausted or not expect)
        ok &= good
        print(
            f"{txn.__name__:26} property_holds={r.property_holds} exhausted={r.exhausted} "
            f"executions={r.executions_explored} {seconds:.1f}s {'ok' if good else 'UNEXPECTED'}"
        )
        if r.property_holds is not expect or not expect:
            print(r.explanation)
    admin.close()
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--driver", choices=["psycopg", "psycopg2"], default="psycopg")
    args = parser.parse_args(argv)
    if args.driver == "psycopg2":
        # Django picks psycopg 3 whenever it can import it.
        sys.modules["psycopg"] = None  # type: ignore[assignment]
    from frontrun.testing import postgres_server

    with postgres_server() as server, server.fresh_database("django") as dsn:
        configure(dsn)
        print(f"Django on {args.driver}")
        ok = run_all(dsn)
    print("all outcomes as expected" if ok else "SOME OUTCOMES WERE UNEXPECTED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
