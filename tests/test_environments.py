"""A job's installs stay in its own layer (jobgen.runner.environments), never in the runner's venv.

Offline: the wheels are written here by hand, pip runs with --no-index and without the machine's
pip configuration (it may name a local index; these tests must not depend on it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.wheels import make_wheel, tinypkg  # noqa: F401 - used by the tests below
from jobgen.errors import JobgenError
from jobgen.runner import environments
from jobgen.runner.environments import conda_packages_of, layer, requirements_of, runner_site_dirs

RUNNER_BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def offline_pip(monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # no configured index, constraints, find-links
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")


def job_env(env) -> dict[str, str]:
    """What the runner gives a job's process: the layer's bin first, the runner's bin off PATH."""
    rest = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and Path(p) != RUNNER_BIN]
    return {**os.environ, "PATH": os.pathsep.join([str(env.bin_dir), *rest]), "PYTHONNOUSERSITE": "1"}


def run(argv, env=None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, **kw)


def runner_listing() -> set[str]:
    """The runner venv's top-level site-packages and bin: where an install would leave a trace."""
    names = {f"bin/{p.name}" for p in RUNNER_BIN.iterdir()}
    for d in runner_site_dirs():
        names |= {f"{d}/{p.name}" for p in Path(d).iterdir()}
    return names


# ---------------------------------------------------------------- the layer

def test_a_jobs_pip_install_goes_to_the_layer_and_never_to_the_runner(tmp_path):
    wheel = tinypkg(tmp_path / "wheels")
    before = runner_listing()
    env = layer(tmp_path / "run", "azureml:sklearn@latest")
    shell = job_env(env)

    done = run(["pip", "install", "--no-index", str(wheel)], env=shell)  # `pip`, found on PATH
    assert done.returncode == 0, done.stdout + done.stderr
    seen = run(["python", "-c", "import sys, tinypkg; print(tinypkg.__file__, sys.prefix)"], env=shell)
    assert seen.returncode == 0, seen.stderr
    assert seen.stdout.startswith(str(tmp_path / "run" / ".jobgen-env"))
    assert run(["tinycli"], env=shell).stdout.strip() == "tinycli 1.0"  # its console script, in the layer

    runner = run([sys.executable, "-c", "import tinypkg"])
    assert runner.returncode != 0 and "No module named 'tinypkg'" in runner.stderr
    after = runner_listing()
    assert after == before and not [n for n in after if "tinypkg" in n or "tinycli" in n]

    # the runner's own packages are seen (yaml, jinja2; jobgen through the runner's editable .pth)
    mine = run([str(env.python), "-c", "import yaml, jinja2, jobgen, importlib.util as u; "
                                       "print(u.find_spec('torch') is not None)"], env=shell)
    assert mine.returncode == 0, mine.stderr
    if (Path(runner_site_dirs()[0]) / "torch").is_dir():
        assert mine.stdout.strip() == "True"


def test_a_job_install_shadows_a_runner_package_without_touching_it(tmp_path):
    """`python -m pip install` of a package the runner has: the layer's copy wins, and pip, finding
    the runner's PyYAML outside the layer, does not uninstall it."""
    wheel = make_wheel(tmp_path / "wheels", "PyYAML", "999.0", "SHADOW = True\n", package="yaml")
    before = runner_listing()
    env = layer(tmp_path / "run", None)
    done = run([str(env.python), "-m", "pip", "install", "--no-index", "--no-deps", str(wheel)], env=job_env(env))
    assert done.returncode == 0, done.stdout + done.stderr
    assert run([str(env.python), "-c", "import yaml; assert yaml.SHADOW"]).returncode == 0
    assert run([sys.executable, "-c", "import yaml; assert not hasattr(yaml, 'SHADOW'); yaml.safe_load('a: 1')"]
               ).returncode == 0
    assert runner_listing() == before


def test_the_runners_console_scripts_run_with_the_layers_python(tmp_path):
    env = layer(tmp_path / "run", None)
    scripts = [p for p in RUNNER_BIN.iterdir() if p.is_file() and not p.name.startswith("python")
               and p.read_bytes()[:200].startswith(f"#!{sys.executable}\n".encode())]
    assert scripts, "the runner's venv has console scripts"
    for script in scripts:
        copied = env.bin_dir / script.name
        assert copied.read_text().splitlines()[0] == f"#!{env.python}", script.name
        assert os.access(copied, os.X_OK)
    if (RUNNER_BIN / "torchrun").exists():
        assert (env.bin_dir / "torchrun").read_text().startswith(f"#!{env.python}\n")
    if (RUNNER_BIN / "mpirun").exists():  # Open MPI's executables: symlinks, found on the layer's PATH
        assert (env.bin_dir / "mpirun").resolve() == (RUNNER_BIN / "mpirun").resolve()
    jobgen = run(["jobgen", "--help"], env=job_env(env)) if (env.bin_dir / "jobgen").exists() else None
    assert jobgen is None or jobgen.returncode == 0, jobgen.stderr


