"""codegen.grad: reverse mode over a Program, from the same op table as the engine's backward().

The generated gradient must equal the engine's bit for bit (same partials, summed in the same
order), for any subset of inputs and for any output of a multi-output program; and on smooth
graphs it must agree with central differences.
"""
import math

import pytest
from hypothesis import given, settings, strategies as st

import codegen
from codegen_support import assert_same, engine, traced
from micrograd import Value
from micrograd.ops import SIGN
from strategies import inputs, recipes, recipes_with_inputs


def grads_of(out, inputs):
    """The engine's (value, *gradients) of `out`, on the graph as built."""
    out.backward()
    return (out.data,) + tuple(v.grad for v in inputs)


def codegen_grads(out, inputs, xs, **grad_options):
    program = codegen.check(codegen.grad(codegen.trace(out, inputs), **grad_options))
    return codegen.evaluate(program, xs)


# ---- equal to the engine ------------------------------------------------------------------

@settings(max_examples=200)
@given(recipe=recipes(), data=st.data())
def test_gradient_with_respect_to_any_subset_of_inputs_equals_the_engine(recipe, data):
    wrt = data.draw(st.lists(st.integers(0, recipe.n_inputs - 1), unique=True), label='wrt')
    xs = data.draw(inputs(recipe), label='xs')
    program = codegen.check(traced(recipe, wrt=wrt))
    assert_same(engine(recipe, xs, wrt=wrt), codegen.evaluate(program, xs), str(recipe))


@settings(max_examples=200)
@given(recipe=recipes(), data=st.data())
def test_gradient_of_any_output_of_a_multi_output_program_equals_the_engine(recipe, data):
    # trace([a, b]) orders instructions by a depth-first walk from a, then b; the engine's
    # b.backward() walks from b alone. The sums of gradients must still come out the same.
    n_slots = recipe.n_inputs + len(recipe.steps)
    outputs = data.draw(st.lists(st.integers(recipe.n_inputs, n_slots - 1), min_size=1,
                                 max_size=3), label='output slots')
    of = data.draw(st.integers(0, len(outputs) - 1), label='of')
    xs = data.draw(inputs(recipe), label='xs')
    program = codegen.check(traced(recipe, outputs=outputs, of=of))
    assert_same(engine(recipe, xs, outputs=outputs, of=of), codegen.evaluate(program, xs),
                str(recipe))


def test_gradient_sums_follow_the_engine_order_for_a_later_output():
    # d b/d x adds three terms; in the engine's order (3 - 1e16) + 1e16 = 4, in the order of
    # trace([a, b]) (-1e16 + 1e16) + 3 = 3. Float addition is not associative.
    x = Value(0.5)
    c1, c2, c3 = x * 1e16, x * -1e16, x * 3.0
    b = c1 + (c2 + c3)
    a = c3.tanh()
    expected = grads_of(b, [x])
    program = codegen.grad(codegen.trace([a, b], [x]), of=1)
    assert_same((a.data,) + expected, codegen.evaluate(program, [0.5]))


def test_no_gradient_flows_through_step_or_sign_but_zero_times_inf_is_nan_as_in_the_engine():
    # sign's partial is None, so d sign(log x)/dx is "0 * (1/x)": the engine (like PyTorch)
    # still applies log's rule with an upstream gradient of 0.0, and 0 * inf = nan at x = 0.
    for make in (lambda x: SIGN(x.log()), lambda x: x.log().step()):
        x = Value(0.0)
        out = make(x)
        assert_same(grads_of(out, [x]), codegen_grads(out, [x], [0.0]))
        assert math.isnan(x.grad)
        x = Value(2.0)  # away from the pole the gradient is an honest zero
        assert codegen_grads(make(x), [x], [2.0])[1] == 0.0


def test_an_output_register_whose_label_starts_with_t_is_not_renamed_to_a_gradient():
    # grad names fresh adjoints g_<register>; it must never rename a forward instruction,
    # whatever the register is called (here exp's own output is its partial).
    for label in ('total', 't0', 'tanh_out'):
        x = Value(0.5, label='x')
        y = x.exp()
        y.label = label
        assert_same(grads_of(y, [x]), codegen_grads(y, [x], [0.5]), label)


# ---- the program it builds ------------------------------------------------------------------

