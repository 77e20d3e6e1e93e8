"""PyTorch (float64) as a test oracle: imported, or the test skipped saying exactly why.

The pinned torch has no wheel for the oldest Python the README claims, so there the oracle's
tests skip and run in the main suite instead. Under CI on a Python it has wheels for, a missing
torch fails the test: CI must never skip the oracle silently.
"""
import os
import sys

import pytest

PINNED = 'torch==2.13.0'


def import_torch():
    if sys.version_info < (3, 10):
        pytest.skip(f'PyTorch oracle: {PINNED} has no wheel for Python '
                    f'{sys.version_info[0]}.{sys.version_info[1]}; these tests run in the main '
                    f'suite (make test)')
    try:
        import torch
    except ImportError as error:
        if os.environ.get('CI'):
            pytest.fail(f'PyTorch oracle missing under CI ({error}); .ci/run installs {PINNED}')
        pytest.skip(f'PyTorch oracle not installed: pip install {PINNED} (CI does)')
    return torch
