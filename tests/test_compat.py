"""Differential test against micrograd 0.1.0, the PyPI release, on the ops it has.

Both packages are called `micrograd`, so its engine.py is fetched once (tests/
reference_micrograd.py), checked against a pinned hash and loaded under another module name.
Without it (offline, no pip) these tests skip, saying why; under CI they fail.

The same recipe is replayed on both engines through the same operators (tests/replay.py).
Where micrograd raises (0.0 ** -1, overflow) we give IEEE inf or nan instead; such examples are
rejected. Powers keep to integer exponents, since micrograd's (-8) ** (1/3) is complex.
"""
import importlib.util
import itertools
import math
import struct
import sys

import pytest
from hypothesis import example, given, note, reject, settings, strategies as st

import reference_micrograd
import replay
from exact import same
from micrograd import ieee
from micrograd.engine import Value
from micrograd.ops import OPS
from strategies import SPECIALS, Recipe, recipes_with_inputs

MICROGRAD_OPS = ['add', 'sub', 'mul', 'neg', 'pow', 'relu']  # and div, spelled as it does
# micrograd's `**` is Python's: a negative base to a fractional power is complex (and micrograd
# then fails in relu's comparison), so powers here have integer exponents.
INTEGER_EXPONENT_LIST = [2.0, 3.0, -1.0, -2.0, 0.0, 1.0, 4.0, -3.0]
INTEGER_EXPONENTS = st.sampled_from(INTEGER_EXPONENT_LIST)


def load_reference(module_name):
    """micrograd 0.1.0's Value class, loaded as module `module_name`."""
    try:
        path = reference_micrograd.engine_path()
    except OSError as error:
        reference_micrograd.unavailable(error)
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Value


@pytest.fixture(scope='module')
def Ref():
    """micrograd 0.1.0's Value class, loaded as module `micrograd_ref_engine`."""
    return load_reference('micrograd_ref_engine')


@pytest.fixture(scope='module')
def FloatZeroRef():
    """micrograd 0.1.0 again, except that relu gives the float 0.0 where micrograd gives the
    int 0. An int 0 has no sign and turns what it touches positive (-0.0 + 0 is 0.0): where
    micrograd and we differ only in a zero's sign, this one says whether that is the reason."""
    Value = load_reference('micrograd_ref_float_zero')
    relu = Value.relu

    def float_relu(self):
        out = relu(self)
        out.data = float(out.data)
        return out
    Value.relu = float_relu
    return Value


# ---- comparing -------------------------------------------------------------------------------

def reference_gradients(Ref, recipe, xs):
    """micrograd's (output, input gradients), rejecting examples where it has no float answer."""
    try:
        out, grads = replay.gradients(recipe, xs, value=Ref)
    except (ZeroDivisionError, OverflowError):
        reject()  # micrograd raises where IEEE-754 (and we) give ±inf or nan
    return out, grads


def micrograd_answers(Ref, FloatZeroRef, recipe, xs):
    """micrograd's (output, gradients), each paired with what it is when relu's zero is 0.0."""
    theirs = reference_gradients(Ref, recipe, xs)
    float_zero = replay.gradients(recipe, xs, value=FloatZeroRef)
    return ((theirs[0], float_zero[0]), list(zip(theirs[1], float_zero[1])))


def _flat(result):
    return [result[0], *result[1]]


def max_uses(recipe):
    uses = [0] * (recipe.n_inputs + len(recipe.steps))
    for _, args, _ in recipe.steps:
        for a in args:
            if isinstance(a, int):
                uses[a] += 1
    return max(uses)


def path_magnitudes(recipe, xs):
    """Per input: the sum over all paths to the output of |product of local partials|.

    A gradient is a sum of one term per path; reordering that sum changes it by at most
    (number of additions) * eps * this magnitude, which bounds how far two engines that add
    the same terms in a different order can drift apart.
    """
    values = replay.slot_values(recipe, xs)
    magnitude = [0.0] * len(values)
    magnitude[-1] = 1.0
    for k in reversed(range(len(recipe.steps))):
        name, args, p = recipe.steps[k]
        out = recipe.n_inputs + k
        operands = [values[a] if isinstance(a, int) else a[1] for a in args]
        grad = OPS[name].grad
        partials = grad(*operands, values[out]) if p is None else \
            grad(*operands, values[out], p)
        for a, partial in zip(args, partials):
            if isinstance(a, int) and partial is not None:
                magnitude[a] += abs(partial) * magnitude[out]
    return magnitude[:recipe.n_inputs]


