"""Differential test over bad inputs: both backends accept or refuse each one alike.

Hypothesis feeds the same odd input (empty, nan, inf, negative, strings, bools, numpy scalars
and arrays, wrong lengths, batch sizes of 0, -1 and more than the rows, clipping of 0, negative
and inf) through the entry points of the generated-Python and the C backend: build's callable
(call, batch, sum), jit, and the Trainer (rows, step, fit, predict). The outcome must be the
same on both: the same answer, or the same exception type with the same message. A refused
Trainer call changes no parameter and no momentum.
"""
import math
import random

import numpy
import pytest
from hypothesis import given, note, settings, strategies as st

import codegen
from codegen.train import Trainer
from micrograd.engine import Value
from micrograd.nn import MLP

pytestmark = pytest.mark.needs_cc

BACKENDS = ('python', 'c')
ROWS = [[0.5, -1.0, 1.0], [-0.25, 0.75, -1.0], [1.5, 0.5, 1.0]]

# ---- odd values ------------------------------------------------------------------------------

NUMBERS = st.sampled_from([0.0, -0.0, 1.0, 0.5, -1.0, -0.5, 2, 0, -1, 10 ** 400, math.nan,
                           math.inf, -math.inf, 1e308, 5e-324])
NUMPY_SCALARS = st.sampled_from([numpy.float32(0.5), numpy.float64(-1.5), numpy.int64(2),
                                 numpy.float16(0.25), numpy.float32('nan'), numpy.bool_(True),
                                 numpy.int8(-1)])
NOT_NUMBERS = st.sampled_from(['1.0', '', 'nan', b'1', None, True, False, [], [1.0], (),
                               {'a': 1}, 1j, object()])
ODD = st.one_of(NUMBERS, NUMPY_SCALARS, NOT_NUMBERS, st.floats())


def odd_row(width):
    """A row of about `width` values: right length or not, each value odd or plain."""
    lengths = st.sampled_from([width, width, width - 1, width + 1, 0])
    return lengths.flatmap(lambda n: st.lists(st.one_of(ODD, st.floats(-2, 2)), min_size=n,
                                              max_size=n))


def odd_rows(width):
    plain = st.lists(st.lists(st.floats(-2, 2), min_size=width, max_size=width), max_size=4)
    return st.one_of(
        st.lists(odd_row(width), max_size=4),
        plain,
        plain.map(lambda rows: numpy.array(rows, dtype=numpy.float64).reshape(-1, width)),
        plain.map(lambda rows: numpy.array(rows, dtype=numpy.float32).reshape(-1, width)),
        plain.map(lambda rows: numpy.array(rows).reshape(-1, width) > 0),
        st.sampled_from(['abc', 1.0, None, [1.0, 2.0, 3.0], [[math.nan] * width],
                         numpy.zeros(width), numpy.full((2, width), numpy.inf)]))


# ---- running both ------------------------------------------------------------------------------

def outcome(call):
    """('ok', result) or (exception type, message): what a user sees."""
    try:
        return 'ok', call()
    except Exception as error:  # noqa: BLE001 - any exception is an outcome to compare
        return type(error), str(error)


