"""Labels are user text: nothing in them may reach generated source unsanitised.

Hostile labels on inputs, intermediate nodes and outputs: comment terminators, quotes, newlines,
`__import__`, C and Python keywords, the ABI's own names, C library macros, unicode. The
generated Python and C must not contain them raw, must still compile, and must still compute
the engine's numbers. (The cache's refusal of a directory others can write is in test_build.)
"""
import ast
import keyword
import os
import re
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import codegen
from codegen_support import (assert_same, build_c, engine, label_graph, slots_on_values,
                             use_private_cache)
from micrograd import Value
from strategies import inputs, recipes

C99_KEYWORDS = set('''auto break case char const continue default do double else enum extern float
    for goto if inline int long register restrict return short signed sizeof static struct switch
    typedef union unsigned void volatile while _Bool _Complex _Imaginary'''.split())
# Object-like macros of <math.h>/<stdlib.h> (glibc) and ones gcc predefines in its default GNU
# mode: a register with such a name is not a variable at all after preprocessing.
C_MACROS = set('''NULL NAN INFINITY HUGE_VAL HUGE_VALF HUGE_VALL FP_NAN FP_INFINITE FP_ZERO
    FP_NORMAL FP_SUBNORMAL FP_ILOGB0 FP_ILOGBNAN MATH_ERRNO MATH_ERREXCEPT math_errhandling
    EXIT_SUCCESS EXIT_FAILURE RAND_MAX MB_CUR_MAX M_PI M_E MAXFLOAT linux unix i386'''.split())
# Names the generated code itself defines, imports or calls.
GENERATED = set('''math inf nan copysign floor fabs tanh exp log pow div sigmoid sign malloc
    free'''.split())

FRAGMENTS = [
    '*/', '/*', '"', "'", '\n', '\r', '\\', '#', '//', '??/', '{', '}', ';', '(', ')', ' ', '\t',
    '__import__', 'os.system(', "__import__('os').system('echo pwned')",
    'x); system("echo pwned"); (', '\nraise SystemExit("injected")\n', '*/ #error injected /*',
    'return', 'in', 'def', 'lambda', 'import', 'None', 'int', 'double', 'while', 'static',
    'mg_p', 'mg_x', 'mg_out', 'NAN', 'INFINITY', 'HUGE_VAL', 'RAND_MAX', 'EXIT_FAILURE',
    'FP_ILOGB0', 'linux', 'unix', 'math_errhandling', 'exp', 'tanh', 'pow', 'v0', 't0', 'g_x',
    'x0', 'f', 'λ', 'é', '\u2028', '\x00', '\x0c',
]
hostile_labels = st.one_of(
    st.sampled_from(FRAGMENTS),
    st.lists(st.sampled_from(FRAGMENTS), min_size=2, max_size=4).map(''.join),
    st.text(max_size=12),
)


def safe_register_name(name):
    return (re.fullmatch(r'[A-Za-z][A-Za-z0-9_]*', name) is not None
            and not keyword.iskeyword(name) and name not in C99_KEYWORDS
            and name not in C_MACROS and name not in GENERATED and not name.startswith('mg_'))


def needs_sanitising(label):
    """Text the generators must not copy: anything but letters, digits, _ and the dots that
    output names keep in comments (lower.output_name: a label '.1' is shown as it is)."""
    return re.fullmatch(r'[A-Za-z0-9_.]*', label) is None


def labelled_program(recipe, labels):
    """The recipe's program (value and gradients) with `labels` on every node."""
    inputs, slots = slots_on_values(recipe, [0.5] * recipe.n_inputs)
    label_graph(inputs, [slots[-1]], labels)
    return codegen.grad(codegen.trace(slots[-1], inputs))


def assert_no_label_leaks(labels, source, unlabelled_source):
    """A label that is not plain identifier text only appears where the generator would put
    the same text anyway (in the source of the same graph without labels)."""
    for label in labels:
        if label and needs_sanitising(label) and label not in unlabelled_source:
            assert label not in source, f'label {label!r} reached the generated source raw'


def generated_python_names(program):
    names = {'math', 'copysign', 'fabs', 'inf', 'nan', 'tanh', program.name}
    return names | {'div', 'exp', 'log', 'pow', 'sigmoid', 'sign'}


@settings(max_examples=150)
@given(recipe=recipes(max_nodes=6), labels=st.lists(hostile_labels, min_size=1, max_size=8),
       data=st.data())
