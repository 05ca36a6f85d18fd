# vtrack: `make demo` and `make test` do all the set-up on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.vtrack-installed
SOURCES := setup.py pyproject.toml constraints.txt $(wildcard csrc/*.cpp csrc/*/*.cpp csrc/*/*.cu csrc/*/*.h csrc/*.h)
PYTEST_ARGS ?=
# pyproject extras that `make install` adds: what the tests need (vot-toolkit, for the slow tests: make install-vot-toolkit)
EXTRAS ?= test,deploy,vot,text,triton

.PHONY: install install-vot-toolkit demo test test-all clean

install: $(STAMP)

$(STAMP): $(SOURCES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# opencv-contrib-python-headless (a dependency) provides cv2 too: never keep both
	$(PIP) uninstall -q -y opencv-python-headless 2>/dev/null || true
	@# vtrack._C builds against the installed torch (--no-build-isolation): install it first
	$(PIP) install -q -c constraints.txt torch setuptools wheel ninja
	$(PIP) install -q -c constraints.txt --no-build-isolation -e '.[$(EXTRAS)]'
	@if $(PIP) list 2>/dev/null | grep -i '^nvidia-'; then \
		echo "error: CUDA packages (nvidia-*) were installed: install with -c constraints.txt and a CPU torch"; exit 1; fi
	@$(PY) -c "import torch, vtrack._C" 2>/dev/null && echo "vtrack._C built" || \
		echo "warning: vtrack._C was not built; vtrack JIT-builds it on first use (see docs/cpp.md)"
	touch $(STAMP)

# the real VOT toolkit for the slow tests: its dependencies (the vot-toolkit extra), then the toolkit
# without its opencv-python requirement (a second cv2 that would shadow opencv-contrib's)
install-vot-toolkit: install
	$(PY) -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["vot-toolkit"]))' > $(VENV)/vot-toolkit-deps.txt
	$(PIP) install -q -c constraints.txt -r $(VENV)/vot-toolkit-deps.txt
	$(PIP) install -q -c constraints.txt --no-deps vot-toolkit==0.9.0

demo: install
	$(VENV)/bin/vtrack demo

# The tests need the built vtrack._C: VTRACK_REQUIRE_EXT=1 turns the JIT fallback off and makes a
# missing or stale extension fail the suite (tests/ext_required.py) instead of skipping it.
test: install
	@$(PY) -c "import torch, vtrack._C" || { echo "error: vtrack._C was not built (see docs/cpp.md)"; exit 1; }
	VTRACK_REQUIRE_EXT=1 $(PY) -m pytest -q $(PYTEST_ARGS) tests

# Also runs the tests marked slow.
test-all: install-vot-toolkit
	@$(PY) -c "import torch, vtrack._C" || { echo "error: vtrack._C was not built (see docs/cpp.md)"; exit 1; }
	VTRACK_REQUIRE_EXT=1 $(PY) -m pytest -q --runslow $(PYTEST_ARGS) tests

clean:
	rm -rf build *.egg-info vtrack/*.so
