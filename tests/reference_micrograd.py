"""micrograd 0.1.0, the PyPI release, fetched once for the tests that compare with it.

Both packages are called `micrograd`, so its files are fetched (`pip download`), checked
against pinned hashes and kept in a cache directory of their own, outside this project:
tests load its engine under another module name (tests/test_compat.py) or run scripts with the
cache directory on PYTHONPATH (tests/test_nn.py). Offline, those tests skip saying why; under
CI they fail instead, so CI can never skip them silently.
"""
import hashlib
import os
import pathlib
import subprocess
import sys
import tarfile
import tempfile
import zipfile

import pytest

VERSION = '0.1.0'
SHA256 = {
    '__init__.py': 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    'engine.py': '95f19fa3734458d868e067d770f0773027763a2f654900bfbc1df8c5413acf84',
    'nn.py': 'f54453501abc4fd38ae724a8b378d6a5d23bfdd0a49c77e619b95f86ad16594d',
}
CACHE = pathlib.Path(os.environ.get('XDG_CACHE_HOME') or pathlib.Path.home() / '.cache') \
    / 'micrograd-reference' / VERSION


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def _files_from_pypi():
    """{name: bytes} of micrograd 0.1.0's package files, from `pip download`, or OSError."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            subprocess.run([sys.executable, '-m', 'pip', 'download', '--no-deps', '-q',
                            '--disable-pip-version-check', f'micrograd=={VERSION}', '-d', tmp],
                           check=True, capture_output=True, timeout=120)
        except subprocess.CalledProcessError as error:
            said = error.stderr.decode(errors='replace').strip().splitlines() or ['no output']
            raise OSError(f'`pip download micrograd=={VERSION}` failed: {said[-1]}') from error
        except (subprocess.SubprocessError, OSError) as error:  # no pip, or a timeout
            raise OSError(f'`pip download micrograd=={VERSION}` failed: {error}') from error
        for archive in pathlib.Path(tmp).iterdir():
            if archive.suffix == '.whl':
                with zipfile.ZipFile(archive) as wheel:
                    return {name: wheel.read(f'micrograd/{name}') for name in SHA256}
            if archive.name.endswith('.tar.gz'):
                with tarfile.open(archive) as sdist:
                    return {name: sdist.extractfile(f'micrograd-{VERSION}/micrograd/{name}').read()
                            for name in SHA256}
        raise OSError(f'pip download left no wheel or sdist in {tmp}')


def package_root():
    """A directory holding micrograd 0.1.0 as package `micrograd/`, fetched on first use."""
    package = CACHE / 'micrograd'
    if all((package / name).exists() and _sha256((package / name).read_bytes()) == digest
           for name, digest in SHA256.items()):
        return CACHE
    files = _files_from_pypi()
    for name, data in files.items():
        if _sha256(data) != SHA256[name]:
            raise OSError(f'micrograd {VERSION} {name} does not match the pinned sha256')
    package.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (package / name).write_bytes(data)
    return CACHE


def engine_path():
    return package_root() / 'micrograd' / 'engine.py'


def unavailable(error):
    """Skip the test saying why; under CI fail, since CI must run it."""
    message = f'micrograd {VERSION} not available: {error}'
    if os.environ.get('CI'):
        pytest.fail(message + ' (CI must run the comparison with micrograd 0.1.0)')
    pytest.skip(message)
