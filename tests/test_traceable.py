"""Every loss and layer of micrograd is traceable: its graph computes from its inputs alone.

A library function that reads `.data` while it builds the graph (softmax's max-shift did)
freezes that number into a traced program as a literal: the program is then right at the
point it was traced and wrong elsewhere. So each one is traced at one point, the program is
evaluated at other points, and compared with the engine rebuilt at those points. Bit for bit,
nan equal to nan: the program and the engine apply the same ops to the same numbers.

The lists below must name every public loss and module (checked), so a new one cannot skip
this test.
"""
import inspect
import math
import random

import pytest
from hypothesis import given, settings, strategies as st

from codegen import evaluate, trace
from micrograd import losses, nn
from micrograd.engine import Value

N_DATA = 4  # data inputs of every case


def image(xs):
    return [[xs[0:2], xs[2:4]]]  # one channel, 2x2


def neuron():
    return nn.Neuron(N_DATA, activation='tanh', rng=random.Random(1))


# name -> (make the module or None, apply it to the data Values)
LOSSES = {
    'sum_squared_error': lambda xs: losses.sum_squared_error(xs, [0.5, -1.0, 2.0, 0.0]),
    'mean_squared_error': lambda xs: losses.mean_squared_error(xs, [0.5, -1.0, 2.0, 0.0]),
    'binary_cross_entropy': lambda xs: losses.binary_cross_entropy(
        [x.sigmoid() for x in xs], [1.0, 0.0, 0.25, 1.0]),
    'softplus': lambda xs: [losses.softplus(x) for x in xs],
    'binary_cross_entropy_with_logits': lambda xs: losses.binary_cross_entropy_with_logits(
        xs, [1.0, 0.0, 0.25, 1.0]),
    'max_margin_loss': lambda xs: losses.max_margin_loss(xs, [1, -1, -1, 1]),
    'l2_penalty': lambda xs: losses.l2_penalty(xs, 1e-3),
    'softmax': losses.softmax,
    'softmax_cross_entropy': lambda xs: losses.softmax_cross_entropy(xs, 2),
    'perceptron_loss': lambda xs: losses.perceptron_loss(xs[0] * xs[1], 1, 0),
}
METRICS = {'accuracy', 'top_k_accuracy'}  # numbers in, a float out: nothing to trace

LAYERS = {
    'Neuron': (neuron, lambda m, xs: m(xs)),
    'Perceptron': (lambda: nn.Perceptron(N_DATA, rng=random.Random(2)), lambda m, xs: m(xs)),
    'Layer': (lambda: nn.Layer(N_DATA, 3, rng=random.Random(3)), lambda m, xs: m(xs)),
    'MLP': (lambda: nn.MLP(N_DATA, [3, 2], rng=random.Random(4)), lambda m, xs: m(xs)),
    'Sequential': (lambda: nn.Sequential(nn.Layer(N_DATA, 3, rng=random.Random(5)),
                                         nn.Layer(3, 2, activation='sigmoid',
                                                  rng=random.Random(6))),
                   lambda m, xs: m(xs)),
    'Residual': (lambda: nn.Residual(nn.Layer(N_DATA, N_DATA, rng=random.Random(7))),
                 lambda m, xs: m(xs)),
    'BatchNorm1d': (lambda: nn.BatchNorm1d(2), lambda m, xs: m([xs[0:2], xs[2:4]])),
    'Conv2d': (lambda: nn.Conv2d(1, 2, 2, padding=1, activation='relu', rng=random.Random(8)),
               lambda m, xs: m(image(xs))),
    'MaxPool2d': (lambda: nn.MaxPool2d(2), lambda m, xs: m(image(xs))),
    'AvgPool2d': (lambda: nn.AvgPool2d(2), lambda m, xs: m(image(xs))),
    'Flatten': (lambda: nn.Flatten(), lambda m, xs: m(image(xs))),
    'maximum': (lambda: None, lambda m, xs: [nn.maximum(xs[0], xs[1]),
                                            nn.maximum(xs[2], 3.0)]),
    'BatchNorm2d': (lambda: nn.BatchNorm2d(1), lambda m, xs: m(image(xs))),
    'AdaptiveAvgPool2d': (lambda: nn.AdaptiveAvgPool2d(1), lambda m, xs: m(image(xs))),
    'GlobalAvgPool2d': (lambda: nn.GlobalAvgPool2d(), lambda m, xs: m(image(xs))),
    'Concat': (lambda: nn.Concat(nn.MaxPool2d(1), nn.Conv2d(1, 1, 1, rng=random.Random(9))),
               lambda m, xs: m(image(xs))),
    'Activation': (lambda: nn.Activation('tanh'), lambda m, xs: m(xs)),
    # In training mode Dropout draws its mask while the graph is built: a traced program keeps
    # that one mask (a known limit, not a value read from .data). Evaluation mode is checked.
    'Dropout': (lambda: nn.Dropout(0.5).eval(), lambda m, xs: m(xs)),
}


