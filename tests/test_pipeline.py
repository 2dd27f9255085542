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


def test_component_commands_match_the_trainers_arguments(root):
    """Every flag a component passes is one its script accepts."""
    import subprocess
    import sys

    for name, script in (("train", "train.py"), ("export_onnx", "export_onnx.py"), ("register", "register.py")):
        command = yaml.safe_load((root / "components" / f"{name}.yml").read_text())["command"]
        flags = set(re.findall(r"(--[a-z][a-z-]+)", command))
        help_text = subprocess.run([sys.executable, str(root / "src" / "trainer" / script), "--help"],
                                   capture_output=True, text=True, cwd=root / "src" / "trainer").stdout
        missing = [f for f in flags if f not in help_text]
        assert not missing, f"{name}: {missing} not accepted by {script}"


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