def same_results(a, b):
    """Equal, with nan equal to nan, through tuples and lists."""
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(same_results(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


def assert_alike(outcomes):
    (kind_p, what_p), (kind_c, what_c) = outcomes['python'], outcomes['c']
    assert kind_p == kind_c, outcomes
    assert same_results(what_p, what_c) if kind_p == 'ok' else what_p == what_c, outcomes


# ---- Trainer -----------------------------------------------------------------------------------

def sample_loss(m, x, y):
    return (1 + -y * m(x)).relu()


START = [p.data for p in MLP(2, [3, 1], rng=random.Random(0)).parameters()]
TRAINERS = {}


def trainer(backend):
    """One trainer per backend for the whole test, reset to the same start for each example."""
    if backend not in TRAINERS:
        TRAINERS[backend] = Trainer(MLP(2, [3, 1], rng=random.Random(0)), sample_loss, 2,
                                    backend=backend)
    t = TRAINERS[backend]
    for i, value in enumerate(START):
        if backend == 'python':
            t.parameters[i].data, t.optimizer.velocity[i] = value, 0.1 * i
        else:
            t.params[i], t.velocity[i] = value, 0.1 * i
    return t


def state(t):
    if t.backend == 'python':
        params, velocity = [p.data for p in t.parameters], t.optimizer.velocity
    else:
        params, velocity = list(t.params), list(t.velocity)
    return [repr(v) for v in params], [repr(v) for v in velocity]


SETTINGS = st.fixed_dictionaries({}, optional={
    'momentum': ODD, 'weight_decay': ODD, 'clip_value': st.one_of(ODD, st.just(None)),
    'clip_norm': st.one_of(ODD, st.just(None))})
CLIPS = st.fixed_dictionaries({}, optional={
    'clip_value': st.sampled_from([0.0, -1.0, -1, math.inf, 0.05, None]),
    'clip_norm': st.sampled_from([0.0, -1.0, math.inf, 0.1, None])})

TRAINER_CALLS = st.one_of(
    st.tuples(st.just('rows'), odd_rows(3)).map(
        lambda c: ('rows', lambda t: t.rows(c[1]).as_lists())),
    st.tuples(odd_rows(3), ODD, SETTINGS).map(
        lambda c: ('step rows, lr', lambda t: t.step(c[0], c[1], **c[2]))),
    st.tuples(st.floats(0, 1), CLIPS).map(
        lambda c: ('step clips', lambda t: t.step(ROWS, c[0], **c[1]))),
    st.tuples(st.one_of(odd_rows(3), st.just(ROWS)),
              st.sampled_from([0, -1, 1, 2, 3, 100, None, 1.5, True, '2', numpy.int64(2)]),
              st.sampled_from([0, 1, 2, -1, 1.0, None]), ODD).map(
        lambda c: ('fit', lambda t: t.fit(c[0], c[2], c[3], batch_size=c[1], verbose=False))),
    st.tuples(odd_rows(2)).map(lambda c: ('predict', lambda t: t.predict(c[0]))),
)


@settings(max_examples=300, deadline=None)
@given(call=TRAINER_CALLS)
def test_the_trainer_treats_every_input_alike_on_both_backends(call):
    name, run = call
    note(name)
    outcomes, changed = {}, {}
    for backend in BACKENDS:
        t = trainer(backend)
        before = state(t)
        outcomes[backend] = outcome(lambda: run(t))
        changed[backend] = state(t) != before
        if outcomes[backend][0] != 'ok':
            assert not changed[backend], f'{backend}: a refused call changed numbers: ' \
                                         f'{outcomes[backend]}'
    assert_alike(outcomes)
    assert changed['python'] == changed['c']
    assert state(TRAINERS['python']) == state(TRAINERS['c'])  # the same numbers after, too


@settings(max_examples=30, deadline=None)
@given(n_features=st.sampled_from([2, numpy.int64(2), True, -1, 2.0, '2', None]),
       n_targets=st.sampled_from([1, 0, -1, False, numpy.int32(1)]))
def test_trainer_sizes_are_checked_alike(n_features, n_targets):
    outcomes = {backend: outcome(lambda: Trainer(
        MLP(2, [1], rng=random.Random(0)), lambda m, x, y: (m(x[:2]) - y) ** 2, n_features,
        n_targets=n_targets, backend=backend) and 'built') for backend in BACKENDS}
    assert_alike(outcomes)


# ---- build and jit -----------------------------------------------------------------------------

def neuron():
    w, x, b = Value(0.5, label='w'), Value(2.0, label='x'), Value(-1.0, label='b')
    return (w * x + b).tanh(), [w, x, b]


PROGRAM = codegen.optimize(codegen.grad(codegen.trace(*neuron(), 'neuron')))
BUILT = {}


def built(backend):
    if backend not in BUILT:
        BUILT[backend] = codegen.build(PROGRAM, backend, n_params=1)
    return BUILT[backend]


BUILD_CALLS = st.one_of(
    st.lists(st.one_of(ODD, st.floats()), max_size=4).map(
        lambda xs: ('call', lambda f: f(*xs))),
    st.tuples(st.lists(ODD, max_size=2), odd_rows(2)).map(
        lambda c: ('batch', lambda f: f.batch(c[0], c[1]))),
    st.tuples(st.lists(ODD, max_size=2), odd_rows(2)).map(
        lambda c: ('sum', lambda f: f.sum(c[0], c[1]))),
)


@settings(max_examples=300, deadline=None)
@given(call=BUILD_CALLS)
def test_a_built_program_treats_every_input_alike_on_both_backends(call):
    name, run = call
    note(name)
    assert_alike({backend: outcome(lambda: run(built(backend))) for backend in BACKENDS})


@settings(max_examples=40, deadline=None)
@given(wrt=st.sampled_from(['all', 'none', 'one', 'foreign', 'value']),
       n_params=st.sampled_from([0, 1, 3, 4, -1]),
       x=st.one_of(ODD, st.floats()))
def test_jit_treats_every_input_alike_on_both_backends(wrt, n_params, x):
    def run(backend):
        out, inputs = neuron()
        choice = {'all': None, 'none': (), 'one': inputs[:1], 'foreign': [Value(1.0)],
                  'value': inputs[0]}[wrt]
        f = codegen.jit(out, inputs, wrt=choice, backend=backend, n_params=n_params)
        return f(x, 2.0, -1.0)
    assert_alike({backend: outcome(lambda: run(backend)) for backend in BACKENDS})
