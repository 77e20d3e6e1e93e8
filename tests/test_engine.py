"""The engine: Value builds graphs from the op table and backward() applies the chain rule.

Hand-checked expressions first, then micrograd compatibility, then properties over random
graphs (central differences, the PyTorch float64 oracle), then size: memory per node and a
chain of a million nodes.
"""
import gc
import itertools
import math
import os
import re
import subprocess
import sys
import textwrap
import tracemalloc
from math import inf, isnan, nan

import pytest
from hypothesis import given, note, settings, strategies as st

import needs
import replay
from exact import assert_same, same
import torch_oracle
from micrograd.engine import Value, topo_order
from micrograd.gradcheck import gradcheck
from micrograd.ops import OPS
from strategies import (SPECIAL_EXPONENTS, SPECIALS, Recipe, cancelling_recipes,
                        mixed_finite_floats, recipes_with_inputs)


def grads(build, *xs):
    """(value, [d value / d x]) of build(*Values) at the floats xs."""
    leaves = [Value(x) for x in xs]
    out = build(*leaves)
    out.backward()
    return out.data, [leaf.grad for leaf in leaves]


# ---- hand-checked expressions ----------------------------------------------------------------

def micrograd_sanity_check(x):
    """test_sanity_check of micrograd's test/test_engine.py, verbatim but for the return."""
    z = 2 * x + 2 + x
    q = z.relu() + z * x
    h = (z * z).relu()
    y = h + q + q * x
    return y


HAND_CHECKED = [
    # (expression, build, inputs, value, gradients): each worked out on paper
    ('a*b + a', lambda a, b: a * b + a, (2.0, -3.0), -4.0, [-2.0, 2.0]),
    ('x*x + x shares x', lambda x: x * x + x, (3.0,), 12.0, [7.0]),
    ('x + x', lambda x: x + x, (5.0,), 10.0, [2.0]),
    ('a - b', lambda a, b: a - b, (5.0, 3.0), 2.0, [1.0, -1.0]),
    ('-a', lambda a: -a, (5.0,), -5.0, [-1.0]),
    ('a / b', lambda a, b: a / b, (3.0, 2.0), 1.5, [0.5, -0.75]),
    ('x ** 3', lambda x: x ** 3, (2.0,), 8.0, [12.0]),
    ('x ** -1', lambda x: x ** -1, (4.0,), 0.25, [-0.0625]),
    ('a ** b', lambda a, b: a ** b, (2.0, 3.0), 8.0, [12.0, 8.0 * math.log(2.0)]),
    ('2 ** x', lambda x: 2 ** x, (3.0,), 8.0, [8.0 * math.log(2.0)]),
    ('1 - x', lambda x: 1 - x, (3.0,), -2.0, [-1.0]),
    ('2 + x', lambda x: 2 + x, (3.0,), 5.0, [1.0]),
    ('3 * x', lambda x: 3 * x, (2.0,), 6.0, [3.0]),
    ('6 / x', lambda x: 6 / x, (2.0,), 3.0, [-1.5]),
    ('exp(x)', lambda x: x.exp(), (0.0,), 1.0, [1.0]),
    ('log(x)', lambda x: x.log(), (4.0,), math.log(4.0), [0.25]),
    ('tanh(0)', lambda x: x.tanh(), (0.0,), 0.0, [1.0]),
    ('sigmoid(0)', lambda x: x.sigmoid(), (0.0,), 0.5, [0.25]),
    ('relu(3)', lambda x: x.relu(), (3.0,), 3.0, [1.0]),
    ('relu(-3)', lambda x: x.relu(), (-3.0,), 0.0, [0.0]),
    ('abs(-3)', lambda x: abs(x), (-3.0,), 3.0, [-1.0]),
    ('step(2) has no gradient', lambda x: x.step() * x, (2.0,), 2.0, [1.0]),
    ('sum() of Values', lambda a, b: sum([a, b, a]), (1.0, 2.0), 4.0, [2.0, 1.0]),
    # micrograd's test_sanity_check: z = 3x + 2 = -10, q = relu(z) + z*x = 40, y = -20;
    # dy/dx = 2z*3 (relu(z*z)) + (3x + z) (z*x in q) + (q + x*(3x + z)) (q*x) = 46
    ('micrograd sanity check', micrograd_sanity_check, (-4.0,), -20.0, [46.0]),
]


@pytest.mark.parametrize('expression, build, xs, value, expected', HAND_CHECKED,
                         ids=[case[0] for case in HAND_CHECKED])
def test_hand_checked_expression(expression, build, xs, value, expected):
    got_value, got_grads = grads(build, *xs)
    assert got_value == pytest.approx(value, rel=1e-15)
    assert got_grads == pytest.approx(expected, rel=1e-15)


