"""The throwaway PostgreSQL helper: start, connect, isolate, stop leaving nothing behind."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.machinery import ModuleSpec
from pathlib import Path

import psycopg2
import pytest

import frontrun.testing as pgt
from frontrun.testing import PostgresNotFound, PostgresServer, postgres_server


def _pids_with_data_dir(data_dir: Path) -> list[int]:
    """Live processes whose command line mentions ``data_dir`` (the postmaster does)."""
    found = []
    needle = str(data_dir).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if needle in cmdline and pgt._alive(int(entry)):
            found.append(int(entry))
    return found


def _select_one(dsn: str) -> int:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def _sysv_segments_of(pid: int) -> list[int]:
    with open("/proc/sysvipc/shm", encoding="ascii") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    return [int(r[1]) for r in rows if int(r[4]) == pid]


def _assert_gone(pids: list[int], data_dir: Path) -> None:
    assert pids, "the server had no processes to check"
    assert [p for p in pids if pgt._alive(p)] == []
    assert _pids_with_data_dir(data_dir) == []
    assert not data_dir.exists()
    # pids[0] is the postmaster: its shared memory segment must be gone too.
    assert _sysv_segments_of(pids[0]) == []


def test_starts_accepts_connections_and_stops_cleanly() -> None:
    with postgres_server(use_env=False) as pg:
        assert pg.owned and pg.data_dir is not None and pg.socket_dir is not None
        assert _select_one(pg.dsn) == 1
        # The unix socket in the temp dir works too.
        assert _select_one(f"host={pg.socket_dir} port={pg.port} user=postgres dbname=postgres")
        conn = pg.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW deadlock_timeout")
                assert cur.fetchone()[0] == "50ms"
                cur.execute("SHOW fsync")
                assert cur.fetchone()[0] == "off"
        finally:
            conn.close()
        pids = pg.pids()
        assert pg.process is not None and pg.process.pid in pids
        assert _pids_with_data_dir(pg.data_dir) == [pg.process.pid]
        data_dir = pg.data_dir
        assert pg in pgt.running_servers()
    _assert_gone(pids, data_dir)
    assert pg not in pgt.running_servers()


def test_stops_and_cleans_up_when_the_body_raises() -> None:
    seen: list[tuple[list[int], Path | None]] = []
    with pytest.raises(RuntimeError, match="boom"), postgres_server(use_env=False) as pg:
        seen.append((pg.pids(), pg.data_dir))
        raise RuntimeError("boom")
    [(pids, data_dir)] = seen
    assert data_dir is not None
    _assert_gone(pids, data_dir)


def test_kills_a_server_that_ignores_shutdown_requests() -> None:
    with postgres_server(use_env=False, stop_timeout=0.5) as pg:
        pids, data_dir = pg.pids(), pg.data_dir
        assert pg.process is not None and data_dir is not None
        # A stopped postmaster cannot act on SIGINT/SIGQUIT: only the SIGKILL fallback works.
        os.kill(pg.process.pid, signal.SIGSTOP)
    _assert_gone(pids, data_dir)


def test_a_killed_owner_leaves_no_server_behind(tmp_path: Path) -> None:
    # SIGKILL skips the `with` block and atexit: only the watcher can clean up.
    out = tmp_path / "server.txt"
    script = (
        "import os, signal\n"
        "from frontrun.testing import postgres_server\n"
        "cm = postgres_server(use_env=False)\n"
        "pg = cm.__enter__()\n"
        f"open({str(out)!r}, 'w').write('%d %s' % (pg.process.pid, pg.socket_dir))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    res = subprocess.run([sys.executable, "-c", script], timeout=120, check=False)
    assert res.returncode == -signal.SIGKILL
    pid_text, root_text = out.read_text().split(" ", 1)
    pid, root = int(pid_text), Path(root_text)
    deadline = time.monotonic() + 30.0
    while (pgt._alive(pid) or root.exists()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pgt._alive(pid), "the server outlived the process that started it"
    assert not root.exists(), f"{root} was left behind"


def test_honours_database_url(monkeypatch: pytest.MonkeyPatch, pg_dsn: str) -> None:
    monkeypatch.delenv("FRONTRUN_DATABASE_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL", pg_dsn)
    with postgres_server() as pg:
        assert not pg.owned and pg.process is None and pg.dsn == pg_dsn
        assert _select_one(pg.dsn) == 1
    # Nothing was started, so leaving must not have stopped the external server.
    assert _select_one(pg_dsn) == 1


def test_frontrun_database_url_wins(monkeypatch: pytest.MonkeyPatch, pg_dsn: str) -> None:
    monkeypatch.setenv("FRONTRUN_DATABASE_URL", pg_dsn)
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    with postgres_server() as pg:
        assert pg.dsn == pg_dsn


def test_fresh_databases_are_isolated_and_dropped(pg_server: PostgresServer) -> None:
    with pg_server.fresh_database("iso") as dsn_a, pg_server.fresh_database("iso") as dsn_b:
        assert dsn_a != dsn_b
        conn = psycopg2.connect(dsn_a)
        try:
            with conn, conn.cursor() as cur:
                cur.execute("CREATE TABLE only_in_a (x int)")
        finally:
            conn.close()
        conn = psycopg2.connect(dsn_b)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT to_regclass('only_in_a') IS NULL")
                assert cur.fetchone()[0] is True
        finally:
            conn.close()
        name_a = dsn_a.rsplit("/", 1)[1]
    with pytest.raises(psycopg2.OperationalError, match="does not exist"):
        psycopg2.connect(pg_server.dsn_for(name_a)).close()


def test_create_database_rejects_unsafe_names(pg_server: PostgresServer) -> None:
    with pytest.raises(ValueError, match="lowercase letters"):
        pg_server.create_database('x"; DROP DATABASE postgres; --')


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        ("postgresql://u:p@h:5/old?sslmode=disable", "postgresql://u:p@h:5/new?sslmode=disable"),
        ("host=h port=5 dbname=old user=u", "host=h port=5 dbname=new user=u"),
        ("host=h port=5", "host=h port=5 dbname=new"),
    ],
)
def test_dsn_for_rewrites_only_the_database(dsn: str, expected: str) -> None:
    assert PostgresServer(dsn=dsn, owned=False).dsn_for("new") == expected


def _fake_bindir_at(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name in ("initdb", "postgres"):
        exe = path / name
        exe.write_text("#!/bin/sh\nexit 1\n")
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return path


def _fake_bindir(tmp_path: Path) -> Path:
    return _fake_bindir_at(tmp_path)


def test_frontrun_pg_bin_comes_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FRONTRUN_PG_BIN", str(_fake_bindir(tmp_path)))
    assert pgt.find_pg_bindir() == tmp_path


def _hide_system_binaries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FRONTRUN_PG_BIN", raising=False)
    monkeypatch.setattr(pgt.shutil, "which", lambda _name: None)
    monkeypatch.setattr(pgt.glob, "glob", lambda _pattern: [])
    monkeypatch.setattr(pgt.importlib.util, "find_spec", lambda _name: None)


def test_debian_dirs_prefer_the_highest_version(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _hide_system_binaries(monkeypatch)
    dirs = [str(_fake_bindir_at(tmp_path / v / "bin")) for v in ("9", "15", "10")]
    monkeypatch.setattr(pgt.glob, "glob", lambda _pattern: list(dirs))
    assert pgt.find_pg_bindir() == tmp_path / "15" / "bin"


def test_pgserver_package_is_the_last_resort(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _hide_system_binaries(monkeypatch)
    init = tmp_path / "pgserver" / "__init__.py"
    bindir = _fake_bindir_at(tmp_path / "pgserver" / "pginstall" / "bin")
    init.write_text("")
    spec = ModuleSpec("pgserver", None, origin=str(init))
    monkeypatch.setattr(
        pgt.importlib.util, "find_spec", lambda name: spec if name == "pgserver" else None
    )
    assert pgt.find_pg_bindir() == bindir


def test_missing_binaries_error_names_every_place_searched(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _hide_system_binaries(monkeypatch)
    monkeypatch.setenv("FRONTRUN_PG_BIN", str(tmp_path / "nowhere"))
    with pytest.raises(PostgresNotFound) as info:
        pgt.find_pg_bindir()
    msg = str(info.value)
    for place in (
        "$FRONTRUN_PG_BIN",
        "pg_config --bindir",
        "/usr/lib/postgresql",
        "PATH",
        "pgserver",
    ):
        assert place in msg
    assert "DATABASE_URL" in msg and "apt-get install postgresql" in msg


def test_start_failure_reports_the_log_and_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An invalid setting makes the real postgres exit during start-up.
    monkeypatch.setitem(pgt.SERVER_SETTINGS, "deadlock_timeout", "not-a-duration")
    made: list[str] = []
    real_mkdtemp = pgt.tempfile.mkdtemp

    def recording_mkdtemp(*args: str, **kwargs: str) -> str:
        made.append(real_mkdtemp(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(pgt.tempfile, "mkdtemp", recording_mkdtemp)
    with (
        pytest.raises(pgt.PostgresStartError, match="deadlock_timeout"),
        postgres_server(use_env=False),
    ):
        pytest.fail("the server should not have started")
    assert made, "postgres_server made no temp dir"
    assert [d for d in made if os.path.exists(d)] == []


def test_plugin_fails_a_session_that_leaks_a_server(tmp_path: Path) -> None:
    pidfile = tmp_path / "postmaster.pid.txt"
    (tmp_path / "test_leak.py").write_text(
        "from frontrun.testing import postgres_server\n"
        "LEAKED = []\n"
        "def test_leak():\n"
        "    cm = postgres_server(use_env=False)\n"
        "    LEAKED.append(cm)\n"
        "    server = cm.__enter__()\n"
        f"    open({str(pidfile)!r}, 'w').write(str(server.process.pid))\n"
    )
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_leak.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == pytest.ExitCode.TESTS_FAILED, res.stdout + res.stderr
    assert "PostgreSQL server(s) still running at session end" in res.stdout
    pid = int(pidfile.read_text())
    assert not pgt._alive(pid)


@pytest.fixture
def private_tmp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temp root readable by the `postgres` user (pytest's tmp_path is root-only)."""
    monkeypatch.delenv(pgt.TMPDIR_ENV_VAR, raising=False)
    root = Path(pgt.tempfile.mkdtemp(prefix="frontrun-test-tmp-", dir=pgt._base_tmpdir()))
    root.chmod(0o755)
    monkeypatch.setenv(pgt.TMPDIR_ENV_VAR, str(root))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_template_is_cached_and_copied(private_tmp: Path) -> None:
    with postgres_server(use_env=False):
        pass
    [template] = list(private_tmp.glob("frontrun-pg-template-*"))
    # A file planted in the template must show up in the next server's data dir.
    (template / "planted").write_text("x")
    with postgres_server(use_env=False) as pg:
        assert pg.data_dir is not None and (pg.data_dir / "planted").is_file()
        assert _select_one(pg.dsn) == 1


