"""Rendering: golden files for every template and distribution, azure-ai-ml loads every
rendered file, output is deterministic and machine-independent."""

import io
import shutil
from pathlib import Path

import pytest
import yaml

GOLDEN = Path(__file__).parent / "golden"

# case name -> CLI arguments (after `render`); each renders into its own folder
CASES = {
    "default-2x4": ["--nodes", "2", "--gpus", "4"],
    "pytorch-per-process-a100": ["--nodes", "2", "--vm-size", "Standard_NC96ads_A100_v4", "--compute", "a100"],
    "pytorch-torchrun": ["--nodes", "2", "--launcher", "torchrun", "--vm-size", "Standard_ND96amsr_A100_v4",
                         "--compute", "nd-a100"],
    "torchrun-single-node": ["--distribution", "none", "--launcher", "torchrun", "--gpus", "4"],
    "mpi": ["--distribution", "mpi", "--nodes", "2", "--gpus", "4", "--set", "cluster.tier=low_priority"],
    "none": ["--distribution", "none", "--vm-size", "Standard_NC4as_T4_v3", "--set", "limits.timeout=3600"],
    "curated-environment": ["--environment", "azureml:AzureML-acpt-pytorch-2.2-cuda12.1@latest",
                            "--set", "data.create=false", "--set", "cluster.create=false",
                            "--set", "compute=azureml:existing-cluster", "--experiment", "curated"],
    "registry-environment": ["--environment",
                             "azureml://registries/azureml/environments/acpt-pytorch-2.2-cuda12.1/labels/latest",
                             "--set", "tags.owner=ml-team", "--set", "resources.shm_size=16g"],
    "penguins-uri-file": ["-f", "jobs/penguins-mpi/values.yaml", "--set", "data.path=data/penguins.csv",
                          "--set", "inputs.data.path=data/penguins.csv", "--no-lint"],
    "pipeline-penguins": ["-f", "jobs/penguins-pipeline/values.yaml", "--set", "pipeline.min_accuracy=0.95"],
    "pipeline-images": ["--set", "pipeline.enabled=true", "--set", "inputs.pretrained=true", "--nodes", "2"],
    "serverless-spot": ["--serverless", "--vm-size", "Standard_NC24ads_A100_v4", "--nodes", "2", "--tier", "spot",
                        "--set", "identity.type=user_identity", "--set", "resources.docker_args=--ulimit memlock=-1"],
    "docker-build-context": ["--set", "env.build.path=jobs/chickens-turkeys-docker/docker", "--set",
                             "env.name=pytorch-docker"],
    "interactive-services": ["--nodes", "2", "--set", "services.jupyter_lab=true", "--set", "services.vs_code=true",
                             "--set", "services.tensor_board=outputs/tb", "--set",
                             f"services.ssh_public_key_file={Path(__file__).parent}/fixtures/keys/jobgen_test.pub"],
    "schedule-cron": ["-f", "jobs/penguins-pipeline/values.yaml", "--set", "schedule.enabled=true", "--set",
                      "schedule.cron=30 2 * * *", "--set", "schedule.start_time=2027-01-04T02:30:00"],
    "schedule-recurrence": ["--set", "schedule.enabled=true", "--set", "schedule.recurrence.frequency=week",
                            "--set", "schedule.recurrence.schedule.hours=3", "--set",
                            "schedule.recurrence.schedule.minutes=15", "--set",
                            "schedule.recurrence.schedule.week_days=monday", "--set", "schedule.time_zone=UTC"],
    "serverless-pipeline": ["--serverless", "--vm-size", "Standard_NC4as_T4_v3", "--set", "pipeline.enabled=true",
                            "--tier", "standard"],
    "serverless-sweep": ["--serverless", "--vm-size", "Standard_NC4as_T4_v3", "--set", "sweep.enabled=true",
                         "--tier", "spot"],
    "batch-images": ["--set", "batch.enabled=true", "--set", "batch.instance_count=2", "--set",
                     "cluster.name=cpu-cluster", "--set", "cluster.size=Standard_DS3_v2", "--set",
                     "batch.onnx_variant=fp32"],
    "endpoint-registry": ["-f", "jobs/penguins-endpoint-registry/values.yaml", "--set",
                          "registry.environment=penguins-serve:2"],
    "literal-strings": ["--set", "inputs.learning_rate=1e-3", "--set", "inputs.pretrained=true",
                   "--gpus", "2"],
}