def test_micrograd_readme_numbers():
    a, b, g = replay.readme_expression(Value)
    g.backward()
    assert f'{g.data:.4f} {a.grad:.4f} {b.grad:.4f}' == '24.7041 138.8338 645.5773'


def test_backward_twice_accumulates_as_in_micrograd():
    # micrograd never zeroes gradients by itself; training loops call zero_grad.
    x = Value(3.0)
    y = x * 2.0
    y.backward()
    y.backward()
    assert x.grad == 4.0


def test_data_and_grad_are_always_floats():
    v = Value(3) * 2
    v.backward()
    assert type(v.data) is float and type(v.grad) is float


@pytest.mark.parametrize('bad, named', [('3', "str '3'"), (None, 'NoneType None'),
                                        ([1], 'list [1]'), (1j, 'complex')])
def test_non_numbers_raise_type_error_naming_what_was_given(bad, named):
    with pytest.raises(TypeError, match=re.escape(named)):
        Value(bad)


def test_non_number_operands_raise_type_error():
    with pytest.raises(TypeError, match='str'):
        Value(1.0) + '2'
    with pytest.raises(TypeError, match='str'):
        Value(2.0) ** '2'


# ---- micrograd's internals that lecture code touches -----------------------------------------

def test_op_strings_and_prev_set_match_micrograd():
    a, b = Value(2.0), Value(3.0)
    assert (a + b)._op == '+'
    assert (a * b)._op == '*'
    assert (a ** 2)._op == '**2'
    assert a.relu()._op == 'ReLU'
    assert (a * b)._prev == {a, b}
    assert isinstance((a + a)._prev, set) and (a + a)._prev == {a}
    assert a._prev == set() and a._op == ''


def test_op_string_of_a_table_row_called_on_a_value():
    assert OPS['pow'](Value(3.0), p=2.0)._op == (Value(3.0) ** 2)._op == '**2'


def test_constructor_takes_micrograds_arguments_and_a_label():
    a, b = Value(2.0, label='a'), Value(3.0)
    c = Value(5.0, (a, b), '+', label='c')
    assert (c.data, c._prev, c._op, c.label, a.label) == (5.0, {a, b}, '+', 'c', 'a')


def test_hand_written_backward_closure_is_used():
    """Lecture code defines ops by assigning a `_backward` closure; backward() must call it."""
    def cube(x):
        out = Value(x.data ** 3, (x,), 'cube')

        def _backward():
            x.grad += 3 * x.data ** 2 * out.grad
        out._backward = _backward
        return out

    x = Value(2.0)
    y = cube(x) * 5.0 + x
    y.backward()
    assert x.grad == 5.0 * 12.0 + 1.0


def test_manual_backward_steps_as_in_the_lecture():
    """The lecture's neuron: seed o.grad, call each node's _backward() by hand, output first."""
    x1, x2 = Value(2.0, label='x1'), Value(0.0, label='x2')
    w1, w2 = Value(-3.0, label='w1'), Value(1.0, label='w2')
    b = Value(6.8813735870195432, label='b')
    x1w1, x2w2 = x1 * w1, x2 * w2
    x1w1x2w2 = x1w1 + x2w2
    n = x1w1x2w2 + b
    o = n.tanh()
    o.grad = 1.0
    for node in (o, n, b, x1w1x2w2, x2w2, x1w1):
        node._backward()  # on a leaf (b) it exists and does nothing
    assert o.data == pytest.approx(0.7071, abs=1e-4)
    assert [x1.grad, w1.grad, x2.grad, w2.grad] == pytest.approx([-1.5, 1.0, 0.5, 0.0])


# ---- random graphs ---------------------------------------------------------------------------

@settings(max_examples=200)
@given(recipes_with_inputs())
def test_engine_forward_is_the_op_table_on_floats(case):
    """Building through the operators computes exactly what each row's fwd computes."""
    recipe, xs = case
    note(str(recipe))
    _, out = replay.on_values(recipe, xs)
    assert same(out.data, replay.on_floats(recipe, xs))


@settings(max_examples=200)
@given(recipes_with_inputs())
def test_backward_never_raises_and_gives_the_chain_rules_floats(case):
    # Full-range inputs (inf, nan, ±0, huge, tiny): backward() gives exactly what the chain
    # rule of the op table gives, added up in the documented order (replay.gradients_on_floats).
    recipe, xs = case
    note(str(recipe))
    value, gradients = replay.gradients(recipe, xs)
    assert all(type(g) is float for g in gradients)
    want_value, want_gradients = replay.gradients_on_floats(recipe, xs)
    assert_same((want_value, *want_gradients), (value, *gradients), str(recipe))


