# `make run`: the terminal app on the offline default; `make test`: the test suite. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run quickstart test bench ui lab clean-venv

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# Everything (faces, graph, text, Ray, tests); torch pinned by constraints.txt.
	$(PY) -m pip install --quiet -c constraints.txt -e ".[all]"
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/workbench tui --preset quickstart

quickstart: $(STAMP)
	$(VENV)/bin/workbench run quickstart
	@echo "Review it in the MLflow UI:  $(VENV)/bin/workbench ui   (http://127.0.0.1:5000)"

test: $(STAMP)
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/averaging.py

ui: $(STAMP)
	$(VENV)/bin/workbench ui

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

clean-venv:
	rm -rf $(VENV)
