"""The linter catches every case RUNTIME_CONTRACT.md lists as accepted by azure-ai-ml but
rejected later by Azure (or wasted GPU time), on hand-written YAML, with the right line."""

from pathlib import Path

import pytest

from jobgen.lint import lint_paths

FIX = Path(__file__).parent / "fixtures" / "lint"

# (file, line, text that must appear in the error)
CASES = [
    ("bad/job_missing_input.yml", 4, "no input 'learning_rate'"),
    ("bad/pipeline_parent_input.yml", 15, "pipeline declares no input 'epochs'"),
    ("bad/pipeline_undeclared_node_input.yml", 15, "passes input 'learning_rate' that its component does not declare"),
    ("bad/component_typos.yml", 10, "unknown key 'process_count_per_instanse'"),
    ("bad/component_typos.yml", 12, "unknown key 'instance_cout'"),
    ("bad/component_typos.yml", 13, "'environment_variables' on a component is dropped"),
    ("bad/component_typos.yml", 15, "'limits' on a component is dropped"),
    ("bad/component_typos.yml", 17, "unknown component key 'retries'"),
    ("bad/component_optional.yml", 13, "required input 'epochs' is inside $[[...]]"),
    ("bad/component_optional.yml", 13, "optional input 'tag' is used outside $[[...]]"),
    ("bad/reserved_names.yml", 8, "input name 'path' is reserved"),
    ("bad/reserved_names.yml", 9, "input name 'home' is reserved"),
    ("bad/component_backslash.yml", 7, "continues lines with '\\'"),
    ("bad/zero_processes.yml", 9, "process_count_per_instance is 0"),
    ("bad/overgpu/job.yml", 11, "4 processes per node but Standard_NC4as_T4_v3 has 1 GPU"),
    ("bad/retired_compute.yml", 4, "Standard_NC6 (NC) was retired"),
    ("bad/job_typed_inputs.yml", 8, "typed component input"),
    ("bad/job_typed_inputs.yml", 11, "typed component input"),
    ("bad/job_shell_value.yml", 8, "characters the shell interprets"),
    ("bad/pipeline_shell_value.yml", 7, "pipeline input 'greeting' (given to step 'say' as 'text') holds $ ( ) |"),
    ("bad/pipeline_shell_value.yml", 23, "step 'train' input 'epochs' holds &: characters the shell interprets"),
    ("bad/sweep_shell_choice.yml", 9, "input 'arch' (from the search space): choice 2 holds ;"),
    ("bad/sweep_shell_choice.yml", 17, "input 'tag' holds `: characters the shell interprets where Azure pastes it "
                                       "into the command (double quotes)"),
    ("bad/job_missing_script.yml", 4, "command runs 'trian.py' but it is not in the code folder"),
    ("bad/azure_only.yml", 7, "azure-ai-ml: experiment_nam: Unknown field"),
]


@pytest.fixture(scope="module")
def bad_diagnostics():
    return lint_paths([FIX / "bad"])


@pytest.mark.parametrize("name,line,text", CASES, ids=[f"{c[0]}:{c[1]}:{c[2][:30]}" for c in CASES])
def test_contract_case_is_an_error_on_its_line(bad_diagnostics, name, line, text):
    shown = [d for d in bad_diagnostics if d.path.endswith(name)]
    hits = [d for d in shown if d.severity == "error" and text in d.format() and d.line == line]
    assert hits, f"expected error '{text}' at {name}:{line}; got:\n" + "\n".join(d.format() for d in shown)


def test_every_error_has_a_hint_or_comes_from_azure(bad_diagnostics):
    for d in bad_diagnostics:
        assert d.hint or d.source == "azure-ai-ml", d.format()


def test_message_format_is_path_line_severity(bad_diagnostics):
    import re

    for d in bad_diagnostics:
        assert re.match(r"^[^:]+:\d+: (error|warning): ", d.format()), d.format()


def test_good_fixtures_have_no_findings():
    diagnostics = lint_paths([FIX / "good"])
    assert diagnostics == [], "\n".join(d.format() for d in diagnostics)


def test_retired_size_referenced_by_job_is_reported_on_the_job(tmp_path):
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").write_text("")
    (tmp_path / "compute.yml").write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/amlCompute.schema.json\n"
        "name: old\ntype: amlcompute\nsize: Standard_NC24s_v3\nmax_instances: 1\n")
    job = tmp_path / "job.yml"
    job.write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
        "type: command\ncode: code\ncommand: python train.py\n"
        "environment: azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest\ncompute: azureml:old\n"
        "distribution:\n  type: pytorch\n  process_count_per_instance: 4\n")
    diagnostics = lint_paths([job])  # only the job is linted; the compute is found beside it
    assert any("retired" in d.message and "Standard_NC96ads_A100_v4" in (d.hint or "") for d in diagnostics), \
        [d.format() for d in diagnostics]