@settings(max_examples=300)
@given(recipe=cancelling_recipes(), x=mixed_finite_floats() | st.sampled_from(SPECIALS))
def test_a_nodes_partials_reach_an_input_used_twice_in_argument_order(recipe, x):
    # x - x, x / x, x * -x scaled by up to 2**60, plus x: the terms 1, 2**53, -2**53 reaching x
    # round differently in any other order than the documented one.
    value, gradients = replay.gradients(recipe, [x])
    want_value, want_gradients = replay.gradients_on_floats(recipe, [x])
    assert_same((want_value, *want_gradients), (value, *gradients), str(recipe))


@given(recipes_with_inputs())
def test_topo_order_lists_every_node_once_children_first(case):
    recipe, xs = case
    _, out = replay.on_values(recipe, xs)
    order = topo_order([out])
    position = {node: i for i, node in enumerate(order)}
    assert len(position) == len(order) and order[-1] is out
    for node in order:
        assert all(position[child] < position[node] for child in node._args)


@settings(max_examples=200)
@given(recipes_with_inputs(smooth=True))
def test_smooth_random_graphs_match_central_differences(case):
    recipe, xs = case
    note(str(recipe))
    assert gradcheck(lambda *leaves: replay.build(recipe, leaves), xs)


ORDER_SENSITIVE = textwrap.dedent('''
    import sys
    sys.path.insert(0, {root!r})
    from micrograd.engine import Value
    # x's gradient is the sum of these partials. With cancelling giants, the float sum depends
    # on the order the terms are added in (a set of children would make that order vary).
    scales = [1e16, 1.0, -1e16, 1.0, 1e16, 3.0, -1e16, 1.0, 2.0 ** 60, 1.0, -(2.0 ** 60), 5.0]
    keep = []
    for attempt in range(6):
        keep.append([Value(0.0) for _ in range(attempt * 7)])  # move the next nodes' addresses
        x = Value(1.5)
        out = x * scales[0]
        for s in scales[1:]:
            out = out + x * s
        out.backward()
        print(x.grad.hex())
''')


