"""Turn a Program into a Python callable: exec the generated Python, or compile the C and load it.

Compiled C libraries are cached in a private per-user directory, keyed by a hash of (source,
compiler identity, flags, codegen version). Loading a shared library runs its code, so the
directory must belong to the user and be writable by nobody else. Compilation writes to a
temporary name and renames, so parallel processes never load a half-written file.

Every library carries its own key (`micrograd_cache_key()`). A cached file that does not load
(truncated, random bytes) or carries another key (another library copied over it, or one built
by an older codegen) is deleted and rebuilt once; if that fails too, a BuildError names it.
"""
import contextlib
import ctypes
import functools
import hashlib
import json
import itertools
import linecache
import os
import platform
import re
import shlex
import shutil
import subprocess
import tempfile
import threading

from codegen import VERSION, abi, validate
from codegen.emit_c import to_c
from codegen.emit_python import to_python
from codegen.grad import grad as grad_program
from codegen.lower import trace
from codegen.passes import optimize as optimize_program

# No fused multiply-add contraction and no -ffast-math: the default build computes the same bits
# as the engine. -O3 -march=native lets gcc run the loop level's row loops in this CPU's vector
# registers, which changes no bit (each lane does the scalar operation); the cache key then names
# the CPU (`_cpu_identity`). The source itself is ISO C99: `save()` output builds anywhere.
DEFAULT_FLAGS = ('-O3', '-march=native', '-std=c99', '-ffp-contract=off', '-fPIC', '-shared')
PORTABLE_FLAGS = ('-O2', '-std=c99', '-ffp-contract=off', '-fPIC', '-shared')
# The opt-in fast build: OpenMP threads (the loop level's threaded sum).
FAST_FLAGS = ('-O3', '-march=native', '-fopenmp', '-std=gnu99', '-ffp-contract=off', '-fPIC',
              '-shared')

_loaded = {}  # library path -> Compiled, for this process


class BuildError(RuntimeError):
    """Code could not be built or loaded."""


class CompilerNotFound(BuildError):
    """No C compiler on this machine."""


class CompileError(BuildError):
    """The C compiler rejected the generated source."""


class Compiled:
    """A built program: call it with the program's inputs, get a tuple of its outputs.

    `batch(params, rows)` and `sum(params, rows)` evaluate many data rows in one call; the
    first `n_params` inputs are shared by every row.
    """

    def __init__(self, program, source, backend, n_params=0, path=None, rebuild=None):
        self.program, self.source, self.backend, self.path = program, source, backend, path
        self._rebuild = rebuild  # C: compiles the library again if the cached one is unusable
        self.n_in, self.n_out = len(program.inputs), len(program.outputs)
        if not 0 <= n_params <= self.n_in:
            raise ValueError(f'n_params={n_params}, but {program.name} has {self.n_in} inputs')
        self.n_params, self.n_data = n_params, self.n_in - n_params
        self._function = self._load_python() if backend == 'python' else self._load_c()

    def __call__(self, *inputs):
        if len(inputs) != self.n_in:
            raise TypeError(f'{self.program.name}() takes {self.n_in} inputs '
                            f'({", ".join(self.program.inputs)}), got {len(inputs)}')
        # As floats on every backend: a bool or a string is refused alike, and a numpy float32
        # cannot make generated Python compute in single precision.
        return self._function(*validate.numbers_of(inputs, 'input'))

    def batch(self, params, rows):
        """Outputs for each data row, as a list of tuples."""
        params, flat, n = self._check_rows(params, rows)
        if self.backend == 'python':
            return [self._function(*params, *flat[i * self.n_data:(i + 1) * self.n_data])
                    for i in range(n)]
        out = (ctypes.c_double * (self.n_out * n))()
        self._c_batch(_doubles(params), _doubles(flat), out, n)
        return [tuple(out[i * self.n_out:(i + 1) * self.n_out]) for i in range(n)]

    def sum(self, params, rows):
        """The outputs added up over all data rows (row 0 first), as one tuple."""
        params, flat, n = self._check_rows(params, rows)
        if self.backend == 'python':
            total = [0.0] * self.n_out
            for row in self.batch(params, rows):
                total = [t + r for t, r in zip(total, row)]
            return tuple(total)
        out = (ctypes.c_double * self.n_out)()
        self._c_sum(_doubles(params), _doubles(flat), out, n)
        return tuple(out)

    def _check_rows(self, params, rows):
        params = validate.numbers_of(list(params), 'parameter')
        if len(params) != self.n_params:
            raise TypeError(f'expected {self.n_params} parameters, got {len(params)}')
        rows = [validate.sequence(r, f'row {i}') for i, r in enumerate(rows)]
        bad = [i for i, r in enumerate(rows) if len(r) != self.n_data]
        if bad:
            raise TypeError(f'row {bad[0]} has {len(rows[bad[0]])} values, expected {self.n_data}')
        flat = [x for i, r in enumerate(rows) for x in validate.numbers_of(r, f'row {i}, value')]
        return params, flat, len(rows)

    def _load_python(self):
        filename = f'<codegen {self.program.name} {self.program.digest()}>'
        # Registering the source lets tracebacks and pdb show the generated lines.
        linecache.cache[filename] = (len(self.source), None, self.source.splitlines(True),
                                     filename)
        namespace = {}
        exec(compile(self.source, filename, 'exec'), namespace)
        return namespace[self.program.name]

    def _load_c(self):
        library = load_library(self.path, self._rebuild)
        entry = abi.bind(library, self.program.name)
        for what, expected in (('n_in', self.n_in), ('n_params', self.n_params),
                               ('n_out', self.n_out)):
            found = entry['_' + what]()
            if found != expected:
                raise BuildError(f'{self.path}: {what} is {found}, the program has {expected}')
        one, self._c_batch, self._c_sum = entry[''], entry['_batch'], entry['_sum']
        self._library, self._in, self._out = library, (ctypes.c_double * max(self.n_in, 1))(), \
            (ctypes.c_double * self.n_out)()

        lock = threading.Lock()  # the argument buffers are reused, so one call at a time

        def call(*inputs):
            with lock:
                self._in[:self.n_in] = inputs
                one(self._in, self._out)
                return tuple(self._out)
        return call