def render_case(cli, root, name, out):
    """Render a case; ``root`` is the project root in use (a temp checkout in most tests)."""
    args = [a if not a.startswith("jobs/") else str(root / a) for a in CASES[name]]
    rc, stdout, stderr = cli("render", *args, "-o", out)
    assert rc == 0, stderr
    return {p.name: p.read_text() for p in sorted(out.iterdir())}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(cli, checkout, name, update_golden):
    files = render_case(cli, checkout, name, checkout / "rendered")
    golden = GOLDEN / name
    if update_golden:
        shutil.rmtree(golden, ignore_errors=True)
        golden.mkdir(parents=True)
        for fname, text in files.items():
            (golden / fname).write_text(text)
        pytest.skip("golden files updated")
    assert sorted(files) == sorted(p.name for p in golden.iterdir()), "rendered a different set of files"
    for fname, text in files.items():
        assert text == (golden / fname).read_text(), f"{name}/{fname} differs (pytest --update-golden to accept)"


@pytest.mark.parametrize("name", sorted(CASES))
def test_rendered_files_load_with_azure_ai_ml(cli, checkout, name):
    from azure.ai.ml import load_compute, load_data, load_environment, load_job

    out = checkout / "rendered"
    files = render_case(cli, checkout, name, out)
    loaders = {"job.yml": load_job, "compute.yml": load_compute, "environment.yml": load_environment,
               "data.yml": load_data}
    from jobgen.azml.kinds import load_function

    loaders["pipeline.yml"] = loaders["sweep.yml"] = load_job
    loaders["schedule.yml"] = load_function("schedule")  # not exported by azure-ai-ml
    batch = "deployment.yml" in files and "BatchDeployment" in files["deployment.yml"].splitlines()[0]
    loaders["endpoint.yml"] = load_function("batch_endpoint" if batch else "online_endpoint")
    loaders["deployment.yml"] = load_function("model_batch_deployment" if batch else "online_deployment")
    for fname in files:
        if fname in loaders:
            entity = loaders[fname](source=out / fname)
            if hasattr(entity, "_validate"):
                result = entity._validate()
                assert result is None or result.passed, (fname, result.error_messages)
    if "deployment.yml" in files:  # an endpoint definition: its references reach azure-ai-ml as rendered
        deployment = loaders["deployment.yml"](source=out / "deployment.yml")
        endpoint = loaders["endpoint.yml"](source=out / "endpoint.yml")
        rendered = yaml.safe_load(files["deployment.yml"])
        # (a model batch deployment keeps azureml:<name>@latest without its prefix until it is sent)
        assert str(deployment.model) in (rendered["model"], rendered["model"].removeprefix("azureml:"))
        assert deployment.endpoint_name == endpoint.name
        if isinstance(rendered["environment"], str):
            assert str(deployment.environment) == rendered["environment"]
        if batch:  # a batch endpoint: Entra tokens only; the executor's settings as rendered
            assert endpoint.auth_mode == "aad_token"
            assert deployment.settings.mini_batch_size == rendered["settings"]["mini_batch_size"]
        return
    if "pipeline.yml" in files or "sweep.yml" in files:
        return
    job = load_job(source=out / "job.yml")._to_job()
    rest = job._to_rest_object().properties
    assert rest.command == yaml.safe_load(files["job.yml"])["command"]
    rendered = yaml.safe_load(files["job.yml"])
    assert (rest.resources.instance_count or 1) == rendered["resources"]["instance_count"]
    if "distribution" in rendered:
        assert rest.distribution.process_count_per_instance == rendered["distribution"]["process_count_per_instance"]


def test_schema_line_first_in_every_azure_file(cli, root, tmp_path):
    for name in CASES:
        out = tmp_path / name
        for fname, text in render_case(cli, root, name, out).items():
            if fname not in ("conda.yaml", "conda-serve.yaml"):
                assert text.startswith("$schema: https://azuremlschemas.azureedge.net/latest/"), (name, fname)


