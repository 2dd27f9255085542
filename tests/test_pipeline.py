"""Components and the train -> export_onnx -> register pipeline."""

import re

import pytest
import yaml

from jobgen.spec import TRAIN_COMPONENT_INPUTS


def test_components_load_with_azure_ai_ml(root):
    from azure.ai.ml import load_component

    for name in ("train", "export_onnx", "register"):
        component = load_component(source=root / "components" / f"{name}.yml")
        assert component._validate().passed, name
        assert component.name == f"jobgen_{name}"


def test_spec_knows_the_train_components_inputs(root):
    inputs = yaml.safe_load((root / "components" / "train.yml").read_text())["inputs"]
    literal = {k: v["type"] for k, v in inputs.items() if v["type"] in ("string", "integer", "number", "boolean")}
    assert literal == TRAIN_COMPONENT_INPUTS


@pytest.mark.full
def test_component_commands_match_the_trainers_arguments(root, capsys):
    """Every flag a component passes is one its script accepts."""
    from trainkit import engine, onnx_export, registry

    for name, module in (("train", engine), ("export_onnx", onnx_export), ("register", registry)):
        command = yaml.safe_load((root / "components" / f"{name}.yml").read_text())["command"]
        flags = set(re.findall(r"(--[a-z][a-z-]+)", command))
        with pytest.raises(SystemExit):
            (module.parse_args if module is engine else module.main)(["--help"])
        help_text = capsys.readouterr().out
        missing = [f for f in flags if f not in help_text]
        assert not missing, f"{name}: {missing} not accepted"


def test_pipeline_node_carries_resources_distribution_and_the_data_input(cli, checkout):
    rc, out, err = cli("render", "-f", checkout / "jobs/penguins-pipeline/values.yaml", "-o", checkout / "rendered")
    assert rc == 0, err
    pipeline = yaml.safe_load((checkout / "rendered" / "pipeline.yml").read_text())
    train = pipeline["jobs"]["train"]
    assert train["resources"] == {"instance_count": 2}
    assert train["distribution"] == {"type": "pytorch", "process_count_per_instance": 2}
    assert train["inputs"]["data_file"] == "${{parent.inputs.data}}"
    assert pipeline["jobs"]["register"]["inputs"]["onnx_dir"] == "${{parent.jobs.export_onnx.outputs.onnx_dir}}"
    assert "pipeline train -> export_onnx -> register" in out and "pipeline.yml" in out


@pytest.mark.parametrize("args,expected", [
    (["--set", "pipeline.enabled=true", "--launcher", "torchrun"], "has no torchrun launch"),
    (["--set", "pipeline.enabled=true", "--set", "inputs.dropout=0.1"], "the train component has no input 'dropout'"),
    (["--set", "pipeline.enabled=true", "--set", "inputs.epochs=many"], "must be a whole number"),
    (["--set", "pipeline.enabled=true", "--set", "pipeline.min_accuracy=2"], "from 0 to 1"),
])
def test_pipeline_bad_values(cli, checkout, tmp_path, args, expected):
    rc, out, err = cli("render", *args, "-o", tmp_path / "out")
    assert rc == 1 and expected in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_pipeline_lint_catches_a_component_change(cli, checkout):
    """Drop an input from the train component: the committed pipeline now passes one it does
    not declare, which Azure would drop silently."""
    component = checkout / "components" / "train.yml"
    text = component.read_text()
    component.write_text(text.replace("  seed:\n    type: integer\n    default: 0\n", ""))
    rc, out, err = cli("lint", checkout / "jobs" / "penguins-pipeline" / "pipeline.yml")
    assert rc == 1 and "passes input 'seed' that its component does not declare" in out


@pytest.mark.full
def test_every_committed_job_command_is_accepted_by_the_trainer(root):
    """The generator and the trainer meet at the command line: every flag a rendered job
    passes must exist in train.py (and the values, after Azure pastes them, must parse)."""
    import shlex

    from trainkit.engine import parse_args

    for job_file in sorted((root / "jobs").glob("*/job.yml")):
        job = yaml.safe_load(job_file.read_text())
        inputs = job.get("inputs", {})

        def value(match):
            kind, name = match.group(1), match.group(2)
            if kind == "outputs":
                return f"/tmp/outputs/{name}"
            given = inputs[name]
            return "/tmp/data" if isinstance(given, dict) else str(given)  # str(): as Azure binds it

        command = re.sub(r"\$\{\{(inputs|outputs)\.(\w+)\}\}", value, job["command"])
        argv = shlex.split(command)
        script = next(i for i, a in enumerate(argv) if a.endswith("train.py"))
        args = parse_args(argv[script + 1:])
        assert args.epochs == int(inputs["epochs"]), job_file