def _doubles(values):
    return (ctypes.c_double * max(len(values), 1))(*values)


def build(program, backend='c', n_params=0, flags=None, cc=None, lanes=1, threads=1,
          loop_level=None):
    """Generate source for `program` and load it as a `Compiled` callable.

    C options (see emit_c.to_c): lanes and threads opt into the loop level's vector lanes and
    threads, compiled with FAST_FLAGS; loop_level chooses the loop level (None: when dense
    layers are recovered, or for lanes and threads)."""
    n_params = validate.whole(n_params, 'n_params')  # checked alike before either emitter
    if not 0 <= n_params <= len(program.inputs):
        raise ValueError(f'n_params={n_params}, but {program.name} has {len(program.inputs)} '
                         f'inputs')
    if backend == 'python':
        return Compiled(program, to_python(program), 'python', n_params)
    if backend != 'c':
        raise ValueError(f"backend must be 'c' or 'python', not {backend!r}")
    source = to_c(program, n_params, lanes=lanes, threads=threads, loop_level=loop_level)
    flags = flags or (FAST_FLAGS if lanes > 1 or threads > 1 else DEFAULT_FLAGS)
    path = compile_source(source, flags, cc)
    if path not in _loaded:
        _loaded[path] = Compiled(program, source, 'c', n_params, path,
                                 rebuild=lambda: compile_source(source, flags, cc))
    return _loaded[path]


# ---- loading a cached library, and healing it --------------------------------------------------

KEY_FUNCTION = 'micrograd_cache_key'


def _with_key(source, key):
    """The source plus a function returning its cache key, so a library can say what it is."""
    return (f'{source}\n/* The cache key of this library: checked when it is loaded. */\n'
            f'const char *{KEY_FUNCTION}(void);\n'
            f'const char *{KEY_FUNCTION}(void) {{ return "{key}"; }}\n')


class _Unusable(Exception):
    """A cached library that cannot be what its file name says."""


# libgomp (the fast build's OpenMP) spins 300,000 times at a barrier before it sleeps, which
# is milliseconds: when another process holds a core, the fast build's two threads share the
# other one, and a W2 step took 20 ms instead of 0.6. 10,000 spins changed nothing on an idle
# machine and gave 2.2 ms under that load (OMP_WAIT_POLICY=passive: 1.0 ms loaded, but 0.95 ms
# idle). libgomp reads it once, when it is first loaded: that is when we set it, unless the
# user chose a policy.
OPENMP_SPINCOUNT = '10000'


