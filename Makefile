# `make run` serves the API on the embedded SQLite default; `make test` runs every test;
# `make bench` runs the benchmark suite (BENCH_QUICK=1 for a short trial run).
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.installed

.PHONY: install run test bench lint clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is required.")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,lint]'
	touch $(STAMP)

run: install
	$(BIN)/release-ledger migrate
	$(BIN)/gunicorn -c gunicorn.conf.py 'api.app:create_app()'

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check domain projections api chain tests bench

clean:
	rm -rf $(VENV) var/*.sqlite3*
