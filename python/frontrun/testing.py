"""A throwaway PostgreSQL server for tests and examples.

``with postgres_server() as pg:`` starts a private server in a temp directory
(or, when ``FRONTRUN_DATABASE_URL`` / ``DATABASE_URL`` is set, uses that server
and starts nothing) and stops it on exit, leaving no process or file behind.
``pg.fresh_database()`` gives each test or example its own database.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import hashlib
import importlib.util
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "PostgresNotFound",
    "PostgresServer",
    "PostgresStartError",
    "find_pg_bindir",
    "postgres_server",
    "running_servers",
]

URL_ENV_VARS = ("FRONTRUN_DATABASE_URL", "DATABASE_URL")
BIN_ENV_VAR = "FRONTRUN_PG_BIN"
# Ask for no template cache (always run initdb) by setting this to "0".
TEMPLATE_ENV_VAR = "FRONTRUN_PG_TEMPLATE_CACHE"
# Where data dirs and the template live; default: /dev/shm if roomy, else the temp dir.
TMPDIR_ENV_VAR = "FRONTRUN_PG_TMPDIR"
# A server's data dir is ~25 MB; /dev/shm is used only with room for many of them.
_MIN_SHM_FREE = 1 << 30

# Durability is worthless for a server that lives for one test session; the
# short deadlock_timeout makes deadlock examples resolve in tens of ms.
SERVER_SETTINGS: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "deadlock_timeout": "50ms",
    "shared_buffers": "32MB",
    "max_connections": "100",
    "autovacuum": "off",
    "log_min_messages": "warning",
    # Dynamic shared memory as files in the data dir, not /dev/shm: a killed
    # server then leaves nothing outside its temp dir.
    "dynamic_shared_memory_type": "mmap",
}


class PostgresNotFound(RuntimeError):
    """No PostgreSQL server binaries were found."""


class PostgresStartError(RuntimeError):
    """The throwaway server did not start or did not stop cleanly."""


def _has_server_binaries(bindir: Path) -> bool:
    return all((bindir / name).is_file() for name in ("initdb", "postgres"))


def _version_key(path: str) -> tuple[int, ...]:
    digits = re.findall(r"\d+", Path(path).parent.name)
    return tuple(int(d) for d in digits)


def _candidate_bindirs() -> list[tuple[str, Path | None]]:
    """Every place searched for binaries, in order, with a label for errors."""
    out: list[tuple[str, Path | None]] = []
    env = os.environ.get(BIN_ENV_VAR)
    out.append((f"${BIN_ENV_VAR}", Path(env) if env else None))
    pg_config = shutil.which("pg_config")
    bindir: Path | None = None
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            res = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=False
            )
            if res.returncode == 0 and res.stdout.strip():
                bindir = Path(res.stdout.strip())
    out.append(("pg_config --bindir", bindir))
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    for d in debian or ["/usr/lib/postgresql/*/bin"]:
        out.append((d, Path(d) if debian else None))
    on_path = shutil.which("initdb")
    out.append(("PATH (initdb)", Path(on_path).resolve().parent if on_path else None))
    # The pip-only fallback: the `pgserver` package bundles a full server.
    spec = importlib.util.find_spec("pgserver")
    pgserver_bin = None
    if spec is not None and spec.origin:
        pgserver_bin = Path(spec.origin).parent / "pginstall" / "bin"
    out.append(("pgserver package (pip install pgserver)", pgserver_bin))
    return out


def find_pg_bindir() -> Path:
    """Return the directory holding ``initdb`` and ``postgres``.

    Searched in order: ``$FRONTRUN_PG_BIN``, ``pg_config --bindir``,
    ``/usr/lib/postgresql/*/bin`` (highest version first), ``initdb`` on
    ``PATH``, and the ``pgserver`` pip package.
    """
    searched = []
    for label, path in _candidate_bindirs():
        if path is not None and _has_server_binaries(path):
            return path
        searched.append(f"  {label}: {path if path is not None else 'not set/not found'}")
    raise PostgresNotFound(
        "no PostgreSQL server binaries (initdb, postgres) found. Searched:\n"
        + "\n".join(searched)
        + "\nInstall them (`apt-get install postgresql`, or `pip install pgserver`), "
        f"point ${BIN_ENV_VAR} at their directory, or set DATABASE_URL to an existing server."
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _with_dbname(dsn: str, dbname: str) -> str:
    """Return ``dsn`` (URL or ``key=value`` form) pointing at database ``dbname``."""
    if dsn.startswith(("postgres://", "postgresql://")):
        parts = urlsplit(dsn)
        return urlunsplit(parts._replace(path="/" + dbname))
    if re.search(r"(^|\s)dbname\s*=", dsn):
        return re.sub(r"(^|\s)dbname\s*=\s*('[^']*'|\S+)", rf"\1dbname={dbname}", dsn)
    return f"{dsn} dbname={dbname}".strip()


def _connect(dsn: str) -> Any:
    """Open a DB-API connection with psycopg2, or psycopg 3 if that is what is installed."""
    try:
        import psycopg2  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        try:
            import psycopg  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise ImportError(
                "a PostgreSQL driver is needed: `pip install psycopg2-binary` "
                "(or `psycopg[binary]`)"
            ) from None
        return psycopg.connect(dsn)
    return psycopg2.connect(dsn)


def _check_identifier(name: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise ValueError(
            f"database name {name!r} must be lowercase letters, digits and underscores "
            "(at most 63 characters, not starting with a digit)"
        )
    return name


@dataclass
class PostgresServer:
    """A running server: either one started here (``owned``) or an external one."""

    dsn: str
    """DSN of the server's maintenance database (``postgres`` unless external)."""
    owned: bool
    data_dir: Path | None = None
    port: int | None = None
    socket_dir: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    watcher: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    stopped: bool = False

    def dsn_for(self, dbname: str) -> str:
        """DSN of database ``dbname`` on this server."""
        return _with_dbname(self.dsn, dbname)

    def connect(self, dbname: str | None = None) -> Any:
        """A new DB-API connection (psycopg2 if installed) to ``dbname`` or the default DB."""
        return _connect(self.dsn if dbname is None else self.dsn_for(dbname))

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a unique name if none is given); return its DSN."""
        name = _check_identifier(name or f"frontrun_{uuid.uuid4().hex[:12]}")
        conn = self.connect()
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.dsn_for(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name``, disconnecting any session still using it."""
        name = _check_identifier(name)
        conn = self.connect()
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            conn.close()

    @contextlib.contextmanager
    def fresh_database(self, prefix: str = "frontrun") -> Iterator[str]:
        """Create a uniquely named database, yield its DSN, drop it afterwards."""
        clean = re.sub(r"[^a-z0-9_]", "_", prefix.lower())[:40] or "frontrun"
        name = f"{clean}_{uuid.uuid4().hex[:12]}"
        dsn = self.create_database(name)
        try:
            yield dsn
        finally:
            self.drop_database(name)

    def pids(self) -> list[int]:
        """PIDs of the postmaster (first) and its live children; empty when stopped."""
        if self.process is None:
            return []
        return _process_tree(self.process.pid)


# Servers started in this process and not yet stopped; checked by the pytest
# plugin at session end and stopped at interpreter exit as a last resort.
_LIVE: dict[int, PostgresServer] = {}
_LIVE_LOCK = threading.Lock()


def running_servers() -> list[PostgresServer]:
    """Servers started by :func:`postgres_server` in this process and still running."""
    with _LIVE_LOCK:
        return list(_LIVE.values())


def _proc_children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name is parenthesised and may contain spaces: split after it.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1 and fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] != "Z"


def _process_tree(root: int) -> list[int]:
    """``root`` and all its live descendants (via /proc, so Linux only)."""
    if not _alive(root):
        return []
    children = _proc_children()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _run_as(user: str | None) -> dict[str, Any]:
    """Popen arguments that drop to ``user`` (initdb and postgres refuse to run as root)."""
    return {} if user is None else {"user": user, "group": user, "extra_groups": []}


def _server_user() -> str | None:
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresStartError(
            "running as root, and PostgreSQL refuses to run as root; no `postgres` OS user "
            "exists to run it as. Create one (`useradd --system postgres`) or run as non-root."
        ) from None
    return "postgres"


def _chown_tree(path: Path, user: str | None) -> None:
    if user is None:
        return
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            shutil.chown(name, user, user)


def _server_version(bindir: Path) -> str:
    res = subprocess.run(
        [str(bindir / "postgres"), "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return res.stdout.strip()


INITDB_ARGS = (
    "-U",
    "postgres",
    "--auth=trust",
    "--encoding=UTF8",
    "--locale=C",
    "--no-sync",
    # 1 MB WAL segments instead of 16: less to copy from the template.
    "--wal-segsize=1",
)


def _initdb(bindir: Path, data_dir: Path, user: str | None) -> None:
    cmd = [str(bindir / "initdb"), "-D", str(data_dir), *INITDB_ARGS]
    res = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=data_dir.parent,
        **_run_as(user),
    )
    if res.returncode != 0:
        raise PostgresStartError(
            f"initdb failed (exit {res.returncode}): {' '.join(cmd)}\n{res.stdout}{res.stderr}"
        )


def _template_dir(bindir: Path, user: str | None) -> Path | None:
    """An initdb'd data dir cached per server version, created once (atomically)."""
    if os.environ.get(TEMPLATE_ENV_VAR, "1") == "0":
        return None
    # Keyed by server version and initdb options, so neither change reuses a stale one.
    opts = hashlib.sha1(" ".join(INITDB_ARGS).encode()).hexdigest()[:8]
    key = re.sub(r"[^A-Za-z0-9.]+", "_", _server_version(bindir)).strip("_") + "-" + opts
    owner = user or str(os.geteuid())
    cache = _base_tmpdir() / f"frontrun-pg-template-{key}-{owner}"
    if _usable_template(cache, user):
        return cache
    staging = Path(tempfile.mkdtemp(prefix="frontrun-pg-template-staging-", dir=_base_tmpdir()))
    try:
        _chown_tree(staging, user)
        _initdb(bindir, staging / "data", user)
        # rename is atomic: a concurrent creator either wins or finds ours.
        with contextlib.suppress(OSError):
            os.rename(staging / "data", cache)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return cache if _usable_template(cache, user) else None


def _base_tmpdir() -> Path:
    """``$FRONTRUN_PG_TMPDIR``, else /dev/shm when it is a roomy writable tmpfs, else the
    system temp dir. Copying the template to tmpfs is ~10x faster than to a slow disk."""
    env = os.environ.get(TMPDIR_ENV_VAR)
    if env:
        return Path(env)
    shm = Path("/dev/shm")
    with contextlib.suppress(OSError):
        st = os.statvfs(shm)
        if os.access(shm, os.W_OK | os.X_OK) and st.f_bavail * st.f_frsize >= _MIN_SHM_FREE:
            return shm
    return Path(tempfile.gettempdir())


def _usable_template(cache: Path, user: str | None) -> bool:
    """A complete template that we (or ``user``) made: not a symlink or someone else's dir."""
    import pwd

    try:
        st = os.lstat(cache)
    except OSError:
        return False
    uid = pwd.getpwnam(user).pw_uid if user else os.geteuid()
    return (
        stat.S_ISDIR(st.st_mode)
        and st.st_uid == uid
        and (cache / "PG_VERSION").is_file()
        and (cache / "global" / "pg_control").is_file()
    )


def _read_log(log: Path, limit: int = 4000) -> str:
    try:
        return log.read_text(errors="replace")[-limit:]
    except OSError:
        return "(no log)"


def _wait_ready(proc: subprocess.Popen[bytes], data_dir: Path, log: Path, timeout: float) -> None:
    """Wait until the postmaster reports it accepts connections (postmaster.pid says "ready")."""
    deadline = time.monotonic() + timeout
    pidfile = data_dir / "postmaster.pid"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PostgresStartError(
                f"postgres exited with code {proc.returncode} during start-up; log:\n"
                + _read_log(log)
            )
        try:
            lines = pidfile.read_text().splitlines()
        except OSError:
            lines = []
        # Line 8 of postmaster.pid is the postmaster's status (PostgreSQL >= 10).
        if len(lines) >= 8 and lines[7].strip() == "ready":
            return
        time.sleep(0.01)
    raise PostgresStartError(
        f"timed out after {timeout:.0f}s waiting for postgres (pid {proc.pid}) to accept "
        f"connections (status 'ready' in {pidfile}); log:\n" + _read_log(log)
    )


# Stops the server and deletes its directory once the process that started it
# is gone. `atexit` and the `with` block cannot help when that process is
# killed (SIGKILL, an OOM kill, a CI timeout), and a server left behind keeps
# its port, its memory and its files in /dev/shm. A shell loop rather than a
# parent-death signal: that signal follows the thread that started the
# server, not the process.
_WATCH_SCRIPT = r"""
owner=$1 pg=$2 root=$3
owner_alive() {
    st=$(sed 's/.*) //' "/proc/$owner/stat" 2>/dev/null) || return 1
    [ "${st%% *}" != Z ]
}
while kill -0 "$pg" 2>/dev/null; do
    if ! owner_alive; then
        kill -INT "$pg" 2>/dev/null
        i=0
        while kill -0 "$pg" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.2; i=$((i + 1)); done
        kill -QUIT "$pg" 2>/dev/null && sleep 2
        kill -KILL "$pg" 2>/dev/null
        rm -rf "$root"
        exit 0
    fi
    sleep 1
done
"""


def _watch_owner(pg_pid: int, root: Path) -> subprocess.Popen[bytes]:
    """Start the watcher of :data:`_WATCH_SCRIPT` for server ``pg_pid``."""
    return subprocess.Popen(
        [
            "/bin/sh",
            "-c",
            _WATCH_SCRIPT,
            "frontrun-pg-watch",
            str(os.getpid()),
            str(pg_pid),
            str(root),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C to the owner's group must not stop it
    )


def _stop_watcher(server: PostgresServer) -> None:
    watcher = server.watcher
    if watcher is None:
        return
    with contextlib.suppress(ProcessLookupError):
        watcher.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        watcher.wait(timeout=5.0)
    server.watcher = None


def _stop(server: PostgresServer, timeout: float = 15.0) -> None:
    """Stop the postmaster: fast shutdown, then immediate, then SIGKILL of the whole tree."""
    _stop_watcher(server)
    proc = server.process
    if proc is None or server.stopped:
        return
    tree = _process_tree(proc.pid)
    for sig, wait in ((signal.SIGINT, timeout), (signal.SIGQUIT, min(timeout, 5.0))):
        if proc.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait)
    # Children can outlive a killed postmaster; kill any we saw that are left.
    for pid in [proc.pid, *tree]:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5.0)
    deadline = time.monotonic() + 5.0
    while any(_alive(p) for p in tree) and time.monotonic() < deadline:
        time.sleep(0.01)
    left = [p for p in tree if _alive(p)]
    if left:
        raise PostgresStartError(f"postgres processes {left} survived SIGKILL")
    # A clean shutdown removes the postmaster's System V segment; a kill does not.
    _remove_sysv_segments(proc.pid)
    server.stopped = True


def _remove_sysv_segments(creator_pid: int) -> None:
    """Remove unattached System V shared memory segments created by ``creator_pid``."""
    try:
        with open("/proc/sysvipc/shm", encoding="ascii") as f:
            rows = [line.split() for line in f.readlines()[1:]]
    except OSError:
        return
    # Columns: key shmid perms size cpid lpid nattch ...
    ids = [int(r[1]) for r in rows if len(r) > 6 and int(r[4]) == creator_pid and r[6] == "0"]
    if not ids:
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    ipc_rmid = 0
    for shmid in ids:
        libc.shmctl(shmid, ipc_rmid, None)


def _start(bindir: Path, root: Path, user: str | None, timeout: float) -> PostgresServer:
    data_dir = root / "data"
    template = _template_dir(bindir, user)
    if template is not None:
        shutil.copytree(template, data_dir, symlinks=True)
        _chown_tree(data_dir, user)
    else:
        _initdb(bindir, data_dir, user)
    log = root / "postgres.log"
    last_error: PostgresStartError | None = None
    # A free port can be taken between probing and binding: retry a few times.
    for _attempt in range(3):
        port = _free_port()
        settings = {
            **SERVER_SETTINGS,
            "port": str(port),
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(root),
        }
        cmd = [str(bindir / "postgres"), "-D", str(data_dir)]
        for key, value in settings.items():
            cmd += ["-c", f"{key}={value}"]
        with open(log, "ab") as logf:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                cwd=root,
                start_new_session=True,
                **_run_as(user),
            )
        server = PostgresServer(
            dsn=f"postgresql://postgres@127.0.0.1:{port}/postgres",
            owned=True,
            data_dir=data_dir,
            port=port,
            socket_dir=root,
            process=proc,
        )
        server.watcher = _watch_owner(proc.pid, root)
        try:
            _wait_ready(proc, data_dir, log, timeout)
        except PostgresStartError as exc:
            _stop(server)
            last_error = exc
            if "already in use" in str(exc):
                continue
            if template is not None:
                raise PostgresStartError(
                    f"{exc}\n(the data dir was copied from the cached template {template}; "
                    f"if it is damaged, delete it or set {TEMPLATE_ENV_VAR}=0)"
                ) from None
            raise
        return server
    assert last_error is not None
    raise last_error


@contextlib.contextmanager
def postgres_server(
    *, start_timeout: float = 30.0, stop_timeout: float = 15.0, use_env: bool = True
) -> Iterator[PostgresServer]:
    """Yield a running PostgreSQL server; stop and delete it on exit.

    If ``FRONTRUN_DATABASE_URL`` or ``DATABASE_URL`` is set, yield that server
    instead (nothing is started or stopped) unless ``use_env`` is false. Otherwise find the binaries (see
    :func:`find_pg_bindir`), start a private server on a free 127.0.0.1 port
    with its socket in a temp dir, and wait at most ``start_timeout`` seconds
    for it to accept connections. On exit it asks for a fast shutdown, then an
    immediate one, then kills the process tree, each bounded by ``stop_timeout``.
    """
    for var in URL_ENV_VARS if use_env else ():
        url = os.environ.get(var)
        if url:
            yield PostgresServer(dsn=url, owned=False)
            return
    bindir = find_pg_bindir()
    user = _server_user()
    root = Path(tempfile.mkdtemp(prefix="frontrun-pg-", dir=_base_tmpdir()))
    server: PostgresServer | None = None
    try:
        _chown_tree(root, user)
        server = _start(bindir, root, user, start_timeout)
        with _LIVE_LOCK:
            _LIVE[id(server)] = server
        yield server
    finally:
        try:
            if server is not None:
                _stop(server, stop_timeout)
                with _LIVE_LOCK:
                    _LIVE.pop(id(server), None)
        finally:
            shutil.rmtree(root, ignore_errors=True)


@atexit.register
def _stop_leftovers() -> None:
    # Last resort for a process that exits without leaving the `with` block.
    for server in running_servers():
        with contextlib.suppress(Exception):
            _stop(server)
        with _LIVE_LOCK:
            _LIVE.pop(id(server), None)
        if server.socket_dir is not None:
            shutil.rmtree(server.socket_dir, ignore_errors=True)