def test_template_cache_can_be_turned_off(
    private_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(pgt.TEMPLATE_ENV_VAR, "0")
    with postgres_server(use_env=False) as pg:
        assert _select_one(pg.dsn) == 1
    assert list(private_tmp.glob("frontrun-pg-template-*")) == []


def test_a_symlinked_template_is_not_trusted(private_tmp: Path) -> None:
    with postgres_server(use_env=False):
        pass
    [template] = list(private_tmp.glob("frontrun-pg-template-*"))
    elsewhere = private_tmp / "elsewhere"
    template.rename(elsewhere)
    (elsewhere / "planted").write_text("x")
    template.symlink_to(elsewhere)
    with postgres_server(use_env=False) as pg:
        assert pg.data_dir is not None and not (pg.data_dir / "planted").exists()
        assert _select_one(pg.dsn) == 1


def test_pg_fixtures_error_with_the_reason_when_no_server(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        "import frontrun.testing as pgt\n"
        "def _none():\n"
        "    raise pgt.PostgresNotFound('no PostgreSQL server binaries (test)')\n"
        "pgt.find_pg_bindir = _none\n"
    )
    (tmp_path / "test_needs_pg.py").write_text("def test_needs_pg(pg_dsn):\n    pass\n")
    env = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL")}
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert res.returncode == pytest.ExitCode.TESTS_FAILED, res.stdout + res.stderr
    assert "1 error" in res.stdout and "skipped" not in res.stdout
    assert "no PostgreSQL server binaries (test)" in res.stdout
