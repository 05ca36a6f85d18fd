# vtrack: `make demo` and `make test` do all the set-up on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.vtrack-installed
SOURCES := setup.py pyproject.toml constraints.txt requirements.txt $(wildcard csrc/*.cpp csrc/*/*.cpp csrc/*/*.cu csrc/*/*.h csrc/*.h)
PYTEST_ARGS ?=

.PHONY: install demo test test-all clean

install: $(STAMP)

$(STAMP): $(SOURCES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt -r requirements.txt
	$(PIP) install -q -c constraints.txt --no-build-isolation --no-deps -e .
	@$(PY) -c "import torch, vtrack._C" 2>/dev/null && echo "vtrack._C built" || \
		echo "warning: vtrack._C was not built; vtrack JIT-builds it on first use (see docs/cpp.md)"
	touch $(STAMP)

demo: install
	$(VENV)/bin/vtrack demo

test: install
	$(PY) -m pytest -q $(PYTEST_ARGS) tests

# Also runs the tests marked slow.
test-all: install
	$(PY) -m pytest -q --runslow $(PYTEST_ARGS) tests

clean:
	rm -rf build *.egg-info vtrack/*.so
