"""THE cross-check: one semantics, four evaluators.

For random graphs (shared sub-expressions, every op of the table) and random inputs (0, ±0, ±inf,
nan, huge, tiny, subnormal), the engine's forward value and backward() gradients equal
codegen.evaluate(grad(trace(...))), the generated Python and the generated C, before and after
codegen.optimize. "Equal" is `exact.same`: the same bits, zero's sign included, any nan equal to
any nan.

C compiles cost ~0.15 s each, so the C properties draw fewer graphs and evaluate each compiled
graph on many input rows through Compiled.batch.
"""
import functools
import itertools
import math
import random

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import codegen
from codegen import Instr, Program
from codegen_support import (assert_same, build_c, build_module, emit_c_module, engine,
                             ordered_sum, traced, use_private_cache)
from micrograd.ops import OPS
from strategies import (SPECIAL_EXPONENTS, SPECIALS, Recipe, cancelling_recipes, inputs,
                        mixed_finite_floats, recipes)

C_SETTINGS = settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Values for the many rows each compiled graph is run on: every special, and ordinary numbers.
ROW_VALUES = SPECIALS + (0.1, -0.3, 2.5, -7.0, 1e-5, 42.0, 0.7390851332151607)


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    return use_private_cache(tmp_path, monkeypatch)


def many_rows(recipe, seed, n=120):
    """n input rows for `recipe`, every value drawn from ROW_VALUES (reproducibly from seed)."""
    rng = random.Random(seed)
    return [tuple(rng.choice(ROW_VALUES) for _ in range(recipe.n_inputs)) for _ in range(n)]


def python_and_interpreter(program):
    """The evaluators of a program that need no compiler, each a function of an input row."""
    module = codegen.build(program, 'python')
    return {'interpreter': lambda xs: codegen.evaluate(program, xs),
            'generated Python': lambda xs: module(*xs)}


def check_rows_against_engine(recipe, rows, evaluators, what):
    for xs in rows:
        expected = engine(recipe, xs)
        for name, evaluate in evaluators.items():
            assert_same(expected, evaluate(xs), f'{name} ({what}) on inputs {xs}\n{recipe}')


# ---- engine == interpreter == generated Python ---------------------------------------------

