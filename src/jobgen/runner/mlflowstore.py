"""The local MLflow store that runs on this machine share: one SQLite file (`runs/mlflow.db`).

MLflow creates and migrates an SQLite store the first time a process opens it, with nothing to
stop two processes from doing it at once: two runs started together against a new store crash
in alembic ("Online migration expected to match one row", "duplicate column name"). So the
runner makes the store ready before any job process starts, under an flock on `<db>.lock`
beside it (the kernel lets go of it when the process ends, however it ends); a job process then
only opens a store at MLflow's head revision and never migrates.

Concurrent writers: the file is switched to WAL once (the mode is kept in the file), so readers
never wait for a writer and a writer never waits for readers; MLflow's SqlAlchemyStore sets
`PRAGMA busy_timeout = 20000` on each of its sessions (mlflow/store/db/utils.py), so a writer
waits up to 20 s for another instead of failing with "database is locked". The URI handed to
jobs therefore stays the plain `sqlite:///<absolute path>`, the one `mlflow ui
--backend-store-uri` takes.

Start-up cost: the ready check reads the file with sqlite3 and MLflow's migration scripts as
text (milliseconds). MLflow itself (seconds to import, about a second to migrate: 5 s of CPU
here) is loaded only when a store is behind MLflow's head revision, or for the first new store
of a head revision: that one, empty and migrated, is kept as a template
(`~/.cache/jobgen/mlflow-store/<revision>.db`, or JOBGEN_STORE_TEMPLATES; `off` for none), and
every later new store is a copy of it. A migrated store holds tables and the revision only
(MLflow adds its Default experiment when a job first opens the store), so one copy fits any path.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import importlib.util
import logging
import os
import re
import shutil
import sqlite3
import time
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import JobgenError

PREFIX = "sqlite:///"
LOCK_SUFFIX = ".lock"
LOCK_WAIT_SECONDS = 120.0
BUSY_TIMEOUT_SECONDS = 30.0
REVISION = re.compile(r"^revision\s*(?::[^=]*)?=\s*['\"]([0-9A-Za-z_]+)['\"]", re.M)
DOWN_REVISION = re.compile(r"^down_revision\s*(?::[^=]*)?=\s*(.+)$", re.M)
QUOTED = re.compile(r"['\"]([0-9A-Za-z_]+)['\"]")
FIX_HINT = "move the file aside (keep it if it holds earlier runs) or point JOBGEN_MLFLOW_URI at another store"


def prepare(uri: str) -> str:
    """Make the SQLite store at ``uri`` ready for concurrent runs; return the URI for jobs.
    Other stores (a tracking server, an in-memory database) are returned as they are."""
    path = db_path(uri)
    if path is None or importlib.util.find_spec("mlflow") is None:
        return uri
    query = uri.partition("?")[2]
    job_uri = PREFIX + str(path) + (f"?{query}" if query else "")
    if not is_ready(path):
        with locked(path):
            if not is_ready(path):  # another run may have made it ready while we waited
                create(path, job_uri)
    return job_uri


def db_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, absolute (job processes run elsewhere)."""
    if not uri.startswith(PREFIX):
        return None
    name = uri[len(PREFIX):].partition("?")[0]
    if name in ("", ":memory:"):
        return None
    return Path(name).absolute()


def is_ready(path: Path) -> bool:
    """The store exists, is in WAL mode and is at MLflow's head revision: nothing to do."""
    head = migrations()[1]
    if head is None or not path.is_file():
        return False
    try:
        with _connect(path) as conn:
            return _journal_mode(conn) == "wal" and _revision(conn) == head
    except sqlite3.Error:  # no alembic table yet, half written, not a database: create() decides
        return False


