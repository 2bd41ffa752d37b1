# The two commands a newcomer runs: `make devnet` and `make test`.
# The first interpreter that really runs and is 3.11 or 3.12 (pyenv shims can exist without one).
PYTHON ?= $(shell for p in python3.11 python3.12 python3; do $$p -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] < (3, 13))' 2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test lint devnet venv clean bench sysdeps

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "pouw-node needs Python 3.11 or 3.12 (python3.11, python3.12 or python3 on PATH)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,examples]'
	@touch $(STAMP)

venv: $(STAMP)

sysdeps:
	@scripts/system-deps.sh

# ruff over the whole tree; mypy over the packages listed in pyproject's [tool.mypy] files.
lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy

test: sysdeps $(STAMP)
	$(MAKE) lint
	$(PY) -m pytest -q

devnet: sysdeps $(STAMP)
	$(VENV)/bin/pouw-devnet up $(DEVNET_ARGS)

bench: $(STAMP)
	$(PY) bench/mining.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache .ruff_cache build *.egg-info