def test_a_layer_is_made_in_well_under_a_second_and_fresh_each_time(tmp_path):
    run_dir = tmp_path / "run"
    times = []
    for _ in range(3):
        started = time.perf_counter()
        env = layer(run_dir, "azureml:x@latest")
        times.append(time.perf_counter() - started)
        site_packages = Path(environments._site_packages(run_dir / ".jobgen-env"))
        assert [p.name for p in site_packages.iterdir()] == ["00-jobgen-layer.pth"]  # the last run's is gone
        (site_packages / "left_by_a_job.py").write_text("")
    print(f"layer made in {min(times) * 1000:.1f} ms (best of 3; worst {max(times) * 1000:.1f} ms)")
    assert min(times) < 1.0  # the target is well under 0.5 s; not a strict timing test
    assert env.header == (f"environment azureml:x@latest: run with this machine's Python "
                          f"{sys.version_info.major}.{sys.version_info.minor} and its packages; "
                          f"the job's own installs go to {run_dir / '.jobgen-env'}")


def test_nothing_is_made_inside_the_runners_venv(tmp_path):
    if sys.prefix == sys.base_prefix:
        pytest.skip("not run from a virtualenv")
    with pytest.raises(JobgenError, match="inside the virtualenv that runs jobgen"):
        environments._refuse_inside_runner(Path(sys.prefix) / "runs" / ".jobgen-env", "the run folder")
    environments._refuse_inside_runner(tmp_path / ".jobgen-env", "the run folder")  # elsewhere: fine


def test_pip_shebang_trick_for_long_paths():
    assert environments._shebang(Path("/short/bin/python")) == b"#!/short/bin/python\n"
    long = Path("/" + "x" * 150) / "bin" / "python"
    header = environments._shebang(long)
    body = b"import sys\n"
    bin_dir = long.parent
    assert header.startswith(b"#!/bin/sh\n'''exec' \"")
    assert environments._script_body_of(header + body, bin_dir) == body


# ---------------------------------------------------------------- --env venv: the cached virtualenv

def test_requirements_are_installed_once_into_a_cache_entry_and_reused(tmp_path, monkeypatch, capsys):
    wheel = tinypkg(tmp_path / "wheels")
    cache = tmp_path / "cache"
    started = time.perf_counter()
    first = layer(tmp_path / "run1", "./env.yml", requirements=[str(wheel)], cache=cache)
    built = time.perf_counter() - started
    assert "built now" in first.header and "under its 1 pip requirement" in first.header
    assert "tinypkg" in capsys.readouterr().err  # pip's progress went to stderr
    entries = [p for p in cache.iterdir() if p.is_dir()]
    assert len(entries) == 1 and (entries[0] / environments.MARKER).is_file()
    assert run([str(first.python), "-c", "import tinypkg; print(tinypkg.__file__)"]).stdout.startswith(str(entries[0]))
    assert run(["tinycli"], env=job_env(first)).stdout.strip() == "tinycli 1.0"  # the entry's script
    assert (first.bin_dir / "tinycli").read_text().startswith(f"#!{first.python}\n")

    def no_pip(entry):
        raise AssertionError("pip ran again")

    monkeypatch.setattr(environments, "_run_pip", no_pip)
    started = time.perf_counter()
    second = layer(tmp_path / "run2", "./env.yml", requirements=[str(wheel)], cache=cache)
    reused = time.perf_counter() - started
    print(f"cached environment: built in {built:.2f} s, reused in {reused * 1000:.1f} ms")
    assert "reused" in second.header and [p for p in cache.iterdir() if p.is_dir()] == entries
    monkeypatch.undo()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")

    # the job's own installs come first, then the cached entry's, then the runner's
    newer = tinypkg(tmp_path / "newer", "2.0")
    assert run(["pip", "install", "--no-index", str(newer)], env=job_env(second)).returncode == 0
    assert run([str(second.python), "-c", "import tinypkg; print(tinypkg.VERSION)"]).stdout.strip() == "2.0"
    assert run([str(first.python), "-c", "import tinypkg; print(tinypkg.VERSION)"]).stdout.strip() == "1.0"
    assert run([str(second.python), "-c", "import yaml"]).returncode == 0


