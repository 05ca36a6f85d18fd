# vtrack: `make demo` and `make test` do all the set-up on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.vtrack-installed
SOURCES := setup.py constraints.txt requirements.txt $(wildcard csrc/*.cpp csrc/*/*.cpp csrc/*/*.cu csrc/*/*.h csrc/*.h)
PYTEST_ARGS ?=

.PHONY: install demo test test-all clean

install: $(STAMP)

$(STAMP): $(SOURCES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt -r requirements.txt
	$(PIP) install -q -c constraints.txt --no-build-isolation --no-deps -e .
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
