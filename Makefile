# The two commands of the README: `make demo` and `make test`. Each one creates .venv,
# installs what it needs (Graphviz's `dot` and, for `make test`, Chromium too, through apt-get
# when it can) and runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench graphviz chromium clean

demo: $(VENV)/ready graphviz
	$(BIN)/python examples/demo.py

test: $(VENV)/ready graphviz chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The peers (PyTorch, JAX, CasADi) are installed on first use; micrograd 0.1.0 gets a venv of
# its own (bench/.venv-micrograd), since both packages are called micrograd.
bench: $(VENV)/ready
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python bench/run.py

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
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis out
