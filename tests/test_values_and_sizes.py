"""Values merging and --set meaning; the VM size table and the checks built on it."""

import pytest

from jobgen import vmsizes
from jobgen.errors import JobgenError
from jobgen.values import deep_merge, load_defaults, parse_set_value, set_path


@pytest.mark.parametrize("raw,expected", [
    ("5", 5), ("0.001", 0.001), ("-3", -3), ("true", "true"), ("True", "True"), ("1e-3", "1e-3"),
    ("01", "01"), ("null", "null"), ("abc", "abc"), ("", ""), ("1.0", 1.0), ("a=b", "a=b"),
])
def test_set_value_keeps_az_cli_meaning(raw, expected):
    value = parse_set_value(raw)
    assert value == expected and type(value) is type(expected)
    assert str(value) == raw  # what Azure pastes into the command is unchanged


def test_set_paths_are_az_job_paths_or_our_sections():
    defaults = load_defaults()
    values = set_path(defaults, "resources.instance_count=3", defaults)
    values = set_path(values, "cluster.size=Standard_NC24ads_A100_v4", defaults)
    values = set_path(values, "inputs.new_flag=x", defaults)  # new inputs are allowed
    assert values["job"]["resources"]["instance_count"] == 3
    assert values["cluster"]["size"] == "Standard_NC24ads_A100_v4"
    assert values["job"]["inputs"]["new_flag"] == "x"
    with pytest.raises(JobgenError, match="unknown --set path 'resource.instance_count'"):
        set_path(defaults, "resource.instance_count=3", defaults)


def test_deep_merge_replaces_lists_and_null_removes():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert deep_merge(base, {"a": {"c": [3]}, "d": None}) == {"a": {"b": 1, "c": [3]}, "d": None}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}  # inputs untouched


def test_table_covers_current_and_retired_families():
    families = {s.family for s in vmsizes.table().values()}
    for family in ("NCv3", "NCasT4_v3", "NC A100 v4", "NCads H100 v5", "ND A100 v4", "ND H100 v5",
                   "NC", "NCv2", "ND", "NV"):
        assert family in families, family
    for name in ("Standard_NC6", "Standard_NC12s_v2", "Standard_ND24s", "Standard_NV12"):
        size = vmsizes.lookup(name)
        assert size.retired and size.replacement, name
        replacement = vmsizes.lookup(size.replacement)
        assert replacement is not None and not replacement.retired


def test_every_row_is_complete_and_consistent():
    for size in vmsizes.table().values():
        assert size.vcpus > 0 and size.memory_gib > 0, size.name
        if size.gpus:
            assert size.gpu_model and size.gpu_memory_gib, size.name
        if size.retired:
            assert size.retired_on and vmsizes.lookup(size.replacement) is not None, size.name


def test_lookup_is_case_insensitive_and_suggests():
    assert vmsizes.lookup("standard_nc24ads_a100_v4").gpus == 1
    assert vmsizes.suggest("Standard_NC24ads_A100v4") == "Standard_NC24ads_A100_v4"


@pytest.mark.parametrize("size,processes,level", [
    ("Standard_NC64as_T4_v3", 4, None), ("Standard_NC64as_T4_v3", 8, "error"),
    ("Standard_NC64as_T4_v3", 2, "warning"), ("Standard_D4s_v3", 4, None), ("Standard_D4s_v3", 8, "error"),
    ("Standard_NV6ads_A10_v5", 1, "warning"),
])
def test_capacity(size, processes, level):
    found = vmsizes.capacity_problem(vmsizes.lookup(size), processes)
    assert (found[0] if found else None) == level


# ------------------------------------------------------------------ a deployment's model from a registry

@pytest.mark.parametrize("model,registry,expected", [
    ("azureml:penguins-mlp:3", None, "azureml:penguins-mlp:3"),
    ("azureml:penguins-mlp@latest", None, "azureml:penguins-mlp@latest"),
    ("azureml:penguins-mlp:3", "contoso-ml", "azureml://registries/contoso-ml/models/penguins-mlp/versions/3"),
    ("azureml:penguins-mlp@latest", "contoso-ml", "pins the version it serves"),
    ("azureml://registries/shared/models/penguins-mlp/versions/2", None,
     "azureml://registries/shared/models/penguins-mlp/versions/2"),
    ("azureml://registries/shared/models/penguins-mlp/versions/2", "contoso-ml",  # a full reference is kept
     "azureml://registries/shared/models/penguins-mlp/versions/2"),
    ("azureml://registries/shared/models/penguins-mlp/labels/latest", None, "does not name a model version"),
    ("azureml://registries/shared/models/penguins-mlp", "contoso-ml", "does not name a model version"),
    ("penguins-mlp", "contoso-ml", "is not a valid name"),
])
def test_registry_model_reference(model, registry, expected):
    from jobgen import spec

    c = spec._Collector({})
    got = spec._registry_model(c, model, registry)
    if expected.startswith("azureml"):
        assert got == expected and not c.problems
    else:
        assert got is None and len(c.problems) == 1 and expected in c.problems[0].line()
