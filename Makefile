# orgmirror developer commands. `make run` and `make test` do all their own set-up.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8080
# System packages the tests use: real registries, real skopeo, a real browser.
SYSTEM_PACKAGES := skopeo docker-registry apache2-utils openssl chromium

.PHONY: run test lint bench system-deps venv postgres clean

$(BIN)/orgmirror: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

venv: $(BIN)/orgmirror

## run: the service on the embedded SQLite default (data in ./orgmirror-data)
run: venv
	$(BIN)/orgmirror serve --host $(HOST) --port $(PORT)

## system-deps: install the Debian packages the tests need (as root, only when missing)
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "system packages: all present"; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "installing:$$missing"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "missing system packages:$$missing (run as root, or: sudo apt-get install$$missing)"; exit 1; fi

## postgres: make sure the PostgreSQL the tests use answers on 127.0.0.1:5432
postgres:
	@if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then \
	  if command -v pg_ctlcluster >/dev/null; then \
	    pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -n1) main start; \
	  fi; \
	fi; \
	pg_isready -h 127.0.0.1 -p 5432 || { echo "PostgreSQL is not reachable on 127.0.0.1:5432 (set ORGMIRROR_TEST_PG_DSN)"; exit 1; }

## lint: ruff (lint + format), mypy --strict, import-linter layer contracts
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## test: install everything the tests need, lint, and run the whole suite
test: system-deps postgres venv lint
	$(BIN)/pytest -p no:cacheprovider

## bench: orgmirror against per-tag skopeo copy and skopeo sync (about 10 minutes; see bench/)
bench: system-deps postgres venv
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) orgmirror-data .mypy_cache .ruff_cache .pytest_cache
