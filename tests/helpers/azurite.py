"""Start and stop Azurite's blob service (the Azure Storage emulator) for a test, on 127.0.0.1.

Azurite is the npm package ``azurite``; install it next to the virtualenv with

    npm install --prefix .venv/node --no-audit --no-fund azurite

Usage::

    from helpers.azurite import Azurite, azurite_command

    if azurite_command() is None:
        pytest.skip("Azurite (npm package azurite) is not installed: no Node or no azurite")
    with Azurite() as az:
        url = az.container_sas_url("snapshots")   # http://127.0.0.1:<port>/devstoreaccount1/snapshots?<sas>
        ...
        assert az.list_blobs("snapshots") == [...]

The emulator runs with ``--inMemoryPersistence`` (nothing written to disk), ``--disableTelemetry``
(Azurite otherwise reports usage over the network), ``--skipApiVersionCheck`` (azure-storage-blob
may be newer than the emulator) and ``--loose``. It is stopped by its own process id, with its
children, when the ``with`` block ends.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCAL_BIN = ROOT / ".venv" / "node" / "node_modules" / ".bin" / "azurite-blob"

ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

INSTALL_HINT = "npm install --prefix .venv/node --no-audit --no-fund azurite"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_bins() -> list[Path]:
    """node_modules/.bin folders npx would use without installing: the project's .venv/node, then
    the current directory and its parents."""
    found = [LOCAL_BIN.parent]
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        found.append(folder / "node_modules" / ".bin")
    return found


def azurite_command() -> list[str] | None:
    """The command that runs azurite-blob here, or None when Node or Azurite is missing.

    Looked for in order: $AZURITE_BLOB (a path to the executable), the project's local install
    (.venv/node/node_modules/.bin/azurite-blob), a node_modules/.bin/azurite-blob in the current
    directory or a parent (what ``npx --no-install azurite-blob`` would run), and ``azurite-blob``
    on PATH (a global install). ``npx`` itself is not run: npm 11 asks the registry before it
    gives up on a missing package (70 s here behind a dead proxy), and ``--version`` goes to npx."""
    if shutil.which("node") is None:
        return None
    override = os.environ.get("AZURITE_BLOB")
    if override and Path(override).is_file() and os.access(override, os.X_OK):
        return [override]
    for folder in _node_bins():
        candidate = folder / "azurite-blob"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return [str(candidate)]
    on_path = shutil.which("azurite-blob")
    return [on_path] if on_path else None


def _die_with_parent() -> None:  # runs in the child between fork and exec (Linux only, best effort)
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class AzuriteUnavailable(RuntimeError):
    """Azurite is not installed or did not start."""


class Azurite:
    """Azurite's blob service on 127.0.0.1:<free port>, as a context manager.

    ``blob_endpoint`` is ``http://127.0.0.1:<port>/devstoreaccount1`` (the IP-style URL: the
    account is the first path segment)."""

    account_name = ACCOUNT_NAME
    account_key = ACCOUNT_KEY

    def __init__(self, command: list[str] | None = None, *, port: int | None = None,
                 start_timeout: float = 30.0, in_memory: bool = True) -> None:
        self.command = command or azurite_command()
        self.port = port or _free_port()
        self.host = "127.0.0.1"
        self.start_timeout = start_timeout
        self.in_memory = in_memory
        self.proc: subprocess.Popen | None = None
        self._workdir: tempfile.TemporaryDirectory | None = None
        self._log = None

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def blob_endpoint(self) -> str:
        return f"http://{self.host}:{self.port}/{ACCOUNT_NAME}"

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
                f"BlobEndpoint={self.blob_endpoint};")

    def start(self) -> "Azurite":
        if self.command is None:
            raise AzuriteUnavailable(f"azurite-blob not found (Node.js and the npm package azurite are needed: "
                                     f"{INSTALL_HINT})")
        self._workdir = tempfile.TemporaryDirectory(prefix="azurite-")
        work = self._workdir.name
        args = [*self.command, "--blobHost", self.host, "--blobPort", str(self.port), "--disableTelemetry",
                "--skipApiVersionCheck", "--loose", "--silent"]
        args += ["--inMemoryPersistence"] if self.in_memory else ["--location", work]
        self._log = open(Path(work) / "azurite.log", "w+b")
        env = dict(os.environ)
        env.pop("AZURITE_DB", None)  # never a shared SQL metadata store: in memory or a temp folder only
        # Own session (stop() ends the whole group) and SIGTERM if this process dies without
        # stopping it (a test run killed by a timeout), so no emulator outlives its test.
        self.proc = subprocess.Popen(args, cwd=work, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True, env=env,
                                     preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        deadline = time.monotonic() + self.start_timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                out = self._read_log()
                self.stop()
                raise AzuriteUnavailable(f"azurite-blob exited with {rc}: {out[-2000:]}")
            if self._answers():
                break
            if time.monotonic() > deadline:
                out = self._read_log()
                self.stop()
                raise AzuriteUnavailable(f"azurite-blob did not listen on {self.port} within "
                                         f"{self.start_timeout:.0f}s: {out[-2000:]}")
            time.sleep(0.1)
        return self

    def _answers(self) -> bool:
        """True once Azurite itself answers HTTP on the port (not some other listener)."""
        import http.client

        conn = http.client.HTTPConnection(self.host, self.port, timeout=1)
        try:
            conn.request("GET", f"/{ACCOUNT_NAME}?comp=list")
            response = conn.getresponse()
            response.read()
            return "azurite" in (response.getheader("Server") or "").lower()
        except OSError:
            return False
        finally:
            conn.close()

    def _read_log(self) -> str:
        if self._log is None:
            return ""
        try:
            self._log.flush()
            self._log.seek(0)
            return self._log.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            # Our own process group (start_new_session): the node process and any children.
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
        elif proc is not None:
            try:  # the leader is gone; a child may still hold the group
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def __enter__(self) -> "Azurite":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- storage helpers -----------------------------------------------------------------------
    def service_client(self):
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient(account_url=self.blob_endpoint,
                                 credential={"account_name": ACCOUNT_NAME, "account_key": ACCOUNT_KEY})

    def create_container(self, container: str) -> None:
        from azure.core.exceptions import ResourceExistsError

        try:
            self.service_client().create_container(container)
        except ResourceExistsError:
            pass

    def container_sas(self, container: str, *, hours: float = 2.0) -> str:
        """A container SAS (read, add, create, write, delete, list) for the development account."""
        from azure.storage.blob import ContainerSasPermissions, generate_container_sas

        return generate_container_sas(
            account_name=ACCOUNT_NAME, container_name=container, account_key=ACCOUNT_KEY,
            permission=ContainerSasPermissions(read=True, add=True, create=True, write=True, delete=True,
                                               list=True),
            start=datetime.now(timezone.utc) - timedelta(minutes=5),
            expiry=datetime.now(timezone.utc) + timedelta(hours=hours),
            protocol="https,http",
        )

    def container_sas_url(self, container: str) -> str:
        """Create ``container`` (if missing); return ``http://127.0.0.1:<port>/devstoreaccount1/<container>?<sas>``."""
        self.create_container(container)
        return f"{self.blob_endpoint}/{container}?{self.container_sas(container)}"

    def list_blobs(self, container: str, prefix: str | None = None) -> list[str]:
        """Names of the blobs in ``container`` (sorted); [] when the container does not exist."""
        from azure.core.exceptions import ResourceNotFoundError

        client = self.service_client().get_container_client(container)
        try:
            return sorted(b.name for b in client.list_blobs(name_starts_with=prefix))
        except ResourceNotFoundError:
            return []

    def upload_blob(self, container: str, name: str, data: bytes | str) -> None:
        self.create_container(container)
        self.service_client().get_blob_client(container, name).upload_blob(data, overwrite=True)

    def download_blob(self, container: str, name: str) -> bytes:
        return self.service_client().get_blob_client(container, name).download_blob().readall()