@contextlib.contextmanager
def _short_openmp_spin():
    if 'GOMP_SPINCOUNT' in os.environ or 'OMP_WAIT_POLICY' in os.environ:
        yield
        return
    os.environ['GOMP_SPINCOUNT'] = OPENMP_SPINCOUNT
    try:
        yield
    finally:
        os.environ.pop('GOMP_SPINCOUNT', None)


def _load_checked(path):
    """ctypes.CDLL(path), if it loads and carries the key its file name says."""
    try:
        with _short_openmp_spin():
            library = ctypes.CDLL(path)
    except OSError as error:
        raise _Unusable(f'it does not load ({error})') from None
    try:
        key_function = getattr(library, KEY_FUNCTION)
    except AttributeError:
        _unload(library)
        raise _Unusable(f'it has no {KEY_FUNCTION}() (not built by this codegen)') from None
    key_function.restype = ctypes.c_char_p
    expected = os.path.basename(path)[:-len('.so')].encode()
    if key_function() != expected:
        found = key_function()
        _unload(library)
        raise _Unusable(f'it is the library {found.decode(errors="replace")!r}, not '
                        f'{expected.decode()!r}')
    return library


def _unload(library):
    """Forget a rejected library, so loading the rebuilt file of the same name loads it anew
    (the dynamic loader would otherwise hand back the one it has by that name)."""
    import _ctypes
    _ctypes.dlclose(library._handle)


def load_library(path, rebuild=None):
    """The loaded library at `path`. One that is unusable is deleted and `rebuild()` (which
    returns the path of a freshly compiled library) is tried once; BuildError names the file
    when that fails too, or when there is no way to rebuild."""
    try:
        return _load_checked(path)
    except _Unusable as why:
        problem = why
    if rebuild is None:
        raise BuildError(f'{path}: unusable cached library: {problem}. Delete it (or run '
                         f'`python -m codegen.cache --clear`) to rebuild it.')
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as error:
        raise BuildError(f'{path}: unusable cached library ({problem}), and it cannot be '
                         f'removed: {error}') from None
    path = rebuild()
    try:
        return _load_checked(path)
    except _Unusable as again:
        raise BuildError(f'{path}: the library was rebuilt and is still unusable: '
                         f'{again}') from None


def compile_source(source, flags=DEFAULT_FLAGS, cc=None):
    """Path of a shared library built from C `source`, from the private cache when it is
    there (no compiler run), else compiled into it. Several sources (a list, or any iterable)
    are translation units linked into one library: each starts compiling, in its own compiler
    process, as soon as it is produced, so a generator's later units are written while the
    compiler works on the earlier ones."""
    compiler = find_compiler(cc)
    if isinstance(source, str):
        return compile_cached(source, compiler, flags, cache_key(source, compiler, flags))
    units = iter(source)
    first = next(units, None)
    if first is None:
        raise ValueError('no C source to compile')
    return _compile_units(first, units, compiler, flags)


def _compile_units(first, more, compiler, flags):
    """Compile `first` and each source of `more` in parallel, each as soon as it is produced;
    then one more unit, the function returning the cache key of all of them (`_with_key`)."""
    root, tag = cache_dir(), f'{os.getpid()}-{next(_unit_count)}'
    sources, paths, objects, jobs = [], [], [], []

    def start(text):
        path = os.path.join(root, f'unit-{tag}-{len(paths)}.c')
        _write_atomically(path, text)
        paths.append(path)
        objects.append(path[:-2] + '.o')
        jobs.append(subprocess.Popen([*compiler, *flags, '-c', '-o', objects[-1], path],
                                     stderr=subprocess.PIPE, text=True))
    failed = True  # the sources of a failed compile stay, for its error message to name
    try:
        for text in itertools.chain([first], more):
            sources.append(text)
            start(text)
        key = cache_key('\f'.join(sources), compiler, flags)
        library = os.path.join(root, key + '.so')
        if not os.path.exists(library):
            start(_with_key('', key))
            for job, path in zip(jobs, paths):
                _, errors = job.communicate()
                if job.returncode != 0:
                    raise CompileError(f'{shlex.join(compiler)} failed (exit {job.returncode})'
                                       f' on {path}:\n{errors.strip()}')
            _build_library(key, compiler, flags, objects, f'the objects {objects}')
            for i, path in enumerate(paths):  # kept beside the library: <key>-0.c, <key>-1.c
                os.replace(path, os.path.join(root, f'{key}-{i}.c'))
        failed = False
        return library
    finally:
        for job in jobs:
            if job.poll() is None:
                job.kill()
                job.wait()
        for path in objects + ([] if failed else paths):
            if os.path.exists(path):
                os.unlink(path)


