# `make run`: the terminal app on the offline default; `make test`: the test suite. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run quickstart test bench ui lab clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch and torchvision pinned to the builds on this machine's disk (pip finds them there).
	$(PY) -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install --quiet -e ".[test,text]"
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/workbench tui --preset quickstart

quickstart: $(STAMP)
	$(VENV)/bin/workbench run quickstart
	@echo "Review it in the MLflow UI:  $(VENV)/bin/workbench ui   (http://127.0.0.1:5000)"

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/averaging.py

ui: $(STAMP)
	$(VENV)/bin/workbench ui

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

clean-venv:
	rm -rf $(VENV)