def test_azure_placeholders_pass_through_untouched(cli, root, tmp_path):
    files = render_case(cli, root, "default-2x4", tmp_path / "r")
    command = yaml.safe_load(files["job.yml"])["command"]
    assert "--data ${{inputs.data}}" in command
    assert "--model-dir ${{outputs.model_dir}}" in command


def test_torchrun_command_uses_azure_variables_not_baked_counts(cli, root, tmp_path):
    files = render_case(cli, root, "pytorch-torchrun", tmp_path / "r")
    job = yaml.safe_load(files["job.yml"])
    assert job["distribution"] == {"type": "pytorch", "process_count_per_instance": 1}
    assert job["command"].startswith("torchrun --nnodes $WORLD_SIZE --node_rank $NODE_RANK --nproc_per_node 8 "
                                     "--master_addr $MASTER_ADDR --master_port $MASTER_PORT train.py ")


def test_same_values_same_bytes_in_another_checkout_and_cwd(cli, root, tmp_path, monkeypatch):
    """Two checkouts in different places (as two machines would have) render the same bytes."""
    results = []
    for where in ("one", "elsewhere/two"):
        checkout = tmp_path / where
        for part in ("templates", "src/trainer", "jobs/penguins-mpi"):
            shutil.copytree(root / part, checkout / part)
        monkeypatch.setenv("JOBGEN_ROOT", str(checkout))
        monkeypatch.chdir(checkout / "jobs")
        rc, _, err = cli("render", "-f", checkout / "jobs/penguins-mpi/values.yaml", "--nodes", "2",
                         "-o", checkout / "rendered")
        assert rc == 0, err
        results.append({p.name: p.read_bytes() for p in sorted((checkout / "rendered").iterdir())})
    assert results[0] == results[1]
    for data in results[0].values():
        assert str(tmp_path).encode() not in data and str(root).encode() not in data


def test_gpus_default_to_the_vm_sizes_gpu_count(cli, root, tmp_path):
    files = render_case(cli, root, "pytorch-per-process-a100", tmp_path / "r")
    assert yaml.safe_load(files["job.yml"])["distribution"]["process_count_per_instance"] == 4


def test_fewer_processes_than_gpus_is_a_warning(cli, tmp_path):
    rc, out, err = cli("render", "--gpus", "2", "-o", tmp_path / "r")
    assert rc == 0
    assert "warning:" in err and "2 of the 4 GPUs of Standard_NC64as_T4_v3 idle" in err


def test_values_files_later_wins_and_set_wins_over_files(cli, tmp_path):
    one = tmp_path / "one.yaml"
    one.write_text("job:\n  inputs:\n    epochs: 7\n    seed: 1\n")
    two = tmp_path / "two.yaml"
    two.write_text("job:\n  inputs:\n    epochs: 9\n")
    rc, _, err = cli("render", "-f", one, "-f", two, "--set", "inputs.seed=5", "-o", tmp_path / "r", "--no-lint")
    assert rc == 0, err
    inputs = yaml.safe_load((tmp_path / "r" / "job.yml").read_text())["inputs"]
    assert inputs["epochs"] == 9 and inputs["seed"] == 5


def test_set_keeps_az_meaning_for_strings(cli, tmp_path):
    """az ml job create --set passes strings; `true` must reach the command as `true`."""
    rc, _, err = cli("render", "--set", "inputs.pretrained=true", "--set", "inputs.epochs=3",
                     "--set", "inputs.learning_rate=1e-3", "-o", tmp_path / "r", "--no-lint")
    assert rc == 0, err
    text = (tmp_path / "r" / "job.yml").read_text()
    assert "pretrained: 'true'" in text and "epochs: 3\n" in text and "learning_rate: '1e-3'" in text


def test_null_removes_an_input_and_its_flag(cli, tmp_path):
    values = tmp_path / "v.yaml"
    values.write_text("job:\n  inputs:\n    momentum: null\n")
    rc, _, err = cli("render", "-f", values, "-o", tmp_path / "r", "--no-lint")
    assert rc == 0, err
    job = yaml.safe_load((tmp_path / "r" / "job.yml").read_text())
    assert "momentum" not in job["inputs"] and "--momentum" not in job["command"]


