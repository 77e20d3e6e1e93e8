"""What a user sets around a build: $CC with arguments, $MICROGRAD_CACHE, save()'s files."""
import os
import shutil
import stat

import pytest

import codegen
from codegen_support import build_module, use_private_cache
from micrograd import Value


def program():
    x = Value(0.5, label='x')
    return codegen.trace((x * 3.0).tanh(), [x], 'f')


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    return use_private_cache(tmp_path, monkeypatch)


# ---- $CC -------------------------------------------------------------------------------------

@pytest.mark.needs_cc
@pytest.mark.parametrize('extra', ['-m64', '-DUNUSED=1 -g0'])
def test_cc_may_carry_arguments_as_make_reads_them(extra, tmp_path, monkeypatch, private_cache):
    cc = shutil.which(os.environ.get('CC', 'cc').split()[0])
    spaced = tmp_path / 'a dir with spaces'
    spaced.mkdir()
    (spaced / 'cc').symlink_to(cc)
    monkeypatch.setenv('CC', f'"{spaced / "cc"}" {extra}')
    assert codegen.build(program(), 'c')(0.25) == (codegen.evaluate(program(), [0.25])[0],)
    assert build_module.find_compiler()[1:] == extra.split()


def test_a_cc_that_is_not_there_is_still_reported_as_missing(monkeypatch, private_cache):
    monkeypatch.setenv('CC', 'no-such-compiler-anywhere -m64')
    with pytest.raises(codegen.CompilerNotFound, match="looked for 'no-such-compiler-anywhere"):
        codegen.build(program(), 'c')


# ---- $MICROGRAD_CACHE ------------------------------------------------------------------------

@pytest.mark.needs_cc
@pytest.mark.parametrize('where', ['a file', 'inside a file'])
def test_a_cache_variable_that_is_not_a_directory_is_a_clear_error(where, tmp_path,
                                                                   monkeypatch):
    afile = tmp_path / 'afile'
    afile.write_text('')
    path = afile if where == 'a file' else afile / 'cache'
    monkeypatch.setenv('MICROGRAD_CACHE', str(path))
    monkeypatch.setattr(build_module, '_loaded', {})
    with pytest.raises(codegen.BuildError,
                       match=f'cannot use {path} \\(from \\$MICROGRAD_CACHE\\) as the compiler '
                             f'cache directory'):
        codegen.build(program(), 'c')


# ---- save() ----------------------------------------------------------------------------------

@pytest.mark.parametrize('umask, mode', [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
@pytest.mark.parametrize('name', ['f.py', 'f.c'])
def test_saved_files_follow_the_umask(umask, mode, name, tmp_path):
    old = os.umask(umask)
    try:
        codegen.save(program(), tmp_path / name)
    finally:
        os.umask(old)
    written = [tmp_path / name] + ([tmp_path / 'f.h'] if name == 'f.c' else [])
    assert [stat.S_IMODE(p.stat().st_mode) for p in written] == [mode] * len(written)


def test_a_save_error_names_the_file_asked_for(tmp_path):
    target = tmp_path / 'nodir' / 'x.c'
    with pytest.raises(FileNotFoundError) as raised:
        codegen.save(program(), target)
    assert raised.value.filename == str(target) and str(target) in str(raised.value)
    assert '.tmp' not in str(raised.value)


@pytest.mark.parametrize('name, header', [('X.C', 'X.h'), ('model.PY', None), ('m.Py', None)])
def test_the_suffix_is_read_whatever_its_case(name, header, tmp_path):
    codegen.save(program(), tmp_path / name)
    text = (tmp_path / name).read_text()
    assert ('#include' in text) == (header is not None)
    if header:
        assert (tmp_path / header).exists()


def test_other_suffixes_are_refused(tmp_path):
    with pytest.raises(ValueError, match='writes .py or .c files'):
        codegen.save(program(), tmp_path / 'f.cpp')
    assert os.listdir(tmp_path) == []