def test_gradients_are_bit_identical_across_runs():
    """Children are ordered (not a set), so gradients sum in the same order in every run."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = ORDER_SENSITIVE.format(root=root)
    runs = []
    for seed in ('0', '1'):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run([sys.executable, '-c', script], env=env, check=True,
                             capture_output=True, text=True)
        runs.extend(out.stdout.split())
    assert len(runs) == 12 and len(set(runs)) == 1, runs


# ---- PyTorch float64 as an oracle ------------------------------------------------------------

@pytest.fixture(scope='module')
def torch():
    return torch_oracle.import_torch()


def torch_ops(torch):
    f64 = torch.float64
    return {
        'add': lambda a, b: a + b, 'sub': lambda a, b: a - b, 'mul': lambda a, b: a * b,
        'div': lambda a, b: a / b, 'neg': lambda a: -a,
        'pow': lambda a, p: torch.pow(a, p), 'powv': lambda a, b: torch.pow(a, b),
        'exp': torch.exp, 'log': torch.log, 'tanh': torch.tanh, 'sigmoid': torch.sigmoid,
        'relu': torch.relu, 'abs': torch.abs, 'sign': torch.sign,
        'step': lambda a: (a > 0).to(f64),  # a comparison: no gradient flows, as ours
        'max': torch.maximum,
    }


def torch_gradients(torch, recipe, xs):
    """(output, [d output / d input]) of the recipe in PyTorch float64."""
    ops = torch_ops(torch)
    leaves = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in xs]
    slots = list(leaves)
    for name, args, p in recipe.steps:
        operands = [slots[a] if isinstance(a, int) else torch.tensor(a[1], dtype=torch.float64)
                    for a in args]
        slots.append(ops[name](*operands, *([p] if p is not None else [])))
    out = slots[-1]
    if out.requires_grad:
        out.backward()
    # An input the output does not depend on has no .grad in PyTorch; ours is 0.
    return out.item(), [0.0 if x.grad is None else x.grad.item() for x in leaves]


def close(ours, theirs, rel, abs_):
    return same(ours, theirs) or abs(ours - theirs) <= abs_ + rel * abs(theirs)


@settings(max_examples=200)
@given(recipes_with_inputs(smooth=True))
def test_smooth_random_graphs_match_pytorch(torch, case):
    # PyTorch's exp, tanh, ... may differ from libm in the last bit, and its backward formulas
    # are written differently (e.g. -g*a/(b*b) for division), so agreement is to ~1e-12 of
    # the magnitudes a smooth recipe can reach (strategies.DOMAINS), not bitwise.
    recipe, xs = case
    note(str(recipe))
    ours = replay.gradients(recipe, xs)
    theirs = torch_gradients(torch, recipe, xs)
    assert close(ours[0], theirs[0], 1e-9, 1e-9), (ours[0], theirs[0])
    for i, (g, t) in enumerate(zip(ours[1], theirs[1])):
        assert close(g, t, 1e-9, 1e-9), f'd out / d x{i}: ours {g!r}, PyTorch {t!r}'


def torch_rule_differs(name, xs, p):
    """Why PyTorch's special-value rule differs from ours (README's table) here, else ''."""
    a = xs[0]
    b = xs[1] if len(xs) > 1 else None
    negative_zero_or_inf = a == -inf or (a == 0.0 and math.copysign(1.0, a) < 0)
    if name == 'pow' and negative_zero_or_inf and math.isfinite(p) and p != math.floor(p):
        return 'pow(-0 or -inf, non-integer): ours is C99 pow (test_ops checks libm), not PyTorch'
    if (name == 'pow' and p == 0.0) or (name == 'powv' and b == 0.0):
        return 'x ** 0: PyTorch defines the partial as 0; ours is 0 * x**-1 (nan at x = 0)'
    if name == 'powv' and a == 0.0:
        return 'PyTorch masks d(0 ** b)/db to 0; ours is log(0) * 0**b (nan or -inf)'
    if name == 'relu' and isnan(a):
        return "relu'(nan): PyTorch passes the gradient, ours is step(nan) = 0"
    if name in ('abs', 'sign') and isnan(a):
        return 'sign(nan): PyTorch gives 0, ours nan'
    if name == 'max' and (a == b or isnan(a) or isnan(b)):
        return ('max at a tie or a nan: PyTorch splits the gradient in halves (or passes it to '
                'both); ours all goes to the argument max returned')
    return ''


TORCH_SPECIALS = (0.0, -0.0, 1.0, -1.0, 0.5, -2.0, 3.0, inf, -inf, nan, 1e308, -1e300,
                  5e-324, 1e-300, 1000.0, -1000.0, 710.0, -746.0)


@pytest.mark.parametrize('name', sorted(OPS))
def test_special_values_match_pytorch_where_rules_agree(torch, name):
    """Every op on every combination of special inputs: value and partials as PyTorch,
    except where torch_rule_differs() names a documented difference."""
    assert set(TORCH_SPECIALS) <= set(SPECIALS) | {nan}
    op = OPS[name]
    compared = total = 0
    for xs in itertools.product(TORCH_SPECIALS, repeat=op.arity):
        for p in (SPECIAL_EXPONENTS if op.param else (None,)):
            total += 1
            if torch_rule_differs(name, xs, p):
                continue
            recipe = _one_step(name, op.arity, p)
            ours, theirs = replay.gradients(recipe, xs), torch_gradients(torch, recipe, xs)
            assert close(ours[0], theirs[0], 1e-13, 0.0), (name, xs, p, ours, theirs)
            for g, t in zip(ours[1], theirs[1]):
                assert close(g, t, 1e-13, 0.0), (name, xs, p, ours, theirs)
            compared += 1
    assert compared > total / 2  # the documented differences stay exceptions


def _one_step(name, arity, p):
    return Recipe(arity, ((name, tuple(range(arity)), p),))


def test_micrograd_readme_expression_matches_pytorch(torch):
    a, b, g = replay.readme_expression(Value)
    g.backward()
    ta = torch.tensor(-4.0, dtype=torch.float64, requires_grad=True)
    tb = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    c = ta + tb
    d = ta * tb + tb**3
    c = c + c + 1
    c = c + 1 + c + (-ta)
    d = d + d * 2 + (tb + ta).relu()
    d = d + 3 * d + (tb - ta).relu()
    e = c - d
    f = e**2
    tg = f / 2.0
    tg = tg + 10.0 / f
    tg.backward()
    assert g.data == pytest.approx(tg.item(), rel=1e-14)
    assert a.grad == pytest.approx(ta.grad.item(), rel=1e-14)
    assert b.grad == pytest.approx(tb.grad.item(), rel=1e-14)


# ---- size ------------------------------------------------------------------------------------

def test_memory_per_op_node_is_under_300_bytes():
    """__slots__, an args tuple and no per-node closure: ~200 bytes a node (micrograd: ~800).
    Measured after backward(), so each node's float gradient counts too."""
    n = 20_000
    x, w = Value(0.5), Value(1.0)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        v = x
        for _ in range(n):
            v = v * w
        v.backward()
        per_node = (tracemalloc.get_traced_memory()[0] - before) / n
    finally:
        tracemalloc.stop()
    assert per_node < 300, f'{per_node:.0f} bytes per op node'


@pytest.mark.slow
def test_million_node_chain_builds_and_backpropagates():
    """No recursion anywhere: building, backward() and freeing a 1e6-deep chain all work."""
    n = 1_000_000
    x, w = Value(0.5), Value(1.0)
    v = x
    for _ in range(n):
        v = v + w
    v.backward()
    assert (v.data, x.grad, w.grad) == (0.5 + n, 1.0, float(n))
    del v  # freeing the chain must not recurse either