def test_every_public_loss_and_layer_is_checked():
    public_losses = {name for name, f in vars(losses).items()
                     if inspect.isfunction(f) and f.__module__ == losses.__name__
                     and not name.startswith('_')}
    assert public_losses == set(LOSSES) | METRICS
    modules = {name for name, c in vars(nn).items() if inspect.isclass(c)
               and issubclass(c, nn.Module) and c is not nn.Module and not name.startswith('_')}
    assert modules <= set(LAYERS)


def flat(outputs):
    return nn.Flatten()(outputs) if isinstance(outputs, list) else [outputs]


def run(case, data, params=None):
    """(module parameters, data Values, outputs) of `case` built on the engine at `data`,
    with the module's parameters set to `params` (None: as initialised)."""
    if case in LOSSES:
        module, apply = None, lambda m, xs: LOSSES[case](xs)
    else:
        make, apply = LAYERS[case]
        module = make()
    parameters = module.parameters() if module is not None else []
    for p, value in zip(parameters, params or []):
        p.data = value
    xs = [Value(x) for x in data]
    return parameters, xs, flat(apply(module, xs))


def same(a, b):
    return a == b or (math.isnan(a) and math.isnan(b))


TRACED_AT = [0.25, -0.5, 0.75, 0.1]
CASES = sorted(LOSSES) + sorted(LAYERS)
# Far from the traced point: softmax at logits (1000, 0, ...) is where a frozen shift shows.
data_points = st.lists(st.floats(-1000.0, 1000.0) | st.sampled_from([1000.0, -1000.0, 0.0]),
                       min_size=N_DATA, max_size=N_DATA)


@pytest.mark.parametrize('case', CASES)
@settings(max_examples=30)
@given(data=data_points, seed=st.integers(0, 2 ** 16))
def test_a_program_traced_at_one_point_is_the_engine_at_any_other(case, data, seed):
    parameters, xs, outputs = run(case, TRACED_AT)
    program = trace(outputs, parameters + xs, 'traced')
    rng = random.Random(seed)
    params = [rng.uniform(-3.0, 3.0) for _ in parameters]
    _, _, expected = run(case, data, params)
    got = evaluate(program, params + data)
    assert len(got) == len(expected)
    bad = [(k, e.data, g) for k, (e, g) in enumerate(zip(expected, got)) if not same(e.data, g)]
    assert not bad, f'{case} at {data}: (output, engine, traced program) {bad}'


def test_softmax_cross_entropy_compiled_at_small_logits_stays_finite_at_large_ones():
    """The issue's example: traced at (0, 0), the loss at logits (1000, 0) is 0, not inf."""
    logits = [Value(0.0), Value(0.0)]
    program = trace(losses.softmax_cross_entropy(logits, 0), logits, 'loss')
    assert evaluate(program, [1000.0, 0.0]) == (0.0,)
