# One command per job: `make demo` and `make test` each set up .venv by themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck unit chromium bench eval semantic clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# The optional semantic extra (sentence embeddings for ranking). torch goes in first,
# pinned: its CPU build; an unpinned torch would pull the multi-GB CUDA build.
semantic: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[semantic]'

demo: $(STAMP)
	$(BIN)/digest demo

test: $(STAMP) chromium lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check digest tests bench

typecheck: $(STAMP)
	$(BIN)/mypy --strict digest

# The whole suite on SQLite, then again on PostgreSQL when DIGEST_TEST_POSTGRES_URL names
# a server (.ci/run starts one): each test gets its own schema (tests/fixtures/config.py).
unit: $(STAMP)
	$(BIN)/pytest
	@if [ -n "$$DIGEST_TEST_POSTGRES_URL" ]; then \
		echo "== the suite again on PostgreSQL (browser tests ran above) =="; \
		DIGEST_TEST_DB=postgres $(BIN)/pytest -m "not browser" -p no:cacheprovider; \
	else echo "DIGEST_TEST_POSTGRES_URL is unset: skipping the PostgreSQL pass"; fi

# Browser tests drive Debian's Chromium (never a browser downloaded by a tool).
chromium:
	@if [ -x /usr/bin/chromium ] || [ "$$DIGEST_SKIP_BROWSER" = "1" ]; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| { echo "could not install chromium; set DIGEST_SKIP_BROWSER=1 to skip browser tests"; exit 1; }; \
	else echo "browser tests need /usr/bin/chromium: run 'sudo apt-get install chromium' or set DIGEST_SKIP_BROWSER=1"; exit 1; fi

bench: $(STAMP)
	$(BIN)/python bench/run.py

eval: $(STAMP)
	$(BIN)/digest eval --corpus ../shared/data/corpus/arxiv_cs_daily_2025-09-25_to_2026-05-29.jsonl.gz

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