_unit_count = itertools.count()


def _build_library(key, compiler, flags, inputs, what):
    """Run the compiler on `inputs` into a temporary file and rename it to <key>.so: the rename
    is atomic, so another process never loads half a library."""
    library = os.path.join(cache_dir(), key + '.so')
    handle, temporary = tempfile.mkstemp(dir=cache_dir(), prefix=key, suffix='.so.tmp')
    os.close(handle)
    try:
        result = subprocess.run([*compiler, *flags, '-o', temporary, *inputs, '-lm'],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise CompileError(f'{shlex.join(compiler)} failed (exit {result.returncode}) on '
                               f'{what}:\n{result.stderr.strip()}')
        os.replace(temporary, library)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return library


def find_compiler(cc=None):
    """The C compiler command to use, as a list of words: `cc` argument, else $CC, else `cc`
    on PATH. It is split as a shell would (as make does), so CC='ccache gcc' or 'gcc -m64'
    work; the first word is looked up on PATH."""
    command = cc or os.environ.get('CC') or 'cc'
    try:
        words = shlex.split(command)
    except ValueError as error:
        raise CompilerNotFound(f'cannot read the compiler command {command!r}: {error}') from None
    path = shutil.which(words[0]) if words else None
    if path is None:
        source = ' from $CC' if not cc and 'CC' in os.environ else ''
        raise CompilerNotFound(
            f"no C compiler found (looked for {command!r}{source}"
            "). Install one (Debian/Ubuntu: apt-get install gcc; macOS: xcode-select --install) "
            "or use backend='python'.")
    return [path] + words[1:]


def cache_key(source, compiler, flags):
    """Hash of everything that determines the library: source, compiler identity (its real
    path, size and mtime, so a cache hit runs no compiler), flags and codegen version."""
    real = os.path.realpath(compiler[0])
    stat = os.stat(real)
    identity = [source, real, compiler[1:], stat.st_size, stat.st_mtime_ns, list(flags),
                VERSION, generator_fingerprint()]
    if any('native' in flag for flag in flags):  # code for this CPU only
        identity.append(_cpu_identity())
    return hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:32]


@functools.lru_cache(maxsize=None)
def generator_fingerprint():
    """A hash of the code generator's own source (codegen/ and the op table). A recipe (traced
    programs) finds its library without generating source, so without this an edited emitter
    would keep loading libraries that the old one wrote, until VERSION changed."""
    here = os.path.dirname(os.path.abspath(__file__))
    micrograd_dir = os.path.join(os.path.dirname(here), 'micrograd')
    files = sorted(os.path.join(here, f) for f in os.listdir(here) if f.endswith('.py'))
    files += [os.path.join(micrograd_dir, f) for f in ('ops.py', 'ieee.py')]
    digest = hashlib.sha256()
    for path in files:
        with open(path, 'rb') as file:
            digest.update(file.read())
    return digest.hexdigest()[:16]


def _cpu_identity():
    """The CPU's model and instruction-set flags: a VM may report a generic model name
    ('AMD EPYC') for chips with different vector units, so the flags line counts too."""
    try:
        with open('/proc/cpuinfo') as info:
            lines = [line for line in info if line.startswith(('model name', 'flags'))]
        return ''.join(sorted(set(lines)))
    except OSError:
        return platform.machine() + platform.processor()


