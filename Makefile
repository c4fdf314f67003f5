# Two entry points for people: `make demo` and `make test`. Both create .venv when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(BIN)/mecharena run examples/flagship.yaml --out runs/flagship
	$(BIN)/mecharena report runs/flagship

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/mecharena bench engine --json
	$(BIN)/mecharena bench loop --json
	$(BIN)/mecharena bench ledger --json
	$(BIN)/mecharena bench fuzz --json
	$(BIN)/mecharena bench designer --json
	$(BIN)/mecharena bench serve --json

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .hypothesis runs
