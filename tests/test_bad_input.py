"""Bad input: one clear line on stderr (what, where, how to fix), a non-zero exit, no
traceback, and nothing written."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

# name -> (arguments, text the one line must contain, files to create first {name: text})
CASES = {
    "nodes-zero": (["--nodes", "0"], "--nodes: must be at least 1", {}),
    "nodes-not-a-number": (["--nodes", "abc"], "--nodes: must be a whole number, got 'abc'", {}),
    "nodes-negative": (["--nodes", "-2"], "--nodes: must be at least 1", {}),
    "gpus-zero": (["--gpus", "0"], "--gpus: must be at least 1", {}),
    "gpus-not-a-number": (["--gpus", "four"], "--gpus: must be a whole number", {}),
    "gpus-above-vm": (["--gpus", "8"], "8 processes per node but Standard_NC64as_T4_v3 has 4 GPUs", {}),
    "gpus-above-a100-vm": (["--vm-size", "Standard_NC24ads_A100_v4", "--gpus", "2"],
                           "2 processes per node but Standard_NC24ads_A100_v4 has 1 GPU", {}),
    "unknown-distribution": (["--distribution", "horovod"], "--distribution: unknown value 'horovod'", {}),
    "tensorflow-distribution": (["--distribution", "tensorflow"], "'tensorflow' distribution is not generated", {}),
    "unknown-launcher": (["--launcher", "mpirun"], "--launcher: unknown value 'mpirun'", {}),
    "torchrun-with-mpi": (["--launcher", "torchrun", "--distribution", "mpi"],
                          "torchrun launcher needs distribution pytorch", {}),
    "no-distribution-many-gpus": (["--distribution", "none", "--gpus", "4"],
                                  "4 processes per node need a distribution", {}),
    "retired-vm-size": (["--vm-size", "Standard_NC6"], "Standard_NC6 (NC) was retired on 2023-09-06", {}),
    "nodes-above-cluster-max": (["--nodes", "5"], "the job needs 5 nodes but the cluster scales to 4", {}),
    "bad-compute-name": (["--compute", "my cluster!"], "'my cluster!' is not a valid name", {}),
    "missing-values-file": (["-f", "{tmp}/nope.yaml"], "nope.yaml: file not found", {}),
    "malformed-values-file": (["-f", "{tmp}/bad.yaml"], "bad.yaml:3: not valid YAML",
                              {"bad.yaml": "job:\n  inputs: [epochs: 3\n"}),
    "values-file-is-a-list": (["-f", "{tmp}/list.yaml"], "must be a mapping of sections",
                              {"list.yaml": "- job\n- cluster\n"}),
    "values-file-unknown-key": (["-f", "{tmp}/typo.yaml"], "unknown key 'job.resources.instance_cont'",
                                {"typo.yaml": "job:\n  resources:\n    instance_cont: 2\n"}),
    "values-file-job-key-at-top": (["-f", "{tmp}/top.yaml"], "job keys go under 'job:'",
                                   {"top.yaml": "resources:\n  instance_count: 2\n"}),
    "values-file-duplicate-key": (["-f", "{tmp}/dup.yaml"], "key 'job.inputs' appears twice",
                                  {"dup.yaml": "job:\n  inputs: {}\n  inputs: {}\n"}),
    "unknown-set-path": (["--set", "bogus.path=1"], "unknown --set path 'bogus.path'", {}),
    "set-typo": (["--set", "resources.instance_cont=2"], "did you mean 'job.resources.instance_count'?", {}),
    "set-without-equals": (["--set", "resources.instance_count"], "--set expects PATH=VALUE", {}),
    "set-wrong-type": (["--set", "resources.instance_count=two"], "must be a whole number, got 'two'", {}),
    "set-bad-tier": (["--set", "cluster.tier=cheap"], "unknown value 'cheap'", {}),
    "set-bad-job-tier": (["--serverless", "--set", "queue_settings.job_tier=cheap"],
                         "job_tier: unknown value 'cheap' (hint: use one of: spot, basic, standard, premium)", {}),
    "bad-tier-flag": (["--tier", "gold"], "argument --tier: invalid choice: 'gold'", {}),
    "serverless-without-size": (["--serverless", "--set", "cluster.size="], "a serverless job needs a VM size", {}),
    "serverless-retired-size": (["--serverless", "--vm-size", "Standard_NC6"], "Standard_NC6 (NC) was retired", {}),
    "serverless-too-many-gpus": (["--serverless", "--vm-size", "Standard_NC24ads_A100_v4", "--gpus", "2"],
                                 "2 processes per node but Standard_NC24ads_A100_v4 has 1 GPU", {}),
    "serverless-system-identity": (["--serverless", "--set", "identity.type=managed"],
                                   "no system-assigned identity to use", {}),
    "bad-identity-type": (["--set", "identity.type=password"], "identity.type: unknown value 'password'", {}),
    "shm-above-vm-memory": (["--vm-size", "Standard_DS3_v2", "--set", "resources.shm_size=64g"],
                            "shm_size 64g is more than the 14 GiB of memory of Standard_DS3_v2", {}),
    "build-context-missing": (["--set", "env.build.path=docker/nothing"], "env.build.path: folder 'docker/nothing' "
                              "does not exist", {}),
    "build-context-no-dockerfile": (["--set", "env.build.path=src/trainer"], "'Dockerfile' is not in the build "
                                    "context", {}),
    # a private key is refused without its text ever reaching a rendered file or the message (made here,
    # not a real key: the header is what gives one away)
    "ssh-private-key": (["--set", "services.ssh_public_key_file={tmp}/id_ed25519"],
                        "is a private key; it must never leave your machine",
                        {"id_ed25519": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\n"
                                       "-----END OPENSSH PRIVATE KEY-----\n"}),
    "ssh-key-missing": (["--set", "services.ssh_public_key_file={tmp}/nope.pub"], "cannot read", {}),
    "ssh-key-not-a-key": (["--set", "services.ssh_public_key_file={tmp}/key.pub"], "is not one OpenSSH public key line",
                          {"key.pub": "hello\n"}),
    "services-bad-nodes": (["--set", "services.nodes=some"], "services.nodes: unknown value 'some'", {}),
    "schedule-without-trigger": (["--set", "schedule.enabled=true"], "a schedule needs a cron expression or a "
                                 "recurrence", {}),
    "schedule-bad-cron": (["--set", "schedule.enabled=true", "--set", "schedule.cron=0 25 * * *"],
                          "cron expression '0 25 * * *' hour 25 is outside 0-23", {}),
    "schedule-bad-week-day": (["--set", "schedule.enabled=true", "--set", "schedule.recurrence.frequency=week",
                               "--set", "schedule.recurrence.schedule.week_days=funday"], "unknown week day 'funday'", {}),
    "schedule-hours-without-minutes": (["--set", "schedule.enabled=true", "--set", "schedule.recurrence.frequency=day",
                                        "--set", "schedule.recurrence.schedule.hours=3"],
                                       "a recurrence's schedule needs both hours and minutes", {}),
    "schedule-bad-frequency": (["--set", "schedule.enabled=true", "--set", "schedule.recurrence.frequency=fortnight"],
                               "frequency: unknown value 'fortnight'", {}),
    "serverless-cluster-tier": (["--serverless", "--tier", "low_priority"], "--tier low_priority is a cluster's tier",
                                {}),
    "serverless-and-compute": (["--serverless", "--compute", "gpu"], "--serverless and --compute NAME say two places",
                               {}),
    "batch-and-online-endpoint": (["--set", "batch.enabled=true", "--set", "endpoint.enabled=true"],
                                  "renders an online endpoint or a batch endpoint, not both", {}),
    "batch-mini-batch-zero": (["--set", "batch.enabled=true", "--set", "batch.mini_batch_size=0"],
                              "batch.mini_batch_size: must be at least 1", {}),
    "batch-threshold-below-minus-one": (["--set", "batch.enabled=true", "--set", "batch.error_threshold=-2"],
                                        "batch.error_threshold: must be at least -1", {}),
    "batch-nodes-above-cluster": (["--set", "batch.enabled=true", "--set", "batch.instance_count=9"],
                                  "9 nodes on a cluster of at most 4 (cluster.max_instances)", {}),
    "batch-scoring-script-missing": (["--set", "batch.enabled=true", "--set", "batch.scoring_script=nope.py"],
                                     "'nope.py' is not in the code folder", {}),
    "batch-bad-logging-level": (["--set", "batch.enabled=true", "--set", "batch.logging_level=loud"],
                                "batch.logging_level: unknown value 'loud'", {}),
    "code-escapes-repo": (["--set", "code=../.."], "points outside the project", {}),
    "code-missing": (["--set", "code=src/nothing"], "folder 'src/nothing' does not exist", {}),
    "script-missing": (["--set", "launcher.script=missing.py"], "'missing.py' is not in the code folder", {}),
    "shell-metacharacters": (["--set", "inputs.arch=resnet18;rm -rf /"], "characters the shell would interpret", {}),
    "shell-substitution": (["--set", "inputs.arch=$(reboot)"], "characters the shell would interpret", {}),
    "reserved-input-name": (["--set", "inputs.path=x"], "'path' is a reserved input name", {}),
    "secret-in-environment": (["--set", "environment_variables.HF_TOKEN=hf_abc"], "looks like a secret", {}),
    "environment-not-a-reference": (["--environment", "docker.io/pytorch/pytorch"], "is not an environment reference", {}),
    "bad-experiment-name": (["--experiment", "my experiment"], "'my experiment' is not a valid name", {}),
    "min-above-max": (["--set", "cluster.min_instances=9"], "min_instances 9 is above max_instances 4", {}),
    "bad-timeout": (["--set", "limits.timeout=0"], "--set limits.timeout: must be at least 1", {}),
    "output-under-a-file": (["-o", "{tmp}/afile/out"], "cannot write to output folder", {"afile": "x"}),
    "output-is-a-file": (["-o", "{tmp}/afile"], "output path exists and is not a folder", {"afile": "x"}),
    "values-billion-laughs": (["-f", "{tmp}/lol.yaml"], "YAML expands to more than 200000 values",
                              {"lol.yaml": "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
                                  f"l{i}: &l{i} [" + ", ".join([f"*{'a' if i == 1 else f'l{i - 1}'}"] * 9) + "]\n"
                                  for i in range(1, 9))}),
    "values-from-dev-zero": (["-f", "/dev/zero"], "/dev/zero: is not a regular file", {}),
    "values-nested-too-deep": (["-f", "{tmp}/deep.yaml"], "nested more than 64 levels deep",
                               {"deep.yaml": "job:\n  tags:\n    x: " + "[" * 900 + "]" * 900 + "\n"}),
    "values-file-too-large": (["-f", "{tmp}/big.yaml"], "big.yaml: file is over 4 MiB",
                              {"big.yaml": "job:\n  tags:\n    x: " + "a" * (5 * 1024 * 1024) + "\n"}),
    "registry-model-latest": (["--set", "endpoint.enabled=true", "--registry", "contoso-ml"],
                              "asks registry contoso-ml for the latest version, but a deployment from a registry "
                              "pins the version it serves", {}),
    "registry-model-label": (["--set", "endpoint.enabled=true", "--set",
                              "endpoint.model=azureml://registries/contoso-ml/models/penguins-mlp/labels/latest"],
                             "does not name a model version in a registry", {}),
    "registry-bad-name": (["--set", "endpoint.enabled=true", "--registry", "my registry!"],
                          "--registry: 'my registry!' is not a valid name", {}),
    "registry-environment-without-registry": (["--set", "endpoint.enabled=true", "--set",
                                               "registry.environment=penguins-serve:2"],
                                              "an environment in a registry needs the registry's name", {}),
    "registry-environment-no-version": (["--set", "endpoint.enabled=true", "--registry", "contoso-ml", "--set",
                                         "endpoint.model=azureml:m:1", "--set", "registry.environment=serve"],
                                        "registry.environment: 'serve' is not a valid name", {}),
    "registry-on-a-job": (["--registry", "contoso-ml"], "only an endpoint definition takes its model and environment "
                          "from a registry", {}),
    "unknown-flag": (["--nodez", "2"], "unrecognized arguments: --nodez", {}),
    "check-with-flags": (["--check", "--nodes", "2"], "--check/--all render the definitions under jobs/", {}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(cli, checkout, tmp_path, monkeypatch, name):
    args, expected, files = CASES[name]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for fname, text in files.items():
        (inputs / fname).write_text(text)
    out = tmp_path / "out"
    args = [a.replace("{tmp}", str(inputs)) for a in args]
    if "-o" not in args and "--check" not in args:
        args += ["-o", str(out)]
    monkeypatch.chdir(tmp_path)
    before = _snapshot(tmp_path)
    rc, stdout, stderr = cli(*args)
    assert rc not in (0, None), f"exit {rc}"
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    assert expected in lines[0], lines[0]
    assert "hint:" in lines[0] or "unrecognized" in lines[0]
    assert "Traceback" not in stderr + stdout
    assert _snapshot(tmp_path) == before, "something was written"


def _snapshot(folder: Path):
    return sorted((str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob("*")
                  if "project" not in p.relative_to(folder).parts)


def test_template_variable_left_undefined(cli, checkout, tmp_path, monkeypatch):
    template = checkout / "templates" / "compute.yml.j2"
    template.write_text(template.read_text().replace("(( cluster.tier ))", "(( cluster.tire ))"))
    monkeypatch.chdir(tmp_path)
    rc, out, err = cli("render", "-o", tmp_path / "out")
    assert rc == 1 and len(err.splitlines()) == 1
    assert "undefined value" in err and "'tire'" in err and "compute.yml.j2:" in err
    assert not (tmp_path / "out").exists()


def test_lint_failure_writes_nothing(cli, checkout, tmp_path):
    """The rendered files are linted before they are written: a failing lint leaves the
    output folder as it was (here: a compute size that is not a GPU size and a job that
    asks for GPUs is fine, but a retired size named only in the compute file is not)."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    values = tmp_path / "v.yaml"
    # job.command written by hand with a typo'd input reference: the spec accepts any command,
    # lint catches it.
    values.write_text("job:\n  command: python train.py --lr ${{inputs.learnig_rate}}\n")
    rc, stdout, stderr = cli("render", "-f", values, "-o", out)
    assert rc == 1
    assert "job.yml:" in stderr and "no input 'learnig_rate'" in stderr and "did you mean 'learning_rate'" in stderr
    assert "nothing was written" in stderr
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_real_process_prints_no_traceback(root, tmp_path):
    """The same through a real process: exit 1, one line, nothing on stdout."""
    result = subprocess.run([sys.executable, str(root / "generator.py"), "--nodes", "0", "--no-lint",
                             "-o", str(tmp_path / "out")], capture_output=True, text=True, cwd=tmp_path,
                            env=dict(os.environ))
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "--nodes" in result.stderr
    assert result.stdout == "" and not (tmp_path / "out").exists()
