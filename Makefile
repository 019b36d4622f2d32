# battloop — make targets. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PG_URL ?= postgresql://postgres@127.0.0.1:5432/battloop
TEST_DATA_DIR := $(shell mktemp -d -u /tmp/battloop-test-XXXXXX)
PYTEST_ARGS ?=

.PHONY: install install-test demo serve test test-sqlite test-postgres bench-peers clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/activate
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	cd src/battloop/web/assets && npm ci --no-audit --no-fund --loglevel=error

install-test: install

## The main job: build a demo fleet on the embedded default (SQLite + local lake) and serve it.
demo: install
	$(BIN)/battloop demo

## The whole suite, on SQLite and on PostgreSQL: the two runs side by side, one core each (they share no
## database, data directory, port or MQTT topic); each run's output is printed whole when it ends.
test: install-test
	$(MAKE) --no-print-directory -j2 --output-sync=target test-sqlite test-postgres

test-sqlite:
	BATTLOOP_DATA_DIR=$(TEST_DATA_DIR)-sqlite $(BIN)/pytest -q $(PYTEST_ARGS)

test-postgres:
	BATTLOOP_DATA_DIR=$(TEST_DATA_DIR)-pg BATTLOOP_DATABASE_URL=$(PG_URL) $(BIN)/pytest -q $(PYTEST_ARGS)

## Side environment for benchmark peers whose pins must not enter the main environment.
bench-peers:
	$(PYTHON) -m venv .venv-peers
	.venv-peers/bin/pip install --quiet -r benchmarks/peers.txt

clean:
	rm -rf $(VENV) .venv-peers battloop-data build *.egg-info