def test_duplicate_keys_and_yaml_syntax(tmp_path):
    dup = tmp_path / "dup.yml"
    dup.write_text("$schema: https://azuremlschemas.azureedge.net/latest/amlCompute.schema.json\n"
                   "name: a\ntype: amlcompute\nsize: Standard_NC4as_T4_v3\nsize: Standard_NC8as_T4_v3\n")
    broken = tmp_path / "broken.yml"
    broken.write_text("type: command\ncommand: [unclosed\n")
    found = {d.path.rsplit("/", 1)[-1]: d for d in lint_paths([tmp_path])}
    assert found["dup.yml"].line == 5 and "appears twice" in found["dup.yml"].message
    assert found["broken.yml"].severity == "error" and "not valid YAML" in found["broken.yml"].message


def test_torchrun_workers_count_against_gpus(tmp_path):
    (tmp_path / "train.py").write_text("")
    (tmp_path / "compute.yml").write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/amlCompute.schema.json\n"
        "name: t4x4\ntype: amlcompute\nsize: Standard_NC64as_T4_v3\nmax_instances: 2\n")
    (tmp_path / "job.yml").write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
        "type: command\ncode: .\n"
        "command: torchrun --nnodes $WORLD_SIZE --nproc_per_node 8 train.py\n"
        "environment: azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest\ncompute: azureml:t4x4\n"
        "distribution:\n  type: pytorch\n  process_count_per_instance: 1\n")
    diagnostics = lint_paths([tmp_path / "job.yml"])
    assert any("8 processes per node but Standard_NC64as_T4_v3 has 4 GPUs" in d.message for d in diagnostics)


def test_sweep_checks(tmp_path):
    (tmp_path / "train.py").write_text("")
    (tmp_path / "sweep.yml").write_text("""\
$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
type: sweep
compute: azureml:gpu
sampling_algorithm: grid
search_space:
  lr:
    type: uniform
    min_value: 0.001
    max_value: 0.01
  momentum:
    type: choice
    values: [0.9, 0.95]
objective:
  primary_metric: val_acc
  goal: maximize
inputs:
  lr: ${{search_space.learning_rate}}
trial:
  code: .
  command: python train.py --lr ${{inputs.lr}} --momentum ${{search_space.momentum}}
  environment: azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest
limits:
  max_total_trials: 4
  max_concurrent_trials: 2
""")
    messages = [d.format() for d in lint_paths([tmp_path / "sweep.yml"], azure=False)]
    assert any(":17: error:" in m and "no 'learning_rate'" in m for m in messages), messages
    assert not any("shell interprets" in m for m in messages), messages  # ${{search_space.x}} is not a literal
    assert any(":6: error:" in m and "grid sampling needs choice" in m for m in messages), messages
    assert any("'lr' is never used" in m for m in messages), messages


def test_pipeline_step_output_reference_and_cycle(tmp_path):
    comp = (Path(__file__).parent / "fixtures" / "lint" / "good" / "component.yml").resolve()
    (tmp_path / "p.yml").write_text(f"""\
$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
type: pipeline
settings:
  default_compute: azureml:cpu
jobs:
  a:
    component: {comp}
    inputs:
      data: ${{{{parent.jobs.b.outputs.model_dir}}}}
  b:
    component: {comp}
    inputs:
      data: ${{{{parent.jobs.a.outputs.modeldir}}}}
""")
    messages = [d.format() for d in lint_paths([tmp_path / "p.yml"], azure=False)]
    assert any("step 'a' has no output 'modeldir'" in m and "model_dir" in m for m in messages), messages
    assert any("cycle" in m for m in messages), messages


def test_lint_cli_exit_codes(cli):
    rc, out, err = cli("lint", FIX / "good")
    assert rc == 0 and "0 error(s)" in err
    rc, out, err = cli("lint", FIX / "bad" / "zero_processes.yml")
    assert rc == 1 and "zero_processes.yml:9: error:" in out
    rc, out, err = cli("lint", FIX / "nope.yml")
    assert rc == 1 and err.count("\n") == 1 and "no such file" in err
