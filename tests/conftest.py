"""Shared test set-up: a temporary compiler cache, hypothesis profiles and the C-compiler
marker."""
import os
import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, settings

# The tests compile into a cache of their own, removed when the session ends: never the user's
# ~/.cache/micrograd. Set here, at import, so subprocesses the tests start inherit it too.
_TEST_CACHE = tempfile.mkdtemp(prefix='micrograd-test-cache-')
os.environ['MICROGRAD_CACHE'] = _TEST_CACHE


def pytest_unconfigure(config):
    shutil.rmtree(_TEST_CACHE, ignore_errors=True)


settings.register_profile('dev', deadline=None, max_examples=100)
settings.register_profile('ci', deadline=None, max_examples=100, derandomize=True,
                          print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get('HYPOTHESIS_PROFILE', 'ci' if os.environ.get('CI') else 'dev'))


def pytest_collection_modifyitems(config, items):
    """Tests marked needs_cc are skipped, with the reason shown, when no C compiler exists."""
    if shutil.which(os.environ.get('CC', 'cc')):
        return
    skip = pytest.mark.skip(reason='no C compiler found ($CC or cc); install gcc to run these')
    for item in items:
        if 'needs_cc' in item.keywords:
            item.add_marker(skip)
