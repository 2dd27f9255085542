"""One model of Azure ML YAML, read once: kinds and their loaders (kinds.py), the `${{...}}`
reference grammar (refs.py). Lint, the local runner and the Azure path read files through it."""
