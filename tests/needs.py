"""What a test needs that pip's `test` extra cannot guarantee, and the failure when it is missing.

`make test` installs everything the suite uses, so on a machine set up by it nothing here ever
fires. Elsewhere a test that cannot run FAILS and prints the command that fixes it: a skip would
read as green while the property it guards went unchecked.
"""
import importlib

import pytest


def missing(what, install):
    """Fail the running test: `what` is not installed; `install` is how to get it."""
    pytest.fail(f'{what} is missing, so this test cannot run. Install it: {install} '
                f'(`make test` installs everything the suite needs)', pytrace=False)


def module(name, install):
    """Import and return module `name`, or fail with `install`."""
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(f'the Python package {name!r}', install)


TORCH = 'pip install torch==2.13.0 (the PyTorch oracle, extra "oracle")'
GRAPHVIZ_PACKAGE = "pip install graphviz (extra 'viz')"
DOT = "apt-get install graphviz (Debian/Ubuntu) or brew install graphviz (macOS)"
CC = 'apt-get install gcc (or set $CC to a C compiler)'