@functools.lru_cache(maxsize=1)
def migrations() -> tuple[frozenset[str], str | None]:
    """MLflow's schema revisions and its head, read from its migration scripts as text (importing
    MLflow takes seconds). The head is None when the scripts cannot be read that way; then
    create() asks MLflow itself."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in _migration_scripts():
        text = script.read_text(encoding="utf-8", errors="replace")
        revision, down = REVISION.search(text), DOWN_REVISION.search(text)
        if revision:
            revisions.add(revision.group(1))
            parents.update(QUOTED.findall(down.group(1)) if down else ())
    heads = revisions - parents
    return frozenset(revisions), (next(iter(heads)) if len(heads) == 1 else None)


def _migration_scripts() -> list[Path]:
    spec = importlib.util.find_spec("mlflow")  # finds the package without importing it
    if spec is None or not spec.origin:
        return []
    folder = Path(spec.origin).parent / "store" / "db_migrations" / "versions"
    return sorted(folder.glob("*.py")) if folder.is_dir() else []


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive flock on ``<db>.lock``, waited for (a migration takes seconds), bounded."""
    lock = path.with_name(path.name + LOCK_SUFFIX)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise JobgenError(f"cannot create the MLflow store's lock file: {exc.strerror}", where=str(lock),
                          hint="make the folder writable or point JOBGEN_MLFLOW_URI at another store") from None
    try:
        _wait_for_lock(fd, lock)
        os.ftruncate(fd, 0)
        os.write(fd, f"process {os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # releases the flock


def _wait_for_lock(fd: int, lock: Path) -> None:
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise JobgenError(f"cannot lock the MLflow store: {exc.strerror}", where=str(lock),
                                  hint=FIX_HINT) from None
        if time.monotonic() > deadline:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise JobgenError(f"the MLflow store has been locked by {holder} for {LOCK_WAIT_SECONDS:.0f} s",
                              where=str(lock), hint="wait for that run to start its jobs, or stop it") from None
        time.sleep(0.05)


def create(path: Path, uri: str) -> None:
    """Under the lock: a new store is a copy of the template; otherwise WAL on, then MLflow's own
    creation or upgrade when not at its head."""
    if _is_new(path) and _from_template(path):
        return
    try:
        with _connect(path) as conn:
            if _journal_mode(conn) != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            current = _revision_or_none(conn)
    except sqlite3.Error as exc:
        raise JobgenError(f"cannot open the MLflow store: {exc}", where=str(path), hint=FIX_HINT) from None
    known, head = migrations()
    if current is not None and current == head:
        return
    if current is not None and known and current not in known:
        raise JobgenError(f"the MLflow store is at schema revision {current}, which this MLflow does not know "
                          "(a newer MLflow made it)", where=str(path),
                          hint="upgrade mlflow, or " + FIX_HINT)
    _migrate(path, uri)


def _is_new(path: Path) -> bool:
    try:
        return not path.exists() or path.stat().st_size == 0
    except OSError:
        return False


def template_folder() -> Path | None:
    choice = os.environ.get("JOBGEN_STORE_TEMPLATES", "")
    if choice.strip().lower() in ("off", "0", "no", "false"):
        return None
    return Path(choice).expanduser() if choice else Path.home() / ".cache" / "jobgen" / "mlflow-store"


def _from_template(path: Path) -> bool:
    """``path`` (a new store) as a copy of the migrated template of MLflow's head revision, made
    first when there is none. False when there can be no template (unknown head, unwritable
    cache): the store is then made in place."""
    head = migrations()[1]
    folder = template_folder()
    if head is None or folder is None:
        return False
    template = folder / f"{head}.db"
    try:
        if not is_ready(template):
            folder.mkdir(parents=True, exist_ok=True)
            with locked(template):
                if not is_ready(template):
                    _make_template(template)
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        shutil.copyfile(template, temp)
        os.replace(temp, path)
    except (OSError, JobgenError):
        return False
    for leftover in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:  # an empty store's journal files (sqlite made them when it was opened) belong to no copy
            leftover.unlink()
        except FileNotFoundError:
            pass
    return is_ready(path)


def _make_template(template: Path) -> None:
    """An empty store migrated by MLflow itself, its write-ahead log folded into the file."""
    temp = template.with_name(f".{template.name}.{os.getpid()}.tmp")
    for stale in (temp, temp.with_name(temp.name + "-wal"), temp.with_name(temp.name + "-shm")):
        if stale.exists():
            stale.unlink()
    uri = PREFIX + str(temp)
    with _connect(temp) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
    _migrate(temp, uri)
    with _connect(temp) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for journal in (temp.with_name(temp.name + "-wal"), temp.with_name(temp.name + "-shm")):
        if journal.exists():
            journal.unlink()
    os.replace(temp, template)


def _migrate(path: Path, uri: str) -> None:
    """MLflow's own table creation and alembic upgrade, as its store runs them on a new file
    (and as `mlflow db upgrade` runs them on an old one)."""
    try:
        from mlflow.store.db import utils
    except ImportError:  # MLflow without its SQL store: the jobs' own MLflow makes the store
        return
    with _quiet("mlflow", "alembic"):  # its INFO lines ("Creating initial MLflow database tables...")
        try:
            _upgrade(utils, uri)
        except Exception as exc:  # noqa: BLE001 - alembic, SQLAlchemy and MLflow errors alike
            raise JobgenError(f"cannot create or migrate the MLflow store: {_first_line(exc)}", where=str(path),
                              hint=FIX_HINT) from None


def _upgrade(utils, uri: str) -> None:
    engine = utils.create_sqlalchemy_engine_with_retry(uri)
    try:
        if utils._get_schema_version(engine) != utils._get_latest_schema_revision():
            utils._initialize_tables(engine)  # create_all of the first schema, then alembic to head
        utils._verify_schema(engine)
    finally:
        engine.dispose()


@contextmanager
def _quiet(*names: str) -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _connect(path: Path) -> closing[sqlite3.Connection]:
    """A short-lived connection (sqlite3's own context manager commits but does not close)."""
    return closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None))


def _journal_mode(conn: sqlite3.Connection) -> str:
    return str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()


def _revision(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return row[0] if row else None


def _revision_or_none(conn: sqlite3.Connection) -> str | None:
    try:
        return _revision(conn)
    except sqlite3.OperationalError:  # a new or half-created store: no alembic table yet
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]



def artifact_root(uri: str) -> str | None:
    """Where experiments that jobs make keep their artifacts: beside the store
    (<store folder>/mlartifacts), never under the job's working directory (MLflow's default
    ./mlruns would land inside a run's code/ snapshot, which the next run in that folder
    replaces). Jobs get it as _MLFLOW_SERVER_ARTIFACT_ROOT, the variable MLflow's own server
    hands its clients for the same purpose."""
    path = db_path(uri)
    return (path.parent / "mlartifacts").as_uri() if path is not None else None
