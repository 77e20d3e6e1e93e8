# The two commands of the README: `make demo` and `make test`. Each one creates .venv,
# installs what it needs (Graphviz's `dot` and, for `make test`, Chromium too, through apt-get
# when it can) and runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

# The oldest Python the README claims: CI runs the suite on it too, in a venv of its own with
# only the test dependencies. python3.8 on PATH, else the newest 3.8 that pyenv carries.
OLDEST := 3.8
OLDEST_VENV := .venv-py$(OLDEST)
OLDEST_PYTHON ?= $(shell for p in "$$(command -v python$(OLDEST))" \
    $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/$(OLDEST).*/bin/python$(OLDEST) 2>/dev/null | sort -V | tail -n 1); do \
    [ -n "$$p" ] && "$$p" -c '' 2>/dev/null && echo "$$p" && break; done)

.PHONY: demo test test-oldest bench mutate graphviz chromium clean

demo: $(VENV)/ready graphviz
	$(BIN)/python examples/demo.py

# The tests need the PyTorch oracle too (float64 reference values): installed here, so every
# developer runs it, not only CI. pip takes the CPU wheel from $$PIP_FIND_LINKS when one is there;
# elsewhere add PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu for the small CPU build.
# A test that cannot run fails with the install command (tests/needs.py); a skip fails the run.
test: $(VENV)/ready $(VENV)/oracle graphviz chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

$(VENV)/oracle: $(VENV)/ready
	$(BIN)/python -m pip install -q -e '.[oracle]'
	touch $@

# PyTorch 2.13.0 has no wheel for 3.8, so the oracle's tests skip there, saying so; they run
# in `make test`. The demo extras (scikit-learn, matplotlib) come too: the digits test needs them.
test-oldest: $(OLDEST_VENV)/ready graphviz chromium
	MICROGRAD_SKIPS_ALLOWED=1 $(OLDEST_VENV)/bin/python -m pytest $(PYTEST_ARGS)

$(OLDEST_VENV)/ready: setup.cfg pyproject.toml
	@test -n "$(OLDEST_PYTHON)" || { echo "Python $(OLDEST) not found: put python$(OLDEST) on PATH" \
	  "or 'pyenv install $(OLDEST)'"; exit 1; }
	$(OLDEST_PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_VENV)/bin/python -m pip install -q --upgrade pip
	$(OLDEST_VENV)/bin/python -m pip install -q -e '.[test,demo]'
	touch $@

# The peers (PyTorch, JAX, CasADi) are installed on first use; micrograd 0.1.0 gets a venv of
# its own (bench/.venv-micrograd), since both packages are called micrograd.
bench: $(VENV)/ready
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python bench/run.py
	$(BIN)/python bench/lenet.py

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

# Graphviz's `dot` and Chromium (the stepper's browser tests) are system programs, not Python
# packages: apt-get installs them when it can (as root, or with sudo); elsewhere the target
# stops and says what to install. $(call system_program,TEST,DEBIAN PACKAGE,HELP) where TEST is
# a shell command that succeeds when the program is there.
define system_program
	@{ $(1); } >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get install -y -q $(2) >/dev/null || { apt-get update -q && apt-get install -y -q $(2); }; \
	  elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1; then \
	    sudo apt-get install -y -q $(2); \
	  else \
	    echo "$(3)"; exit 1; \
	  fi; }
endef

GRAPHVIZ_HELP := Graphviz's 'dot' is missing. Install it: 'apt-get install graphviz' (Debian/Ubuntu), \
  'brew install graphviz' (macOS) or see https://graphviz.org/download/
CHROMIUM_HELP := Chromium is missing (the stepper's browser tests need it). Install it: \
  'apt-get install chromium' (Debian), 'apt-get install chromium-browser' (Ubuntu), or set \
  CHROMIUM to a Chromium or Chrome binary.

graphviz:
	$(call system_program,command -v dot,graphviz,$(GRAPHVIZ_HELP))
	@dot -V

chromium:
	$(call system_program,[ -n "$$CHROMIUM" ] || command -v chromium || command -v chromium-browser,chromium,$(CHROMIUM_HELP))

clean:
	rm -rf $(VENV) $(OLDEST_VENV) build *.egg-info .pytest_cache .hypothesis out
