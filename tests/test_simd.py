"""The opt-in fast batch entry points (emit_simd: SIMD lanes, threads) compute each row exactly
as the default C does; only the order in which `sum` adds rows differs."""
import math
import random

import pytest

import codegen
from codegen.build import DEFAULT_FLAGS, Compiled, compile_source
from codegen.emit_c import to_c
from codegen.train import FAST_FLAGS
from micrograd.engine import Value
from micrograd.nn import MLP

pytestmark = pytest.mark.needs_cc


def sample_program():
    """A small model's per-sample loss and gradient, with every kind of op the lanes handle."""
    model = MLP(2, [3, 2], activation='tanh', rng=random.Random(0))
    x, y = [Value(0.0, label='x0'), Value(0.0, label='x1')], Value(0.0, label='y')
    out = model(x)
    loss = ((out[0] - y) ** 2 + (out[1].relu() + 1.0).log() + out[0].sigmoid().abs() +
            (out[1] / 2.0).exp().step() + y ** 3 + (x[0] ** x[1]))
    params = model.parameters()
    program = codegen.trace(loss, params + x + [y], 'sample')
    return codegen.optimize(codegen.grad(program, program.inputs[:len(params)])), len(params)


def build(program, n_params, **fast):
    source = to_c(program, n_params, **fast)
    flags = FAST_FLAGS if fast else DEFAULT_FLAGS
    return Compiled(program, source, 'c', n_params, compile_source(source, flags))


@pytest.mark.parametrize('n_rows', [1, 3, 4, 7, 130, 333])
def test_lanes_and_threads_give_every_row_the_default_bits(n_rows):
    program, n_params = sample_program()
    default = build(program, n_params)
    fast = build(program, n_params, lanes=4, threads=2)
    assert 'vector_size(32)' in fast.source and 'omp parallel' in fast.source
    rng = random.Random(n_rows)
    params = [rng.uniform(-1, 1) for _ in range(n_params)]
    rows = [[rng.uniform(0.1, 2.0), rng.uniform(-2, 2), rng.uniform(-1, 1)]
            for _ in range(n_rows)]
    expected = default.batch(params, rows)
    assert fast.batch(params, rows) == expected
    # sum: lanes and threads add rows in another order, so only the last bits may differ
    for got, want in zip(fast.sum(params, rows), default.sum(params, rows)):
        assert math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-12)


def test_lanes_must_be_a_vector_width():
    program, n_params = sample_program()
    with pytest.raises(ValueError, match='lanes must be 1, 2, 4 or 8'):
        to_c(program, n_params, lanes=3)

