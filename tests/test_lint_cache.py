"""lint keeps azure-ai-ml's verdicts on unchanged files (lint/cache.py): a second lint of the same
file does not import azure-ai-ml, and anything the verdict depends on, changed, is judged again."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jobgen.lint import Document, cache, lint_paths
from jobgen.runner.snapshot import IgnoreRules

ROOT = Path(__file__).resolve().parents[1]
GOOD = ROOT / "tests" / "fixtures" / "lint" / "good"


@pytest.fixture
def store(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("JOBGEN_LINT_CACHE", str(folder))
    return folder


def _pipeline(tmp_path: Path) -> Path:
    dest = tmp_path / "p"
    shutil.copytree(GOOD, dest)
    (tmp_path / "code").mkdir(exist_ok=True)
    (tmp_path / "code" / "train.py").write_text("print('hi')\n")
    return dest / "pipeline.yml"


def _lint_in_a_new_process(target: Path, *flags: str) -> dict:
    """Lint in a fresh interpreter: its findings, and whether azure-ai-ml was imported."""
    script = ("import json, sys; sys.path.insert(0, 'src'); from jobgen.cli import main; "
              f"rc = main(['lint', {str(target)!r}, '-q', *{list(flags)!r}]); "
              "print(json.dumps({'rc': rc, 'azure': 'azure.ai.ml' in sys.modules}))")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    *shown, last = done.stdout.strip().splitlines() or [""]
    return dict(json.loads(last), out=shown, err=done.stderr)


def test_an_unchanged_file_is_not_judged_again(tmp_path, store):
    job = tmp_path / "job.yml"
    job.write_text("$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\ntype: command\n"
                   "command: echo hi\nenvironment: azureml:env@latest\ncompute: azureml:cpu\ndisplay_name: [1, 2]\n")
    first = _lint_in_a_new_process(job)
    again = _lint_in_a_new_process(job)
    assert first["azure"] and not again["azure"]
    assert again["out"] == first["out"] and "azure-ai-ml: display_name: Not a valid string" in "".join(first["out"])  # the same finding, from the cache
    fresh = _lint_in_a_new_process(job, "--no-cache")
    assert fresh["azure"] and fresh["out"] == first["out"]


def test_a_changed_component_file_is_judged_again(tmp_path, store):
    pipeline = _pipeline(tmp_path)
    lint_paths([pipeline])
    doc = Document(pipeline.resolve(), pipeline.read_text())
    from jobgen.lint import _parse

    _parse(doc)
    assert cache.lookup(doc, doc.text) is not None
    component = pipeline.parent / "component.yml"
    component.write_text(component.read_text().replace("  epochs:\n    type: integer", "  epoch:\n    type: integer"))
    assert cache.lookup(doc, doc.text) is None  # the pipeline's verdict depends on its component
    cached = sorted(d.format() for d in lint_paths([pipeline]))
    cache.disable()
    try:
        assert sorted(d.format() for d in lint_paths([pipeline])) == cached
    finally:
        cache._disabled_by_flag = False


def test_a_code_folder_that_disappears_is_judged_again(tmp_path, store):
    pipeline = _pipeline(tmp_path)
    component = pipeline.parent / "component.yml"
    lint_paths([component])
    doc = Document(component.resolve(), component.read_text())
    from jobgen.lint import _parse

    _parse(doc)
    assert cache.lookup(doc, doc.text) is not None
    shutil.rmtree(tmp_path / "code")
    assert cache.lookup(doc, doc.text) is None


def test_another_azure_ai_ml_version_is_another_key(tmp_path, store, monkeypatch):
    pipeline = _pipeline(tmp_path)
    doc = Document(pipeline.resolve(), pipeline.read_text())
    before = cache.key(doc, doc.text)
    from importlib import metadata

    real = metadata.version
    monkeypatch.setattr(metadata, "version", lambda dist: "0.0.1" if dist == "azure-ai-ml" else real(dist))
    cache.stamp.cache_clear()
    try:
        assert cache.key(doc, doc.text) != before
    finally:
        cache.stamp.cache_clear()


def test_cache_off_and_unwritable_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("JOBGEN_LINT_CACHE", "off")
    assert cache.directory() is None
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("JOBGEN_LINT_CACHE", str(blocked))
    found = lint_paths([_pipeline(tmp_path)])
    assert not [d for d in found if d.severity == "error"]


IGNORE = """# a comment

*.log
!keep.log
build/
/top.txt
**/deep/*.bin
data/**
\\#hash
trailing   
"""
PATHS = ["a.log", "keep.log", "x/keep.log", "x/a.log", "build/a.py", "src/build/b.py", "top.txt", "x/top.txt",
         "a/b/deep/c.bin", "deep/c.bin", "deep/c.txt", "data/x.csv", "data", "#hash", "trailing", "train.py",
         "x/y/z.py"]


def test_ignore_rules_are_azure_ai_mls(tmp_path):
    from azure.ai.ml._utils._asset_utils import get_ignore_file

    (tmp_path / ".gitignore").write_text(IGNORE)
    ours = IgnoreRules(tmp_path / ".gitignore")
    theirs = get_ignore_file(tmp_path)
    verdicts = {p: ours.excluded(tmp_path / p) for p in PATHS}
    assert verdicts == {p: bool(theirs.is_file_excluded((tmp_path / p).as_posix())) for p in PATHS}
    assert verdicts["a.log"] and not verdicts["keep.log"] and not verdicts["train.py"]


def test_lint_of_a_job_does_not_import_azure_ai_ml_for_its_ignore_file(tmp_path, store):
    """The code folder's .gitignore is read with azure-ai-ml's pattern module alone."""
    code = tmp_path / "src"
    code.mkdir()
    (code / ".gitignore").write_text("*.log\n")
    (code / "train.py").write_text("print('hi')\n")
    job = tmp_path / "job.yml"
    job.write_text("$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\ntype: command\n"
                   "code: ./src\ncommand: python train.py\nenvironment: azureml:env@latest\ncompute: azureml:cpu\n")
    result = _lint_in_a_new_process(job, "--no-azure")
    assert result["rc"] == 0 and not result["azure"]


def test_render_then_lint_reuses_the_verdict_on_what_was_written(tmp_path, store, cli, checkout):
    """render lints a staging copy beside each file; the verdict is kept under the file's own place,
    so linting what was written does not judge it again. Pipelines linted with staged components
    swapped in are not kept (those files move)."""
    out = checkout / "rendered"
    rc, _, err = cli("render", "-o", out)
    assert rc == 0, err
    entries = {json.loads(p.read_text())["file"] for p in store.rglob("*.json")}
    assert str((out / "job.yml").resolve()) in entries
    assert not [e for e in entries if ".jobgen-" in e]
    result = _lint_in_a_new_process(out / "job.yml")
    assert result["rc"] == 0 and not result["azure"]
