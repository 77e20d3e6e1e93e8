"""Optimisation passes: exact under IEEE-754 (every input, inf and nan included, gives the same
outputs, zero's sign aside), shrinking where they should, and idempotent together."""
import itertools
import math

import pytest
from hypothesis import given, settings, strategies as st

import codegen
from codegen import Instr, Program
from codegen.passes import cse, dce, fold, simplify
from codegen_support import assert_same, traced
from micrograd import Value
from micrograd.ops import EXP, MUL, NEG, TANH
from strategies import SPECIALS, inputs, recipes

PASSES = {'fold': fold, 'simplify': simplify, 'cse': cse, 'dce': dce,
          'optimize': codegen.optimize}


@pytest.mark.parametrize('name', sorted(PASSES))
@settings(max_examples=100)
@given(recipe=recipes(), data=st.data())
def test_each_pass_preserves_the_programs_outputs_and_never_grows_it(name, recipe, data):
    program = traced(recipe)
    rewritten = codegen.check(PASSES[name](program))
    assert len(rewritten.instrs) <= len(program.instrs)
    assert rewritten.inputs == program.inputs
    assert rewritten.output_names == program.output_names
    for xs in data.draw(st.lists(inputs(recipe), min_size=1, max_size=5), label='rows'):
        assert_same(codegen.evaluate(program, xs), codegen.evaluate(rewritten, xs),
                    f'{name} on {xs}\n{program}\n{rewritten}')


@settings(max_examples=100)
@given(recipe=recipes())
def test_optimize_is_idempotent_and_leaves_nothing_for_any_pass(recipe):
    optimized = codegen.optimize(traced(recipe))
    assert str(codegen.optimize(optimized)) == str(optimized)
    for name, run in PASSES.items():
        assert str(run(optimized)) == str(optimized), name


# ---- each pass does its job ----------------------------------------------------------------------

def listing(program):
    return [str(i) for i in program.instrs]


def test_fold_computes_instructions_whose_arguments_are_all_literals():
    x = Value(1.0, label='x')
    out = Value(2.0) * Value(3.0) + x
    assert listing(fold(codegen.trace(out, [x]))) == ['v1 = add 6.0 x']


def test_fold_computes_specials_with_the_ops_own_forward():
    x = Value(1.0, label='x')
    out = x + Value(0.0).log() * (Value(-8.0) ** (1.0 / 3.0))  # -inf * nan
    folded = fold(codegen.trace(out, [x]))
    assert len(folded.instrs) == 1 and math.isnan(folded.instrs[0].args[1])


def test_folding_an_output_makes_the_output_a_literal():
    x = Value(1.0, label='x')
    folded = fold(codegen.trace([x.exp(), Value(2.0).exp()], [x]))
    assert folded.outputs == ('v0', math.exp(2.0))


@pytest.mark.parametrize('build', [
    lambda x: x * 1.0, lambda x: 1.0 * x, lambda x: x / 1.0, lambda x: x - 0.0, lambda x: -(-x),
    lambda x: x + (-0.0), lambda x: -0.0 + x,   # exact even for x = -0.0 (unlike x + 0.0)
])
def test_simplify_removes_exact_identities(build):
    x = Value(1.0, label='x')
    out = build(x.tanh())
    program = dce(simplify(codegen.trace(out, [x])))  # -(-x) leaves the inner neg dead
    assert listing(program) == ['v0 = tanh x'] and program.outputs == ('v0',)


def test_cse_shares_equal_instructions_and_commuted_adds_and_muls():
    x, y = Value(1.0, label='x'), Value(2.0, label='y')
    out = x.tanh() * x.tanh() + (x * y + y * x)
    program = dce(cse(codegen.trace(out, [x, y])))
    assert [i.op.name for i in program.instrs] == ['tanh', 'mul', 'mul', 'add', 'add']


def test_cse_tells_apart_different_parameters_and_non_commutative_argument_orders():
    x, y = Value(1.0, label='x'), Value(2.0, label='y')
    out = x ** 2 + x ** 3 + (x - y) + (y - x) + x / y + y / x
    program = codegen.trace(out, [x, y])
    assert len(cse(program).instrs) == len(program.instrs)


def test_dce_removes_what_no_output_needs():
    program = Program('f', ('x',), (Instr('a', TANH, ('x',)), Instr('dead', EXP, ('a',)),
                                    Instr('b', NEG, ('a',))), ('b',))
    assert listing(dce(program)) == ['a = tanh x', 'b = neg a']
    assert dce(dce(program)) == dce(program)


def test_optimize_shrinks_the_neuron_gradient():
    w, x, b = Value(0.5, label='w'), Value(2.0, label='x'), Value(-1.0, label='b')
    out = (w * x + b * 1.0).tanh() + 0.0 * Value(3.0)
    program = codegen.grad(codegen.trace(out, [w, x, b]))
    assert len(codegen.optimize(program).instrs) < len(program.instrs)


# ---- rewrites that are wrong for inf and nan never happen ------------------------------------

@pytest.mark.parametrize('build', [
    lambda x: x * 0.0, lambda x: 0.0 * x, lambda x: x - x, lambda x: x / x, lambda x: x + (-x),
    lambda x: 0.0 / x, lambda x: x ** 0.0 * x, lambda x: (x * 0.0) + 1.0,
])
def test_optimize_never_assumes_x_times_zero_is_zero_or_x_minus_x_is_zero(build):
    # x*0 is nan for x = inf; x-x is nan for inf and nan. Optimising must not hide that.
    x = Value(1.0, label='x')
    program = codegen.grad(codegen.trace(build(x), [x]))
    optimized = codegen.optimize(program)
    assert any(isinstance(a, str) for i in optimized.instrs for a in i.args)
    for value in SPECIALS:
        assert_same(codegen.evaluate(program, [value]), codegen.evaluate(optimized, [value]),
                    f'at {value}\n{optimized}')
    assert any(math.isnan(codegen.evaluate(optimized, [value])[0]) for value in SPECIALS)


def test_optimize_keeps_the_sum_of_two_terms_exact_on_every_pair_of_specials():
    x, y = Value(1.0, label='x'), Value(1.0, label='y')
    program = codegen.grad(codegen.trace((x * y - y * x) * 1.0 + (x - 0.0) / 1.0, [x, y]))
    optimized = codegen.optimize(program)
    for xs in itertools.product(SPECIALS, repeat=2):
        assert_same(codegen.evaluate(program, xs), codegen.evaluate(optimized, xs), str(xs))


@pytest.mark.parametrize('run, dropped', [
    (simplify, Instr('v0', MUL, ('x', 1.0), note='grad of: block')),
    (cse, Instr('v0', TANH, ('x',), note='grad of: block')),
    (fold, Instr('v0', TANH, (0.5,), note='grad of: block')),
    (dce, Instr('v0', EXP, ('x',), note='grad of: block'))])
def test_a_dropped_instruction_hands_its_note_to_the_next_one(run, dropped):
    # The first instruction of a gradient block carries its '# grad of:' comment.
    program = Program('f', ('x',), (Instr('t', TANH, ('x',)), dropped,
                                     Instr('v1', MUL, ('t', 'x'))), ('v1',))
    after = run(program)
    assert 'v0' not in [i.out for i in after.instrs]
    assert [i.note for i in after.instrs if i.out == 'v1'] == ['grad of: block']