def same_as_micrograd(ours, theirs):
    """`same` (bits, zero's sign included), except for micrograd's int 0 (relu's zero), which
    has no sign: 0.0 and -0.0 both match it, and a zero whose sign it decided (`theirs` as a
    pair: micrograd's answer, and FloatZeroRef's) matches if it is the float-zero answer."""
    if isinstance(theirs, tuple):
        answer, float_zero = theirs
        return same_as_micrograd(ours, answer) or (ours == answer == 0 and same(ours, float_zero))
    if type(theirs) is int:
        return ours == theirs
    return same(ours, theirs)


def assert_same_gradients(recipe, xs, ours, theirs):
    """Bit-identical where every node feeds at most two others, else equal up to summation order.

    Both engines multiply the same partials by the same upstream gradients. They differ only
    in the order a node's incoming terms are added: ours follows the ordered children,
    micrograd's follows set iteration (object addresses). Two terms add the same either way
    (x + y == y + x); three or more can round differently.
    """
    if max_uses(recipe) <= 2:
        for i, (g, r) in enumerate(zip(ours, theirs)):
            assert same_as_micrograd(g, r), f'd out / d x{i}: ours {g!r}, micrograd {r!r}'
        return
    slack = 4 * len(recipe.steps) * sys.float_info.epsilon
    for i, (g, r, m) in enumerate(zip(ours, theirs, path_magnitudes(recipe, xs))):
        if math.isfinite(m):  # with inf in play, reordering may legitimately give inf or nan
            assert same_as_micrograd(g, r) or abs(g - r[0]) <= slack * m, \
                f'd out / d x{i}: ours {g!r}, micrograd {r!r}, path magnitude {m!r}'


def with_micrograd_division(recipe):
    """The same recipe with each a / b spelled as micrograd computes it: a * b**-1.

    micrograd's __truediv__ is `self * other**-1`; for a constant denominator `other**-1` is
    Python float arithmetic, so it becomes a constant. Slots are renumbered as pow steps appear.
    """
    steps, new_slot = [], list(range(recipe.n_inputs))

    def renamed(arg):
        return new_slot[arg] if isinstance(arg, int) else arg

    for name, args, p in recipe.steps:
        args = tuple(map(renamed, args))
        if name == 'div':
            a, b = args
            if isinstance(b, int):
                steps.append(('pow', (b,), -1.0))
                b = recipe.n_inputs + len(steps) - 1
            else:
                b = ('const', ieee.pow(b[1], -1.0))
            name, args = 'mul', (a, b)
        steps.append((name, args, p))
        new_slot.append(recipe.n_inputs + len(steps) - 1)
    return Recipe(recipe.n_inputs, tuple(steps), recipe.input_ranges)


# ---- the properties --------------------------------------------------------------------------

def test_reference_is_micrograd_and_gives_its_readme_numbers(Ref):
    a, b, g = replay.readme_expression(Ref)
    g.backward()
    assert f'{g.data:.4f} {a.grad:.4f} {b.grad:.4f}' == '24.7041 138.8338 645.5773'
    assert Ref is not Value and not isinstance(g, Value)


@settings(max_examples=300)
@given(recipes_with_inputs(ops=MICROGRAD_OPS, exponents=INTEGER_EXPONENTS))
def test_random_graphs_without_division_match_micrograd(Ref, FloatZeroRef, case):
    recipe, xs = case
    note(str(recipe))
    theirs = micrograd_answers(Ref, FloatZeroRef, recipe, xs)
    ours = replay.gradients(recipe, xs)
    assert same_as_micrograd(ours[0], theirs[0]), \
        f'output: ours {ours[0]!r}, micrograd {theirs[0]!r}'
    assert_same_gradients(recipe, xs, ours[1], theirs[1])