def neuron():
    w, x, b = Value(0.5, label='w'), Value(2.0, label='x'), Value(-1.0, label='b')
    return (w * x + b).tanh(), [w, x, b]


def test_gradient_outputs_follow_the_value_and_are_named_after_it():
    out, inputs = neuron()
    out.label = 'loss'
    program = codegen.grad(codegen.trace(out, inputs), ['w', 'b'])
    assert program.output_names == ('loss', 'dloss/dw', 'dloss/db')
    assert len(program.outputs) == 3


def test_gradient_code_is_marked_with_what_it_differentiates():
    out, inputs = neuron()
    program = codegen.grad(codegen.trace(out, inputs))
    notes = [i.note for i in program.instrs if i.note]
    assert notes == ['grad of: v2 = tanh v1', 'grad of: v1 = add v0 b', 'grad of: v0 = mul w x']


def test_every_block_of_gradient_code_keeps_its_note_when_its_first_instruction_is_dropped():
    # powv's rule computes the base's partial first; that instruction is dead (the base is a
    # literal), but the block that remains still says what it differentiates.
    x = Value(0.5, label='x')
    program = codegen.grad(codegen.trace((2.0 ** x).exp(), [x]))
    notes = [i.note for i in program.instrs if i.note]
    assert notes == ['grad of: v0 = powv 2.0 x']
    assert codegen.optimize(program).instrs[2].note == 'grad of: v0 = powv 2.0 x'


def test_only_gradients_that_are_asked_for_are_computed():
    w, x = Value(3.0, label='w'), Value(4.0, label='x')
    out = (w * w).exp() + x.tanh()
    program = codegen.trace(out, [w, x])
    only_x = codegen.grad(program, ['x'])
    notes = [i.note for i in only_x.instrs if i.note]
    assert notes == ['grad of: v2 = tanh x']  # nothing of w's branch
    assert len(only_x.instrs) < len(codegen.grad(program).instrs)


def test_an_input_the_output_does_not_depend_on_has_gradient_zero():
    w, x = Value(3.0, label='w'), Value(4.0, label='x')
    program = codegen.grad(codegen.trace(w.tanh(), [w, x]))
    assert program.outputs[2] == 0.0


def test_the_gradient_of_an_input_returned_as_is_is_one():
    x = Value(3.0, label='x')
    program = codegen.grad(codegen.trace(x, [x]))
    assert codegen.evaluate(program, [7.0]) == (7.0, 1.0)


def test_differentiating_with_respect_to_a_non_input_is_refused():
    out, inputs = neuron()
    with pytest.raises(ValueError, match='not inputs'):
        codegen.grad(codegen.trace(out, inputs), ['v0'])


def test_gradients_of_gradients_are_gradients():
    # grad appends to any program, so the second derivative of tanh comes out right.
    x = Value(0.3, label='x')
    first = codegen.grad(codegen.trace(x.tanh(), [x]))           # (tanh x, 1 - tanh^2 x)
    second = codegen.check(codegen.grad(first, of=1))
    t = math.tanh(0.3)
    assert math.isclose(codegen.evaluate(second, [0.3])[-1], -2 * t * (1 - t * t), rel_tol=1e-12)


# ---- agrees with central differences on smooth graphs --------------------------------------

@settings(max_examples=150)
@given(recipes_with_inputs(smooth=True))
def test_gradients_of_smooth_graphs_agree_with_central_differences(recipe_and_xs):
    recipe, xs = recipe_and_xs
    program = codegen.optimize(traced(recipe))
    value, *gradient = codegen.evaluate(program, xs)
    for i, g in enumerate(gradient):
        estimate = central_difference(lambda t: codegen.evaluate(program, t)[0], xs, i)
        assert math.isclose(g, estimate, rel_tol=1e-4, abs_tol=1e-6), \
            f'd/dx{i}: codegen {g}, central difference {estimate}\n{recipe}'


def central_difference(f, xs, i):
    # Step inside the input box the recipe was drawn for would be nicer, but DOMAINS keep a
    # margin around every kink and pole that is far larger than h.
    h = 1e-6 * max(1.0, abs(xs[i]))
    up, down = list(xs), list(xs)
    up[i] += h
    down[i] -= h
    return (f(up) - f(down)) / (up[i] - down[i])