def test_hostile_labels_never_reach_generated_python_and_it_still_computes_the_same(recipe, labels,
                                                                                    data):
    program = labelled_program(recipe, labels)
    for name in program.inputs + tuple(i.out for i in program.instrs):
        assert safe_register_name(name), f'unsafe register name {name!r}'
    source = codegen.to_python(program)
    assert_no_label_leaks(labels, source, codegen.to_python(labelled_program(recipe, [''])))
    ast.parse(source)
    namespace = {}
    exec(compile(source, 'generated.py', 'exec'), namespace)  # runs nothing but definitions
    assert set(namespace) - {'__builtins__'} <= generated_python_names(program)
    xs = data.draw(inputs(recipe))
    assert_same(engine(recipe, xs), namespace[program.name](*xs), f'{labels!r}\n{source}')


@pytest.mark.needs_cc
@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(recipe=recipes(max_nodes=6), labels=st.lists(hostile_labels, min_size=1, max_size=8),
       data=st.data())
def test_hostile_labels_never_reach_generated_c_and_it_still_computes_the_same(recipe, labels,
                                                                               data, tmp_path,
                                                                               monkeypatch):
    use_private_cache(tmp_path, monkeypatch)
    program = labelled_program(recipe, labels)
    source = codegen.to_c(program)
    assert_no_label_leaks(labels, source, codegen.to_c(labelled_program(recipe, [''])))
    compiled = build_c(program)                      # ISO C99, every warning an error
    xs = data.draw(inputs(recipe))
    assert_same(engine(recipe, xs), compiled(*xs), f'{labels!r}\n{source}')
    compile_with_plain_cc(source, tmp_path)          # GNU mode, as a user would compile it


def compile_with_plain_cc(source, tmp_path):
    c_file = tmp_path / 'plain.c'
    c_file.write_text(source)
    result = subprocess.run([os.environ.get('CC', 'cc'), '-c', str(c_file), '-o',
                             str(tmp_path / 'plain.o')], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# ---- the cases found so far, kept as plain regression tests -----------------------------------

def test_an_output_label_with_a_newline_cannot_inject_python():
    x = Value(0.5, label='x')
    y = x * 2.0
    y.label = 'y\nraise SystemExit("injected")\n'
    program = codegen.grad(codegen.trace(y, [x]))
    source = codegen.to_python(program)
    assert 'raise SystemExit' not in source
    assert codegen.build(program, 'python')(0.5) == (1.0, 2.0)


@pytest.mark.parametrize('label', ['\x00', '\ud800', 'λ\u2028'])
def test_an_output_label_that_is_not_printable_ascii_still_gives_loadable_python(label, tmp_path):
    x = Value(0.5, label='x')
    y = x * 2.0
    y.label = label
    program = codegen.trace(y, [x])
    assert codegen.build(program, 'python')(0.5) == (1.0,)
    saved = tmp_path / 'saved.py'
    codegen.save(program, str(saved))
    namespace = {}
    exec(compile(saved.read_text(encoding='utf-8'), str(saved), 'exec'), namespace)
    assert namespace[program.name](0.5) == (1.0,)


@pytest.mark.needs_cc
@pytest.mark.parametrize('label', sorted(C_MACROS | GENERATED))
def test_labels_that_are_c_library_or_compiler_macros_do_not_become_c_variables(
        label, tmp_path, monkeypatch):
    use_private_cache(tmp_path, monkeypatch)
    x = Value(0.5, label=label)
    y = (x * 2.0).exp()
    y.label = label
    program = codegen.grad(codegen.trace(y, [x]))
    assert safe_register_name(program.inputs[0])
    assert build_c(program)(0.5) == codegen.evaluate(program, [0.5])
    compile_with_plain_cc(codegen.to_c(program), tmp_path)


def test_a_program_name_that_is_not_an_identifier_is_refused():
    # The name becomes `def <name>(` and C function names: it must be plain identifier text.
    x = Value(0.5)
    with pytest.raises(ValueError):
        codegen.trace(x * 2.0, [x], name='f(x):\n    import os\ndef g')


@pytest.mark.parametrize('name', ['int', 'exp', 'main', 'mg_p'])
def test_a_program_name_that_clashes_with_c_or_the_generated_code_is_refused(name):
    x = Value(0.5)
    with pytest.raises(ValueError):
        codegen.trace(x * 2.0, [x], name=name)
