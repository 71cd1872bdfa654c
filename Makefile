# budgetnas: `make demo` runs the default search, `make test` runs the test suite.
# Both create .venv when it is missing and install what they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test install clean

$(VENV)/.base: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

# One pip run for everything the tests need (a second resolution of torch & co. costs ~30 s).
$(VENV)/.test: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(VENV)/.base $@

install: $(VENV)/.base

demo: $(VENV)/.base
	$(PY) -m budgetnas search mgas --out runs/demo-$$(date +%Y%m%d-%H%M%S)

# Two workers: the suite is mostly single-threaded subprocesses; the 15 slowest tests are listed.
test: $(VENV)/.test
	$(PY) -m pytest -q -n 2 --durations=15

clean:
	rm -rf runs .pytest_cache
