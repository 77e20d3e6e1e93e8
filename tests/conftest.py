"""Shared test set-up: hypothesis profiles and the C-compiler marker."""
import os
import shutil

import pytest
from hypothesis import HealthCheck, settings

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
