import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Where PYTHONDONTWRITEBYTECODE is set (this project's CI machines set it) every training process the
# tests start compiles the trainer anew from its run folder's code snapshot, which holds no bytecode
# (Azure uploads none: __pycache__ is ignored); on Azure and on users' machines the first process of a
# job writes it and the others read it. Run the tests' processes as they run there.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
# azure-ai-ml's jobs.stream sleeps this many seconds between polls of the (fake) workspace, at least 2 by
# default; it reads the variable once, when azure-ai-ml is imported, so a test's monkeypatch.setenv comes too
# late in a worker that has imported it already. The fake answers at once: poll without waiting.
os.environ.setdefault("AZUREML_RUN_POLLING_INTERVAL_MIN", "0")
# lint's cache of azure-ai-ml verdicts (lint/cache.py): one of the test session's own, never the user's.
_LINT_CACHE = tempfile.mkdtemp(prefix="jobgen-test-lint-cache-")
os.environ["JOBGEN_LINT_CACHE"] = _LINT_CACHE
# the migrated empty MLflow store new stores are copied from (runner/mlflowstore.py): the session's own
os.environ["JOBGEN_STORE_TEMPLATES"] = os.path.join(_LINT_CACHE, "mlflow-store")


# Test tiers. `make test` runs everything; `make test-fast` (pytest -m "not full") runs what needs no
# torch and starts no training run, server or multi-process job: the loop while working, under two
# minutes here, and it runs with only `pip install -e '.[dev]'` installed. Whole modules of the
# full tier are listed here; single tests elsewhere carry @pytest.mark.full.
FULL_MODULES = {"test_trainer.py", "test_serving.py", "test_runner.py", "test_mlflow_store.py", "test_faults.py",
                "test_logs.py", "test_batch.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in FULL_MODULES:
            item.add_marker(pytest.mark.full)


def pytest_ignore_collect(collection_path, config):
    """Modules of the full tier that import torch at the top are not even collected without it."""
    if collection_path.name in ("test_trainer.py", "test_serving.py") and not _has("torch"):
        return True
    return None


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_LINT_CACHE, ignore_errors=True)


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite tests/golden/ from the current templates instead of comparing")


@pytest.fixture
def update_golden(request):
    return request.config.getoption("--update-golden")


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process: returns (exit code, stdout, stderr)."""
    from jobgen.cli import main

    def run(*argv):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse usage errors
            rc = exc.code
        out, err = capsys.readouterr()
        return rc, out, err

    return run


@pytest.fixture
def azure_offline(monkeypatch):
    """For tests of the Azure path: a stray request to a real host fails loudly instead of leaving
    the machine, and no credential or workspace comes from this machine's environment."""
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for key in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_SUBSCRIPTION_ID",
                "AZURE_RESOURCE_GROUP", "AZUREML_WORKSPACE_NAME", "IDENTITY_ENDPOINT", "MSI_ENDPOINT"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
def fake():
    """A fake Azure (ARM, Azure ML REST, blob store, registries) on 127.0.0.1 for one test."""
    from helpers import fake_azure

    with fake_azure.FakeAzure(subscription=fake_azure.DEFAULT_SUBSCRIPTION) as f:
        yield f


@pytest.fixture
def submit(cli, fake, monkeypatch):
    """`generator.py submit ARGS` against ``fake``: MLClient for the workspace and for a registry
    are the fake's; the workspace flags are the fake's."""
    from helpers import fake_azure
    from jobgen import cloud

    monkeypatch.setattr(cloud, "make_client", lambda ws, credential=None, **kw: fake_azure.ml_client(fake))
    monkeypatch.setattr(cloud, "make_registry_client",
                        lambda name, credential=None, **kw: fake_azure.registry_client(fake, name))
    workspace = ["--subscription", fake_azure.DEFAULT_SUBSCRIPTION, "--resource-group", "rg", "--workspace", "ws"]

    def run(*args):
        return cli("submit", *map(str, args), *workspace)

    return run


@pytest.fixture
def root():
    return ROOT


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A copy of the project's templates, trainer code and job definitions in a temp folder,
    used as the project root (JOBGEN_ROOT) so tests never write into the repository."""
    import shutil

    dest = tmp_path / "project"
    for part in ("templates", "src/trainer", "jobs", "components"):
        shutil.copytree(ROOT / part, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("JOBGEN_ROOT", str(dest))
    return dest

sys.path.insert(0, str(ROOT / "src" / "trainer"))  # trainkit, as Azure's code snapshot sees it
sys.path.insert(0, str(ROOT / "tests"))  # helpers
