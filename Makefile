# The two commands a newcomer runs: `make demo` and `make test`. Both build .venv from nothing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast bench render check lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[train,serve,dev]'
	@# onnxruntime and onnxruntime-openvino are one module: a venv made before the switch has both,
	@# and whichever was installed last owns the files. Keep the OpenVINO build, whole.
	if $(PY) -m pip show --quiet onnxruntime-openvino >/dev/null 2>&1 && \
	   $(PY) -m pip show --quiet onnxruntime >/dev/null 2>&1; then \
	  $(PY) -m pip uninstall --quiet --yes onnxruntime && \
	  $(PY) -m pip install --quiet --force-reinstall --no-deps onnxruntime-openvino; fi
	@# Azurite, the Azure Storage emulator, for the test that uploads a code snapshot into it
	if command -v npm >/dev/null 2>&1; then \
	  npm install --prefix $(VENV)/node --no-audit --no-fund --loglevel=error azurite@3.37.0 \
	  || echo "warning: azurite could not be installed; its test will be skipped"; \
	else echo "note: npm not found; the Azurite test will be skipped"; fi
	touch $@

data/penguins.csv: $(STAMP)
	mkdir -p data
	$(PY) -c "import palmerpenguins, pathlib, shutil; shutil.copyfile(pathlib.Path(palmerpenguins.__file__).parent / 'data' / 'penguins.csv', '$@')"

demo: $(STAMP) data/penguins.csv
	@echo "== the committed job definitions match their values, and lint clean"
	$(PY) generator.py render --check
	$(PY) generator.py lint jobs components -q
	@echo "== render the penguins pipeline for 2 nodes x 2 processes"
	$(PY) generator.py -f jobs/penguins-pipeline/values.yaml --nodes 2 --gpus 2 -o rendered/penguins-pipeline
	@echo "== run it here, as Azure ML would: train (4 processes) -> ONNX export + parity -> register"
	$(PY) generator.py run rendered/penguins-pipeline/pipeline.yml
	@echo "== score every penguin of the CSV with the model just registered, as a batch endpoint would"
	$(PY) generator.py run jobs/penguins-batch/deployment.yml --input data/penguins.csv -q

# Tests run in PYTEST_WORKERS processes (pytest-xdist), one test file per worker at a time so that a
# file's shared fixtures (trained models) are made once. The sources are compiled first: where
# PYTHONDONTWRITEBYTECODE is set (as on this project's CI machines) every process would compile them again.
PYTEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile

test: $(STAMP)
	$(PY) -m compileall -q src tests > /dev/null
	$(PYTEST)

# The loop while working: no torch, no training run, no server, no multi-process job (under 2 minutes).
test-fast: $(STAMP)
	$(PY) -m compileall -q src tests > /dev/null
	$(PYTEST) -m "not full"

bench: $(STAMP)
	$(PY) bench/run_all.py

render: $(STAMP)
	$(PY) generator.py render --all

check: $(STAMP)
	$(PY) generator.py render --check

lint: $(STAMP)
	$(PY) generator.py lint jobs

clean:
	rm -rf rendered runs .pytest_cache