def cache_dir():
    """$MICROGRAD_CACHE, else $XDG_CACHE_HOME/micrograd, else ~/.cache/micrograd; created
    private (0700), and refused if someone else owns it or can write to it."""
    variable = 'MICROGRAD_CACHE' if os.environ.get('MICROGRAD_CACHE') else None
    root = os.environ.get('MICROGRAD_CACHE') or os.path.join(
        os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache'), 'micrograd')
    try:
        os.makedirs(root, mode=0o700, exist_ok=True)
        if not os.path.isdir(root):
            raise FileExistsError(f'{root} exists and is not a directory')
    except OSError as error:
        where = f' (from ${variable})' if variable else ''
        raise BuildError(f'cannot use {root}{where} as the compiler cache directory: '
                         f'{error.strerror or error}. Point $MICROGRAD_CACHE at a directory '
                         f'(it is created if missing).') from None
    info = os.stat(root)
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise BuildError(f'refusing to use cache directory {root}: it must belong to you and '
                         f'not be writable by others (mode {oct(info.st_mode & 0o777)}). '
                         f'Fix with: chmod 700 {root}, or set $MICROGRAD_CACHE.')
    return root


def compile_cached(source, compiler, flags, key):
    """Path of the compiled library for `key`, compiling it first if it is not cached."""
    root = cache_dir()
    library = os.path.join(root, key + '.so')
    if os.path.exists(library):
        return library
    c_path = os.path.join(root, key + '.c')
    _write_atomically(c_path, _with_key(source, key))
    return _build_library(key, compiler, flags, [c_path], c_path)


def cached_library(recipe, flags=DEFAULT_FLAGS, cc=None):
    """The library remembered for `recipe` (text that determines a source, e.g. traced
    programs and options), so callers can skip generating the source; None if there is none."""
    try:
        with open(_recipe_path(recipe, flags, cc)) as file:
            key = file.read().strip()
    except OSError:
        return None
    library = os.path.join(cache_dir(), key + '.so')
    return library if re.fullmatch(r'[0-9a-f]{32}', key) and os.path.exists(library) else None


def remember_library(recipe, flags, cc, library):
    """Note that `library` (in the cache) is what `recipe` compiles to."""
    _write_atomically(_recipe_path(recipe, flags, cc), os.path.basename(library)[:-len('.so')])


def _recipe_path(recipe, flags, cc):
    return os.path.join(cache_dir(), cache_key(recipe, find_compiler(cc), flags) + '.recipe')


def _write_atomically(path, text, mode=None):
    """Write to a temporary file beside `path`, then rename: readers see all or nothing.
    mode=None keeps mkstemp's owner-only 0600 (the private cache)."""
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path) or '.', suffix='.tmp')
    try:
        with os.fdopen(handle, 'w') as file:
            file.write(text)
        if mode is not None:
            os.chmod(temporary, mode)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def jit(outputs, inputs, wrt=None, backend='c', optimize=True, n_params=0, name='f', **options):
    """trace -> grad (for `wrt`, default all inputs; wrt=() for none) -> optimize -> build."""
    inputs = list(inputs)
    program = trace(outputs, inputs, name)
    if wrt is None or len(wrt):
        positions = {id(v): i for i, v in enumerate(inputs)}
        chosen = inputs if wrt is None else list(wrt)
        missing = [v for v in chosen if id(v) not in positions]
        if missing:
            raise ValueError(f'wrt has {missing[0]!r}, which is not one of the inputs')
        program = grad_program(program, [program.inputs[positions[id(v)]] for v in chosen])
    if optimize:
        program = optimize_program(program)
    return build(program, backend, n_params, **options)


def save(program, path, n_params=0):
    """Write standalone source for `program`: `.py` for Python, `.c` (+ `.h`) for C."""
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()  # X.C is a C file too
    if suffix not in ('.py', '.c'):
        raise ValueError(f'save() writes .py or .c files, not {path!r}')
    files = [(path, to_python(program))] if suffix == '.py' else \
        [(path, to_c(program, n_params)), (path[:-2] + '.h', c_header(program))]
    for name, text in files:
        _save_file(name, text)
    return path


def _save_file(path, text):
    """Write a file meant to be shipped: readable as the umask allows (0644 under 022), like
    any file a program creates; an error names `path`, not the temporary file."""
    umask = os.umask(0)
    os.umask(umask)
    try:
        _write_atomically(path, text, mode=0o666 & ~umask)
    except OSError as error:
        raise OSError(error.errno, f'cannot write {path}: {error.strerror}', path) from None


def c_header(program):
    """Prototypes of the entry points `to_c` defines."""
    return abi.c_header(program.name)
