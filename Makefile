# Two commands set up a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# The staff pages are specified in the system's Chromium (Playwright cannot download one).
CHROMIUM := /usr/bin/chromium

.PHONY: run test lint typecheck pytest bench worker clean lock

# Installs exactly what requirements.lock pins (hash-checked), then the project itself.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# Re-resolve every dependency to the newest allowed by pyproject.toml; review the diff.
lock: $(STAMP)
	$(PY) -m pip install --quiet uv
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --python-version 3.11 \
		--generate-hashes --upgrade --quiet -o requirements.lock

run: $(STAMP)
	$(PY) -m starter dev

test: lint typecheck pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy .

$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

pytest: $(STAMP) $(CHROMIUM)
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

# BENCH_ARGS="--database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres" for PostgreSQL.
bench: $(STAMP)
	$(PY) -m bench $(BENCH_ARGS)

worker: $(STAMP)
	$(PY) worker.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
