"""codegen.build / jit: a callable from a Program; a private compiler cache; clear errors."""
import os
import stat
import subprocess
import sys
import traceback

import pytest

import codegen
from codegen_support import STRICT_FLAGS, build_c, build_module, use_private_cache
from micrograd import Value

needs_cc = pytest.mark.needs_cc


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    return use_private_cache(tmp_path, monkeypatch)


def neuron():
    w, x, b = Value(0.5, label='w'), Value(2.0, label='x'), Value(-1.0, label='b')
    return (w * x + b).tanh(), [w, x, b]


def neuron_program():
    out, inputs = neuron()
    return codegen.optimize(codegen.grad(codegen.trace(out, inputs, 'neuron')))


def engine_neuron(w, x, b):
    out, inputs = neuron()
    for v, d in zip(inputs, (w, x, b)):
        v.data = d
    out = (inputs[0] * inputs[1] + inputs[2]).tanh()
    out.backward()
    return (out.data,) + tuple(v.grad for v in inputs)


# ---- both backends ---------------------------------------------------------------------------

@pytest.mark.parametrize('backend', ['python', pytest.param('c', marks=needs_cc)])
def test_a_built_program_returns_the_value_and_gradients_as_a_tuple(backend, private_cache):
    options = {'flags': STRICT_FLAGS} if backend == 'c' else {}
    f = codegen.build(neuron_program(), backend, **options)
    assert f(0.5, 2.0, -1.0) == engine_neuron(0.5, 2.0, -1.0)
    assert f.backend == backend and f.program == neuron_program()


@pytest.mark.parametrize('backend', ['python', pytest.param('c', marks=needs_cc)])
def test_wrong_argument_counts_at_call_time_raise_type_error(backend, private_cache):
    f = codegen.build(neuron_program(), backend, n_params=1)
    with pytest.raises(TypeError, match=r'takes 3 inputs \(w, x, b\), got 2'):
        f(1.0, 2.0)
    with pytest.raises(TypeError, match='got 4'):
        f(1.0, 2.0, 3.0, 4.0)
    with pytest.raises(TypeError, match='expected 1 parameters, got 2'):
        f.batch([1.0, 2.0], [[1.0, 2.0]])
    with pytest.raises(TypeError, match='row 1 has 1 values, expected 2'):
        f.batch([1.0], [[1.0, 2.0], [1.0]])
    with pytest.raises(TypeError):
        f.sum([1.0], [[1.0, 2.0, 3.0]])


def test_an_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="'c' or 'python'"):
        codegen.build(neuron_program(), 'fortran')


@pytest.mark.parametrize('backend', ['python', pytest.param('c', marks=needs_cc)])
@pytest.mark.parametrize('n_params', [4, -1])
def test_a_parameter_count_outside_the_inputs_is_refused_when_building(backend, n_params,
                                                                       private_cache):
    with pytest.raises(ValueError, match=f'n_params={n_params}'):
        codegen.build(neuron_program(), backend, n_params=n_params)


def test_generated_python_shows_its_own_lines_in_tracebacks():
    # Debuggable: the source is registered with linecache under the module's filename.
    f = codegen.build(neuron_program(), 'python')
    with pytest.raises(TypeError) as raised:  # the generated function itself: the call checks
        f._function('not a number', 2.0, -1.0)  # its inputs before it gets there
    last = traceback.extract_tb(raised.value.__traceback__)[-1]
    assert last.filename.startswith('<codegen neuron')
    assert last.line == 'v0 = w * x'


# ---- jit: the common case in one call ------------------------------------------------------------

@pytest.mark.parametrize('backend', ['python', pytest.param('c', marks=needs_cc)])
def test_jit_traces_differentiates_optimizes_and_builds(backend, private_cache):
    out, (w, x, b) = neuron()
    f = codegen.jit(out, [w, x, b], wrt=[w, b], backend=backend)
    value, dw, dx, db = engine_neuron(0.5, 2.0, -1.0)
    assert f(0.5, 2.0, -1.0) == (value, dw, db)
    assert codegen.jit(out, [w, x, b], wrt=[], backend=backend)(0.5, 2.0, -1.0) == (value,)


def test_jit_refuses_a_gradient_with_respect_to_a_value_that_is_not_an_input():
    out, (w, x, b) = neuron()
    with pytest.raises(ValueError, match='not one of the inputs'):
        codegen.jit(out, [w, x], wrt=[b], backend='python')


def test_jit_refuses_a_leaf_listed_twice_a_non_leaf_input_and_a_hand_written_backward():
    out, (w, x, b) = neuron()
    with pytest.raises(ValueError, match='listed twice'):
        codegen.jit(out, [w, x, b, w], backend='python')
    with pytest.raises(ValueError, match='not a leaf'):
        codegen.jit(out, [w, x, b, out._args[0]], backend='python')
    square = Value(w.data ** 2, (w,), 'square')
    with pytest.raises(ValueError, match='hand-written _backward'):
        codegen.jit(square, [w], backend='python')


# ---- the compiler cache -------------------------------------------------------------------------

@needs_cc
def test_a_cache_hit_runs_no_compiler(private_cache, monkeypatch):
    first = build_c(neuron_program())
    monkeypatch.setattr(build_module, '_loaded', {})  # as if in a new process

    def no_compiler(*args, **kwargs):
        raise AssertionError(f'the compiler ran on a cache hit: {args}')
    monkeypatch.setattr(subprocess, 'run', no_compiler)
    second = build_c(neuron_program())
    assert second is not first and second.path == first.path
    assert second(0.5, 2.0, -1.0) == engine_neuron(0.5, 2.0, -1.0)


