"""GitOps: committed YAML beside each jobs/<name>/values.yaml; render --check fails with a
unified diff on drift and passes when everything matches."""

import shutil

import yaml


def test_repository_is_in_sync(cli, root, monkeypatch):
    monkeypatch.delenv("JOBGEN_ROOT", raising=False)
    rc, out, err = cli("render", "--check")
    assert rc == 0, out + err
    assert "up to date" in out


def test_every_definition_lints_clean(cli, root):
    rc, out, err = cli("lint", root / "jobs")
    assert rc == 0, out + err
    assert " 0 error(s)" in err


def test_check_reports_a_hand_edit_as_a_diff(cli, checkout):
    job = checkout / "jobs" / "penguins-mpi" / "job.yml"
    job.write_text(job.read_text().replace("instance_count: 2", "instance_count: 3"))
    rc, out, err = cli("render", "--check")
    assert rc == 1
    assert "--- " in out and "+++ " in out
    assert "-  instance_count: 3" in out and "+  instance_count: 2" in out
    assert "render --all" in err
    assert "instance_count: 3" in job.read_text(), "--check must not write"


def test_check_reports_a_values_change_not_yet_rendered(cli, checkout):
    values = checkout / "jobs" / "penguins-single" / "values.yaml"
    values.write_text(values.read_text().replace("epochs: 60", "epochs: 80"))
    rc, out, _ = cli("render", "--check")
    assert rc == 1 and "+  epochs: 80" in out
    rc, out, err = cli("render", "--all")
    assert rc == 0, err
    rc, out, _ = cli("render", "--check")
    assert rc == 0


def test_check_reports_missing_and_stale_files(cli, checkout):
    folder = checkout / "jobs" / "chickens-turkeys-ddp"
    (folder / "data.yml").unlink()
    rc, out, _ = cli("render", "--check")
    assert rc == 1 and "/dev/null" in out
    cli("render", "--all")
    values = folder / "values.yaml"
    values.write_text(values.read_text() + "data:\n  create: false\n")
    rc, out, _ = cli("render", "--check")
    assert rc == 1 and "data.yml: rendered file no longer produced" in out
    cli("render", "--all")
    assert not (folder / "data.yml").exists()


def test_new_definition_is_picked_up(cli, checkout):
    new = checkout / "jobs" / "my-job"
    new.mkdir()
    (new / "values.yaml").write_text("job:\n  display_name: mine\n  resources:\n    instance_count: 2\n")
    rc, out, _ = cli("render", "--check")
    assert rc == 1 and "my-job/job.yml (rendered)" in out
    rc, out, err = cli("render", "--all")
    assert rc == 0, err
    job = yaml.safe_load((new / "job.yml").read_text())
    assert job["display_name"] == "mine" and job["code"] == "../../src/trainer"


def test_definition_error_names_the_values_file(cli, checkout):
    bad = checkout / "jobs" / "broken"
    bad.mkdir()
    (bad / "values.yaml").write_text("job:\n  resources:\n    instance_count: 0\n")
    rc, out, err = cli("render", "--all")
    assert rc == 1 and len(err.splitlines()) == 1
    assert "jobs/broken/values.yaml: job.resources.instance_count: must be at least 1" in err
    shutil.rmtree(bad)


def test_every_values_file_under_jobs_is_known_to_lint_as_ours(root):
    """A values file with only batch:, registry:, services: or schedule: sections is one of ours,
    not 'unrecognised Azure ML YAML' (JG005)."""
    from jobgen.lint import lint_paths

    found = [d for d in lint_paths(sorted((root / "jobs").glob("*/values.yaml")), azure=False) if d.rule == "JG005"]
    assert not found, [d.format() for d in found]
