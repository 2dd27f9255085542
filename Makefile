# The two commands a newcomer runs: `make demo` and `make test`. Both build .venv from nothing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench render check lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[train,dev]'
	touch $@

demo: $(STAMP)
	@echo "== committed job definitions match their values (GitOps drift check)"
	$(PY) generator.py render --check
	@echo "== lint every example job"
	$(PY) generator.py lint jobs
	@echo "== render the default job: 2 nodes x 4 GPUs"
	$(PY) generator.py --nodes 2 --gpus 4

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/bench_render.py

render: $(STAMP)
	$(PY) generator.py render --all

check: $(STAMP)
	$(PY) generator.py render --check

lint: $(STAMP)
	$(PY) generator.py lint jobs

clean:
	rm -rf rendered runs .pytest_cache