@settings(max_examples=150)
@given(recipe=recipes(), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_interpreter_and_generated_python_equal_the_engine_before_and_after_optimize(recipe, seed,
                                                                                     data):
    # Rows are cheap here, so each graph meets many combinations of special values.
    rows = data.draw(st.lists(inputs(recipe), min_size=1, max_size=4), label='rows') + \
        many_rows(recipe, seed, n=40)
    program = traced(recipe)
    for what, p in (('unoptimized', program), ('optimized', codegen.optimize(program))):
        check_rows_against_engine(recipe, rows, python_and_interpreter(p), what)


@pytest.mark.parametrize('name', sorted(OPS))
def test_every_op_agrees_on_every_special_value_in_python_backends(name):
    # Each op alone on the full grid of special arguments, so no row of the table and no
    # special value depends on the random draw.
    for recipe in single_op_recipes(name):
        rows = list(itertools.product(SPECIALS, repeat=recipe.n_inputs))
        check_rows_against_engine(recipe, rows, python_and_interpreter(traced(recipe)), name)


def single_op_recipes(name):
    """Recipes applying op `name` once to its inputs (pow: once per special exponent)."""
    op = OPS[name]
    params = SPECIAL_EXPONENTS if op.param else (None,)
    return [Recipe(op.arity, ((name, tuple(range(op.arity)), p),)) for p in params]


# ---- an input feeding one node twice, partials of opposite sign -------------------------------

@settings(max_examples=300)
@given(recipe=cancelling_recipes(), x=mixed_finite_floats() | st.sampled_from(SPECIALS))
def test_terms_of_opposite_sign_reaching_one_input_add_up_in_the_engines_order(recipe, x):
    # x - x, x * -x, x / x scaled by up to 2**60: the input's gradient adds 1, 2**53 and -2**53
    # (say), and only the engine's order of those additions gives the engine's bits.
    program = traced(recipe)
    check_rows_against_engine(recipe, [(x,)], python_and_interpreter(program), 'unoptimized')
    check_rows_against_engine(recipe, [(x,)], python_and_interpreter(codegen.optimize(program)),
                              'optimized')


@pytest.mark.needs_cc
@C_SETTINGS
@given(recipe=cancelling_recipes(),
       rows=st.lists(st.tuples(mixed_finite_floats() | st.sampled_from(SPECIALS)), min_size=1,
                     max_size=40))
def test_terms_of_opposite_sign_add_up_in_the_engines_order_in_c(recipe, rows, private_cache):
    expected = [engine(recipe, xs) for xs in rows]
    program = traced(recipe)
    for what, p in (('unoptimized', program), ('optimized', codegen.optimize(program))):
        for xs, want, got in zip(rows, expected, build_c(p).batch([], rows)):
            assert_same(want, got, f'C batch ({what}) on inputs {xs}\n{recipe}')


# ---- generated C -----------------------------------------------------------------------------

@pytest.mark.needs_cc
@C_SETTINGS
@given(recipe=recipes(), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_generated_c_equals_the_engine_before_and_after_optimize(recipe, seed, data,
                                                                 private_cache):
    rows = many_rows(recipe, seed) + data.draw(st.lists(inputs(recipe), max_size=8))
    expected = [engine(recipe, xs) for xs in rows]
    program = traced(recipe)
    for what, p in (('unoptimized', program), ('optimized', codegen.optimize(program))):
        compiled = build_c(p)
        for xs, want, got in zip(rows, expected, compiled.batch([], rows)):
            assert_same(want, got, f'C batch ({what}) on inputs {xs}\n{recipe}\n{p}')
        for xs, want in list(zip(rows, expected))[:5]:  # the one-row entry point too
            assert_same(want, compiled(*xs), f'C single call ({what}) on inputs {xs}')


@pytest.mark.needs_cc
@pytest.mark.parametrize('name', sorted(OPS))
def test_every_op_agrees_on_every_special_value_in_c(name, private_cache):
    for recipe in single_op_recipes(name):
        rows = list(itertools.product(SPECIALS, repeat=recipe.n_inputs))
        compiled = build_c(traced(recipe))
        for xs, got in zip(rows, compiled.batch([], rows)):
            assert_same(engine(recipe, xs), got, f'C {name} on {xs}\n{recipe}')


@pytest.mark.needs_cc
@settings(max_examples=10, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(recipe=recipes(), seed=st.integers(0, 2**32 - 1))
def test_table_driven_c_equals_the_engine(recipe, seed, private_cache, monkeypatch):
    # Above STRAIGHT_LINE_LIMIT instructions the C is a table run by a loop; force that form on
    # small graphs so every op and literal outputs (gradients 0.0, 1.0) go through it too.
    monkeypatch.setattr(build_module, 'to_c',
                        functools.partial(emit_c_module.to_c, straight_line_limit=-1))
    rows = many_rows(recipe, seed, n=60)   # several blocks of rows, the last one partial
    expected = [engine(recipe, xs) for xs in rows]
    program = traced(recipe)
    for what, p in (('unoptimized', program), ('optimized', codegen.optimize(program))):
        compiled = build_c(p)
        assert 'switch (f_OP[i])' in compiled.source
        for xs, want, got in zip(rows, expected, compiled.batch([], rows)):
            assert_same(want, got, f'table-driven C batch ({what}) on {xs}\n{recipe}')
        for xs, want in list(zip(rows, expected))[:5]:
            assert_same(want, compiled(*xs), f'table-driven C single call ({what}) on {xs}')
        assert_same(ordered_sum(expected), compiled.sum([], rows), f'table-driven C sum ({what})')


# ---- batches with shared parameters, and sums over rows ---------------------------------------

BACKENDS = ['python', pytest.param('c', marks=pytest.mark.needs_cc),
            pytest.param('c-table', marks=pytest.mark.needs_cc)]


def build_backend(backend, program, n_params, monkeypatch):
    """`program` built for 'python', 'c', or 'c-table' (C forced into its table-driven form)."""
    if backend == 'python':
        return codegen.build(program, 'python', n_params=n_params)
    if backend == 'c-table':
        monkeypatch.setattr(build_module, 'to_c',
                            functools.partial(emit_c_module.to_c, straight_line_limit=-1))
    return build_c(program, n_params=n_params)


# Row values for the two halves of the batch property: the specials (where most sums are inf or
# nan whatever the order), and finite values of mixed magnitude and sign (where order shows).
ROW_STRATEGIES = {'special': st.sampled_from(ROW_VALUES), 'finite': mixed_finite_floats()}


@pytest.mark.parametrize('values', sorted(ROW_STRATEGIES))
@pytest.mark.parametrize('backend', BACKENDS)
@settings(max_examples=10, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(recipe=recipes(max_inputs=3), data=st.data())
def test_parameters_are_shared_by_all_rows_and_sum_adds_rows_in_order(backend, values, recipe,
                                                                      data, private_cache,
                                                                      monkeypatch):
    n_params = data.draw(st.integers(0, recipe.n_inputs), label='n_params')
    value = ROW_STRATEGIES[values]
    params = data.draw(st.tuples(*[value] * n_params), label='params')
    rows = data.draw(st.lists(st.tuples(*[value] * (recipe.n_inputs - n_params)), min_size=1,
                              max_size=20), label='rows')
    compiled = build_backend(backend, codegen.optimize(traced(recipe)), n_params, monkeypatch)
    expected = [engine(recipe, params + row) for row in rows]
    for row, want, got in zip(rows, expected, compiled.batch(params, rows)):
        assert_same(want, got, f'{backend} batch, params {params}, row {row}\n{recipe}')
    assert_same(ordered_sum(expected), compiled.sum(params, rows), f'{backend} sum\n{recipe}')


# w * x + b - x and its gradients, w shared by all rows: the value and d/dw (= x) of each row
# carry the row's own magnitude, so their sum over rows depends on the order of the rows.
LINEAR = Recipe(3, (('mul', (0, 2), None), ('add', (3, 1), None), ('sub', (4, 2), None)))


@pytest.mark.parametrize('backend', BACKENDS)
def test_sum_adds_rows_in_order_on_many_mixed_magnitude_rows(backend, private_cache, monkeypatch):
    # One build, hundreds of row sets: enough draws that a sum in any other order shows.
    compiled = build_backend(backend, codegen.optimize(traced(LINEAR)), 1, monkeypatch)

    row = st.tuples(mixed_finite_floats(), mixed_finite_floats())

    @settings(max_examples=300)
    @given(w=mixed_finite_floats(), rows=st.lists(row, min_size=2, max_size=30))
    def sums_in_order(w, rows):
        expected = [engine(LINEAR, (w,) + row) for row in rows]
        assert_same(ordered_sum(expected), compiled.sum([w], rows), f'{backend} sum of {rows}')
    sums_in_order()


def test_sum_of_no_rows_is_zero():
    x = codegen.trace(neuron_output(), [])  # no inputs at all: every leaf is a constant
    assert codegen.build(x, 'python').sum([], []) == (0.0,)


def neuron_output():
    from micrograd import Value
    return (Value(0.5) * Value(2.0) + Value(-1.0)).tanh()


@pytest.mark.needs_cc
def test_a_program_without_inputs_compiles_and_runs(private_cache):
    program = codegen.trace(neuron_output(), [])
    compiled = build_c(program)
    assert_same((math.tanh(0.0),), compiled())
    assert_same((0.0,), compiled.sum([], []))


@pytest.mark.needs_cc
@pytest.mark.parametrize('straight_line_limit', [emit_c_module.STRAIGHT_LINE_LIMIT, 0])
def test_the_c_of_any_valid_program_is_warning_free_even_with_dead_code_and_unused_inputs(
        straight_line_limit, private_cache, monkeypatch):
    # trace and grad never leave dead code, but a hand-built Program or a custom pass list may.
    monkeypatch.setattr(build_module, 'to_c', functools.partial(
        emit_c_module.to_c, straight_line_limit=straight_line_limit))
    program = codegen.check(Program('f', ('x', 'unused'), (
        Instr('a', OPS['tanh'], ('x',)), Instr('dead', OPS['exp'], ('a',))), ('a', 1.0)))
    assert build_c(program)(0.5, 2.0) == (math.tanh(0.5), 1.0)
