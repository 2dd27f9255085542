"""Lint against YAML we did not write: the official examples (tests/corpus/azureml-examples, see its
README). Every file judged valid lints without an error; every file judged defective gets one.
Files that reference something the stored copy of the repository lacks are left out."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from jobgen.lint import lint_paths

CORPUS = Path(__file__).parent / "corpus" / "azureml-examples"


@pytest.fixture(scope="module")
def index():
    return yaml.safe_load((CORPUS / "INDEX.yaml").read_text())


@pytest.fixture(scope="module")
def findings():
    out: dict[str, list] = {}
    for d in lint_paths([CORPUS]):
        path = Path(d.path).resolve().relative_to(CORPUS.resolve()).as_posix()
        out.setdefault(path, []).append(d)
    return out


def incomplete(index: dict, path: str) -> bool:
    """Whether ``path`` uses a file the corpus does not hold (INDEX: referenced_but_not_in_corpus)."""
    text = (CORPUS / path).read_text(errors="replace")
    top = path.rsplit("/", 2)[0]
    return any(m.rsplit("/", 1)[-1] in text and m.startswith(top) for m in index.get("referenced_but_not_in_corpus") or [])


def test_no_valid_official_example_gets_an_error(index, findings):
    wrong = {}
    for entry in index["files"]:
        if entry["valid"] and not incomplete(index, entry["path"]):
            errors = [d.format() for d in findings.get(entry["path"], []) if d.severity == "error"]
            if errors:
                wrong[entry["path"]] = errors
    assert not wrong, "\n".join(f"{p}:\n  " + "\n  ".join(e) for p, e in wrong.items())


def test_every_defective_example_is_caught(index, findings):
    missed = [f"{e['path']}: {e.get('defect')}" for e in index["files"]
              if not e["valid"] and not any(d.severity == "error" for d in findings.get(e["path"], []))]
    assert not missed, "\n".join(missed)


def test_the_corpus_is_what_its_index_says(index):
    listed = {e["path"] for e in index["files"]}
    assert len(listed) == index["counts"]["azureml_files"] >= 400
    assert all((CORPUS / p).is_file() for p in listed)
    assert sum(e["valid"] for e in index["files"]) == index["counts"]["valid"]
