"""The compiler cache heals itself: a bad cached library is rebuilt, or named in a BuildError.

A disk that filled up or a killed compiler leaves a truncated file; anything can be copied over
a cache file. Each case is set up, then a fresh Python process builds again: it must get a
working library (and the right numbers), never a raw OSError or AttributeError. A fresh process
each time, because a process that loaded a library keeps it.
"""
import os
import random
import subprocess
import sys

import pytest

import codegen
from codegen import cache
from codegen.train import Trainer
from codegen_support import build_module
from micrograd.nn import MLP

pytestmark = pytest.mark.needs_cc

ROOT = os.path.dirname(os.path.dirname(codegen.__file__))

JIT = '''
import codegen
from micrograd import Value
x = Value(0.5, label='x')
f = codegen.jit((x * {factor}).tanh(), [x], backend='c')
print(f.path)
print(repr(f(0.25)))
'''

TRAINER = '''
import random
from codegen.train import Trainer
from micrograd.nn import MLP
t = Trainer(MLP(2, [3, 1], rng=random.Random(0)), lambda m, x, y: (m(x) - y) ** 2, 2)
print(t.path)
print(repr(t.step([[0.5, -1.0, 1.0]], 0.1)))
'''


def fresh_process(script, cache_dir):
    """(library path, answer) printed by `script` run in a new interpreter on `cache_dir`."""
    env = dict(os.environ, MICROGRAD_CACHE=str(cache_dir), PYTHONPATH=ROOT)
    run = subprocess.run([sys.executable, '-c', script], env=env, capture_output=True,
                         text=True, timeout=120)
    if run.returncode != 0:
        return None, run.stderr.strip().splitlines()[-1]
    path, answer = run.stdout.splitlines()
    return path, answer


def truncate(path, _):
    with open(path, 'r+b') as file:
        file.truncate(100)


def random_bytes(path, _):
    with open(path, 'wb') as file:
        file.write(os.urandom(os.path.getsize(path) or 4096))


def empty(path, _):
    open(path, 'wb').close()


def another_library(path, cache_dir):
    other, _ = fresh_process(JIT.format(factor=5.0), cache_dir)  # a valid library, not this one
    os.replace(other, path)


def a_library_without_a_key(path, cache_dir):
    """A library codegen did not build (or an older codegen built): same symbols, no key."""
    key = os.path.basename(path)[:-len('.so')]
    plain = []
    for name in sorted(os.listdir(cache_dir)):  # <key>.c, or <key>-0.c, <key>-1.c, ...
        if name.startswith(key) and name.endswith('.c'):
            with open(os.path.join(cache_dir, name)) as file:
                text = file.read().split('/* The cache key')[0]
            plain.append(os.path.join(cache_dir, 'plain-' + name))
            with open(plain[-1], 'w') as file:
                file.write(text)
    subprocess.run([os.environ.get('CC', 'cc'), '-shared', '-fPIC', '-o', path, *plain, '-lm'],
                   check=True)


def stale_temporary_files(path, cache_dir):
    """What a killed build leaves: half-written temporary files beside the library."""
    key = os.path.basename(path)[:-len('.so')]
    for name in (f'{key}abc123.so.tmp', 'tmpq1w2e3.tmp', f'{key}-0.4242.o'):
        with open(os.path.join(cache_dir, name), 'wb') as file:
            file.write(b'\x7fELF half written')
    os.unlink(path)


DAMAGE = [truncate, random_bytes, empty, another_library, a_library_without_a_key,
          stale_temporary_files]


@pytest.mark.parametrize('damage', DAMAGE, ids=lambda f: f.__name__)
@pytest.mark.parametrize('script', [JIT.format(factor=3.0), TRAINER], ids=['jit', 'Trainer'])
def test_a_damaged_cached_library_is_rebuilt(damage, script, tmp_path):
    cache_dir = tmp_path / 'cache'
    path, expected = fresh_process(script, cache_dir)
    assert path is not None, expected
    damage(path, cache_dir)
    again, answer = fresh_process(script, cache_dir)
    assert (again, answer) == (path, expected)  # rebuilt in place, the same numbers
    assert fresh_process(script, cache_dir) == (path, expected)  # and a plain hit afterwards


def test_a_library_that_cannot_be_rebuilt_is_named_in_a_build_error(tmp_path, monkeypatch):
    monkeypatch.setenv('MICROGRAD_CACHE', str(tmp_path))
    path = str(tmp_path / ('0' * 32 + '.so'))
    with open(path, 'wb') as file:
        file.write(b'not a library')
    with pytest.raises(codegen.BuildError, match=f'{path}: unusable cached library'):
        build_module.load_library(path)
    with pytest.raises(codegen.BuildError, match=f'{path}: the library was rebuilt and is still'):
        build_module.load_library(path, rebuild=lambda: random_bytes(path, None) or path)


# ---- seeing and clearing the cache -----------------------------------------------------------

def test_the_cache_reports_its_size_and_clears(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv('MICROGRAD_CACHE', str(tmp_path / 'cache'))
    path, _ = fresh_process(JIT.format(factor=3.0), tmp_path / 'cache')
    stale_temporary_files(path, tmp_path / 'cache')
    mine = tmp_path / 'cache' / 'notes.txt'  # not codegen's: neither counted nor removed
    mine.write_text('keep me')
    files, size = cache.size()
    assert files == 4 and size > 1000  # the library's C source and the three stale files
    cache.main([])
    assert f'{tmp_path / "cache"}: {files} files' in capsys.readouterr().out
    cache.main(['--clear'])
    assert f'removed {files} files' in capsys.readouterr().out
    assert cache.size() == (0, 0) and mine.read_text() == 'keep me'


def test_the_cache_command_runs_as_a_module(tmp_path):
    env = dict(os.environ, MICROGRAD_CACHE=str(tmp_path), PYTHONPATH=ROOT)
    run = subprocess.run([sys.executable, '-m', 'codegen.cache'], env=env, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.startswith(f'{tmp_path}: 0 files'), run.stderr


def test_the_tests_never_use_the_users_cache():
    home_cache = os.path.join(os.path.expanduser('~'), '.cache')
    assert not build_module.cache_dir().startswith(home_cache)  # conftest chose a temporary one


def test_an_edited_code_generator_never_loads_a_library_the_old_one_wrote(tmp_path, monkeypatch):
    """A Trainer finds its library from the traced programs, before generating any source: so
    the key must change with the generator's own source, or an edited emitter keeps running
    the code its previous version wrote."""
    monkeypatch.setenv('MICROGRAD_CACHE', str(tmp_path / 'cache'))
    monkeypatch.setattr(build_module, '_loaded', {})

    def trainer():
        random.seed(7)
        return Trainer(MLP(2, [3, 1]), lambda m, x, y: (m(x) - y) ** 2, n_features=2)

    first = trainer().path
    assert trainer().path == first  # the same generator: a cache hit
    monkeypatch.setattr(build_module, 'generator_fingerprint', lambda: 'an edited generator')
    assert trainer().path != first