@pytest.mark.parametrize("requirements, named", [
    (["{tmp}/missing-1.0-py3-none-any.whl"], "missing-1.0-py3-none-any.whl"),
    (["--no-index", "nosuchpkg-jobgen-test"], "nosuchpkg-jobgen-test"),
])
def test_a_requirement_pip_cannot_install_is_one_line_and_leaves_no_entry(tmp_path, requirements, named, capsys):
    cache = tmp_path / "cache"
    requirements = [r.format(tmp=tmp_path) for r in requirements]
    with pytest.raises(JobgenError) as caught:
        layer(tmp_path / "run", "./env.yml", requirements=requirements, cache=cache)
    line = caught.value.line()
    print(line)
    assert "\n" not in line and named in line and line.startswith("environment ./env.yml: ")
    assert not [p for p in cache.iterdir() if p.is_dir()] if cache.exists() else True
    assert not (tmp_path / "run" / ".jobgen-env").exists()


def test_the_failure_line_names_the_requirement_pip_named():
    output = ["Looking in links: /opt/wheels",
              "ERROR: Could not find a version that satisfies the requirement nosuch>=1 (from versions: none)",
              "ERROR: No matching distribution found for nosuch>=1"]
    assert environments._pip_failure(["numpy", "nosuch>=1"], output) == (
        "pip could not install 'nosuch>=1': Could not find a version that satisfies the requirement nosuch>=1 "
        "(from versions: none)")
    assert environments._pip_failure(["a"], ["ERROR: disk full"]) == (
        "pip could not install the environment's requirements: disk full")


def test_the_cache_key_is_the_sorted_requirements_python_and_interpreter(monkeypatch):
    assert environments.cache_key(["b", "a"]) == environments.cache_key(["a", "b"])
    assert environments.cache_key(["a"]) != environments.cache_key(["a==1"])
    key = environments.cache_key(["a"])
    monkeypatch.setattr(sys, "executable", "/elsewhere/bin/python")
    assert environments.cache_key(["a"]) != key
    monkeypatch.setenv("XDG_CACHE_HOME", "/x/cache")
    assert environments.default_cache() == Path("/x/cache/jobgen/envs")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert environments.default_cache() == Path.home() / ".cache" / "jobgen" / "envs"


# ---------------------------------------------------------------- an environment's pip list

CONDA = """\
name: train
channels: [conda-forge]
dependencies:
  - python=3.10
  - conda-forge::pip=23.0
  - numpy=1.26
  - pip:
      - mlflow
      - azureml-mlflow==1.55
      - ./wheels/tinypkg-1.0-py3-none-any.whl
      - -r requirements.txt
      - --extra-index-url https://example.org/simple
"""


def test_requirements_of_an_inline_environment_with_a_conda_file(tmp_path):
    (tmp_path / "conda.yml").write_text(CONDA)
    environment = {"image": "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04", "conda_file": "./conda.yml"}
    assert requirements_of(environment, tmp_path) == [
        "mlflow", "azureml-mlflow==1.55", str(tmp_path / "wheels/tinypkg-1.0-py3-none-any.whl"),
        f"-r {tmp_path / 'requirements.txt'}", "--extra-index-url https://example.org/simple"]
    assert conda_packages_of(environment, tmp_path) == ["numpy=1.26"]  # skipped: not a pip package


def test_requirements_of_a_local_environment_yaml(tmp_path):
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "conda.yml").write_text("dependencies:\n  - python=3.11\n  - pip:\n      - torch\n")
    (tmp_path / "envs" / "env.yml").write_text("$schema: https://azuremlschemas.azureedge.net/latest/"
                                               "environment.schema.json\nname: train\nimage: ubuntu\n"
                                               "conda_file: conda.yml\n")
    assert requirements_of("./envs/env.yml", tmp_path) == ["torch"]
    assert requirements_of("file:./envs/env.yml", tmp_path) == ["torch"]
    assert conda_packages_of("file:envs/env.yml", tmp_path) == []


@pytest.mark.parametrize("environment", [
    "azureml:x@latest", "azureml:AzureML-sklearn-1.5:3",
    "azureml://registries/azureml/environments/sklearn-1.5/labels/latest",
    {"image": "ubuntu"}, {"build": {"path": "./docker"}}, None])
def test_nothing_to_read_here_gives_none(tmp_path, environment):
    assert requirements_of(environment, tmp_path) is None


def test_a_malformed_conda_file_is_one_line_with_its_place(tmp_path):
    (tmp_path / "conda.yml").write_text("dependencies:\n  - python\n  - pip: mlflow\n")
    with pytest.raises(JobgenError) as caught:
        requirements_of({"conda_file": "conda.yml"}, tmp_path)
    assert caught.value.line().startswith(f"{tmp_path / 'conda.yml'}:3: `pip:` must be a list")
    with pytest.raises(JobgenError, match="file not found"):
        requirements_of("./missing.yml", tmp_path)