@settings(max_examples=300)
@given(recipes_with_inputs(ops=MICROGRAD_OPS + ['div'], exponents=INTEGER_EXPONENTS))
@example(case=(Recipe(2, (('relu', (1,), None), ('sub', (0, 2), None))), (-0.0, -1.0)))
def test_random_graphs_with_division_match_micrograd_given_its_spelling(Ref, FloatZeroRef, case):
    """micrograd's `a / b` is `a * b**-1`: ours, given that spelling, matches it bit for bit.
    (Our own `/` is one division; the next test bounds how far apart the two are.) The example:
    -0.0 - relu(-1.0) is 0.0 in micrograd, whose relu gives the int 0, and -0.0 here."""
    recipe, xs = case
    spelled = with_micrograd_division(recipe)
    note(str(recipe))
    theirs = micrograd_answers(Ref, FloatZeroRef, recipe, xs)  # micrograd's own `/`
    ours = replay.gradients(spelled, xs)
    assert same_as_micrograd(ours[0], theirs[0]), \
        f'output: ours {ours[0]!r}, micrograd {theirs[0]!r}'
    assert_same_gradients(spelled, xs, ours[1], theirs[1])


def ulp(x):
    """math.ulp(x) for finite x (math.ulp is Python 3.9+, the suite runs on 3.8 too): the gap
    from |x| to the next float up, found by adding one to its bit pattern."""
    x = abs(x)
    bits = struct.unpack('<q', struct.pack('<d', x))[0]
    return struct.unpack('<d', struct.pack('<q', bits + 1))[0] - x


def test_ulp_is_the_gap_to_the_next_float():
    assert ulp(1.0) == sys.float_info.epsilon and ulp(-2.0) == 2 * sys.float_info.epsilon
    assert ulp(0.0) == 5e-324 and ulp(sys.float_info.min) == 5e-324
    if hasattr(math, 'ulp'):  # where Python has it, the same numbers
        assert all(ulp(x) == math.ulp(x) for x in (1.0, 3.5, 1e-310, 1e300, -7.25, 0.0))


def ulps_apart(a, b):
    return abs(a - b) / ulp(max(abs(a), abs(b)))


magnitudes = st.floats(1e-50, 1e50) | st.sampled_from([1.0, 3.0, 0.1, 1e-50, 1e50])
signed = st.tuples(magnitudes, st.booleans()).map(lambda m: -m[0] if m[1] else m[0])


@settings(max_examples=300)
@given(a=signed, b=signed, form=st.sampled_from(['a / b', 'a / 3.0', '3.0 / b']))
def test_division_is_within_a_few_ulps_of_micrograds(Ref, a, b, form):
    """Ours is one IEEE division, correctly rounded; micrograd's a * b**-1 rounds twice (pow,
    then the product), and its gradient -a * b**-2 differs from our -(a/b)/b the same way.
    Each side is within ~1.5 ulp of the exact value, so they agree within 4 ulps. Operands are
    kept away from overflow and subnormals, where ulps stop being relative. (Inside a bigger
    graph that last-bit difference can grow without bound, e.g. by cancellation, which is why
    the random-graph test above spells division the way micrograd does.)"""
    recipe, xs = {
        'a / b': (Recipe(2, (('div', (0, 1), None),)), (a, b)),
        'a / 3.0': (Recipe(1, (('div', (0, ('const', 3.0)), None),)), (a,)),
        '3.0 / b': (Recipe(1, (('div', (('const', 3.0), 0), None),)), (b,)),
    }[form]
    ours = _flat(replay.gradients(recipe, xs))
    theirs = _flat(reference_gradients(Ref, recipe, xs))
    for what, o, t in zip(['value', 'first gradient', 'second gradient'], ours, theirs):
        assert ulps_apart(o, t) <= 4, f'{form}, {what}: ours {o!r}, micrograd {t!r}'


@pytest.mark.parametrize('name', MICROGRAD_OPS + ['div'])
def test_special_values_match_micrograd_where_it_has_an_answer(Ref, name):
    """Each op on every combination of special inputs (nan, ±inf, ±0, huge, tiny)."""
    arity = OPS[name].arity
    exponents = INTEGER_EXPONENT_LIST if OPS[name].param else [None]
    compared = 0
    for xs in itertools.product(SPECIALS, repeat=arity):
        for p in exponents:
            recipe = Recipe(arity, ((name, tuple(range(arity)), p),))
            try:
                theirs = _flat(replay.gradients(recipe, xs, value=Ref))
            except (ZeroDivisionError, OverflowError):
                continue  # micrograd raises where we give IEEE inf or nan
            ours = _flat(replay.gradients(with_micrograd_division(recipe), xs))
            assert all(map(same_as_micrograd, ours, theirs)), \
                f'{name}{xs} p={p}: ours {ours}, micrograd {theirs}'
            compared += 1
    assert compared > len(SPECIALS) ** arity / 2
