# The two commands of the README: `make demo` and `make test`. Each one creates .venv,
# installs what it needs (Graphviz's `dot` too, through apt-get when it can) and runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench mutate graphviz clean

demo: $(VENV)/ready graphviz
	$(BIN)/python examples/demo.py

# The tests need the PyTorch oracle too (float64 reference values): installed here, so every
# developer runs it, not only CI. pip takes the CPU wheel from $$PIP_FIND_LINKS when one is there;
# elsewhere add PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu for the small CPU build.
# A test that cannot run fails with the install command (tests/needs.py); a skip fails the run.
test: $(VENV)/ready $(VENV)/oracle graphviz
	$(BIN)/python -m pytest $(PYTEST_ARGS)

$(VENV)/oracle: $(VENV)/ready
	$(BIN)/python -m pip install -q -e '.[oracle]'
	touch $@

# The peers (PyTorch, JAX, CasADi) are installed on first use; micrograd 0.1.0 gets a venv of
# its own (bench/.venv-micrograd), since both packages are called micrograd.
bench: $(VENV)/ready
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python bench/run.py

# Mutation testing (cosmic-ray, see tools/mutate.py): each core module's mutants against only
# the tests that cover it. Not part of `make test` or CI. MUTATE_MODULES="ieee ops" picks some.
MUTATE_MODULES ?=
mutate: $(VENV)/ready $(VENV)/oracle
	$(BIN)/python -m pip install -q -e '.[mutate]'
	$(BIN)/python tools/mutate.py $(MUTATE_MODULES)

$(VENV)/ready: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,viz,demo]'
	touch $@

# Graphviz's `dot` is a system program, not a Python package.
graphviz:
	@command -v dot >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get install -y -q graphviz >/dev/null || { apt-get update -q && apt-get install -y -q graphviz; }; \
	  elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1; then \
	    sudo apt-get install -y -q graphviz; \
	  else \
	    echo "Graphviz's 'dot' is missing. Install it: 'apt-get install graphviz' (Debian/Ubuntu)," \
	         "'brew install graphviz' (macOS) or see https://graphviz.org/download/"; exit 1; \
	  fi; }
	@dot -V

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis out