def test_values_in_command_are_shell_quoted(cli, tmp_path):
    rc, _, err = cli("render", "--set", "launcher.script=my train.py", "-o", tmp_path / "r", "--no-lint")
    assert rc == 1 and "my train.py" in err  # the script must exist...
    values = tmp_path / "v.yaml"
    values.write_text("launcher:\n  args: ['--note', 'two words; $(reboot)']\n")
    rc, _, err = cli("render", "-f", values, "-o", tmp_path / "r", "--no-lint")
    assert rc == 0, err
    command = yaml.safe_load((tmp_path / "r" / "job.yml").read_text())["command"]
    assert command.endswith("--note 'two words; $(reboot)'")
    import shlex

    assert shlex.split(command)[-1] == "two words; $(reboot)"


def test_rerender_removes_files_the_values_no_longer_produce(cli, tmp_path):
    out = tmp_path / "r"
    assert cli("render", "-o", out, "--no-lint")[0] == 0
    assert (out / "data.yml").exists()
    (out / "notes.yml").write_text("mine: true\n")  # not ours: kept
    assert cli("render", "-o", out, "--no-lint", "--set", "data.create=false")[0] == 0
    assert not (out / "data.yml").exists() and (out / "notes.yml").exists()


def test_default_command_prints_path_and_next_step(cli, tmp_path):
    rc, out, err = cli("render", "--nodes", "2", "--gpus", "4", "-o", tmp_path / "rendered")
    assert rc == 0, err
    assert "2 node(s) x 4 process(es)" in out and "job.yml" in out and "lint: ok" in out
    assert "az ml job create -f" in out


def test_a_build_context_inside_the_output_folder_is_found_while_staged(cli, checkout):
    """The rendered files are linted in a staging folder beside the output folder before any is
    written; a Docker build context that lives in the output folder itself (as in
    jobs/chickens-turkeys-docker/) must be found from there, by azure-ai-ml's loader too."""
    out = checkout / "jobs" / "mine"
    (out / "docker").mkdir(parents=True)
    (out / "docker" / "Dockerfile").write_text("FROM python:3.11-slim\n")
    rc, stdout, stderr = cli("render", "--set", "env.build.path=jobs/mine/docker", "-o", out)
    assert rc == 0, stderr
    env = yaml.safe_load((out / "environment.yml").read_text())
    assert env["build"] == {"path": "docker", "dockerfile_path": "Dockerfile"} and "image" not in env
    assert not (out / "conda.yaml").exists()  # the Dockerfile installs the packages
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".")) == []  # no staging left
    assert (out / "docker" / "Dockerfile").read_text() == "FROM python:3.11-slim\n"


def test_values_of_serverless_jobs_that_azure_takes_as_written(cli, checkout):
    """Shared memory sized by docker_args is left alone (no default beside it); a user-assigned
    identity keeps whichever id names it; an unquoted start time (a YAML timestamp) is a time."""
    out = checkout / "rendered"
    values = checkout / "v.yaml"
    values.write_text("job:\n  compute: serverless\n  resources: {instance_type: Standard_NC4as_T4_v3, "
                      "docker_args: --ipc=host}\n  identity: {type: managed, object_id: 6f1c2a8e-0000-4000-8000-000000000001}\n"
                      "schedule:\n  enabled: true\n  cron: 0 3 * * 1\n  start_time: 2027-01-04T03:00:00\n")
    rc, stdout, stderr = cli("render", "-f", values, "-o", out)
    assert rc == 0, stderr
    job = yaml.safe_load((out / "job.yml").read_text())
    assert job["resources"] == {"instance_count": 1, "instance_type": "Standard_NC4as_T4_v3", "docker_args": "--ipc=host"}
    assert job["identity"] == {"type": "managed", "object_id": "6f1c2a8e-0000-4000-8000-000000000001"}
    schedule = yaml.safe_load((out / "schedule.yml").read_text())
    assert schedule["trigger"]["start_time"] == "2027-01-04T03:00:00"