@needs_cc
def test_the_cache_key_changes_with_the_source_and_the_flags():
    compiler = build_module.find_compiler()
    key = build_module.cache_key
    source = codegen.to_c(neuron_program())
    assert key(source, compiler, STRICT_FLAGS) == key(source, compiler, STRICT_FLAGS)
    assert key(source, compiler, STRICT_FLAGS) != key(source + '\n', compiler, STRICT_FLAGS)
    assert key(source, compiler, STRICT_FLAGS) != key(source, compiler, STRICT_FLAGS + ('-O3',))
    assert key(source, compiler, ('-O2', '-g')) != key(source, compiler, ('-O2 -g',))


@needs_cc
def test_the_library_and_its_source_are_kept_side_by_side_in_the_cache(private_cache):
    f = build_c(neuron_program())
    assert os.path.dirname(f.path) == str(private_cache)
    key = os.path.basename(f.path)[:-len('.so')]
    with open(f.path[:-len('.so')] + '.c') as source:  # the source, and its own cache key
        assert source.read() == build_module._with_key(f.source, key)
    assert not [name for name in os.listdir(private_cache) if name.endswith('.tmp')]


@needs_cc
def test_the_cache_directory_is_created_private(tmp_path, monkeypatch):
    cache = tmp_path / 'deeper' / 'cache'
    monkeypatch.setenv('MICROGRAD_CACHE', str(cache))
    monkeypatch.setattr(build_module, '_loaded', {})
    build_c(neuron_program())
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700


@needs_cc
@pytest.mark.parametrize('mode', [0o777, 0o770, 0o702])
def test_a_cache_directory_others_can_write_is_refused(mode, private_cache):
    # Loading a shared library runs its code: nobody else may be able to plant one.
    private_cache.mkdir()
    private_cache.chmod(mode)
    with pytest.raises(codegen.BuildError, match='refusing to use cache directory'):
        build_c(neuron_program())


@needs_cc
def test_a_cache_directory_others_can_only_read_is_accepted(private_cache):
    private_cache.mkdir()
    private_cache.chmod(0o755)
    assert build_c(neuron_program())(0.5, 2.0, -1.0) == engine_neuron(0.5, 2.0, -1.0)


@needs_cc
def test_parallel_builds_of_one_program_share_the_cache_safely(tmp_path):
    # Compilation writes a temporary file and renames it: racing processes each load a whole
    # library, never a half-written one.
    script = ('import codegen, sys\n'
              'from micrograd import Value\n'
              'x = Value(0.5, label="x")\n'
              f'f = codegen.jit((x * 3.0).tanh(), [x], backend="c", flags={STRICT_FLAGS!r})\n'
              'sys.stdout.write(repr(f(0.25)))\n')
    env = dict(os.environ, MICROGRAD_CACHE=str(tmp_path / 'shared'),
               PYTHONPATH=os.path.dirname(os.path.dirname(codegen.__file__)))
    runs = [subprocess.Popen([sys.executable, '-c', script], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0] * 4, outputs
    assert len({out for out, _ in outputs}) == 1
    assert not [name for name in os.listdir(tmp_path / 'shared') if name.endswith('.tmp')]


# ---- errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize('setting', ['CC', 'PATH'])
def test_a_missing_compiler_says_to_use_the_python_backend(setting, tmp_path, monkeypatch,
                                                           private_cache):
    if setting == 'CC':
        monkeypatch.setenv('CC', str(tmp_path / 'nonexistent'))
    else:
        monkeypatch.delenv('CC', raising=False)
        monkeypatch.setenv('PATH', str(tmp_path))  # an empty directory: no cc on it
    with pytest.raises(codegen.CompilerNotFound, match="backend='python'"):
        codegen.build(neuron_program(), 'c')
    out, inputs = neuron()
    with pytest.raises(codegen.BuildError, match='no C compiler found'):
        codegen.jit(out, inputs)


@needs_cc
@pytest.mark.parametrize('bad_flag, message', [
    ('-Dmg_out=(', 'error'),                      # the source no longer parses
    ('-fno-such-option-anywhere', 'no-such-option-anywhere'),
])
def test_a_compile_error_shows_the_compilers_message_and_the_source_path(bad_flag, message,
                                                                         private_cache):
    with pytest.raises(codegen.CompileError) as raised:
        build_c(neuron_program(), flags=STRICT_FLAGS + (bad_flag,))
    text = str(raised.value)
    c_files = [name for name in os.listdir(private_cache) if name.endswith('.c')]
    assert len(c_files) == 1 and os.path.join(private_cache, c_files[0]) in text
    assert message in text.split('\n', 1)[1]  # below the first line: the compiler's own words
    assert not [name for name in os.listdir(private_cache) if name.endswith(('.tmp', '.so'))]


@pytest.mark.needs_cc
def test_a_compiled_function_gives_each_thread_its_own_answer(private_cache):
    # The C callable reuses its argument buffers; calls from several threads must not mix.
    import threading
    x = Value(0.0, label='x')
    square = codegen.jit(x * x + 1.0, [x], wrt=())
    wrong = []

    def work(k):
        for i in range(3000):
            n = float(k * 100000 + i)
            if square(n) != (n * n + 1.0,):
                wrong.append((n, square(n)))
    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []
