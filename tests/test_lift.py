"""codegen/lift.py: the loop level of a gradient, built from the forward trace with each dense
layer differentiated whole, computes the bits of the scalar gradient program on every
evaluator (interpreter, C with one and two threads, per row and summed); and what it does not
cover is refused, so the Trainer takes the scalar path."""
import random

import pytest
from hypothesis import Phase, given, settings, strategies as st

import codegen
from codegen import emit_loops, lift, loops
from codegen.build import Compiled, compile_source
from codegen.train import FAST_FLAGS, Trainer
from micrograd.engine import Value
from micrograd.nn import MLP

from codegen_support import STRICT_FLAGS, use_private_cache
from exact import assert_same
from test_loops import LOSSES, hand_built_layer, ordered_sum, random_rows


def forward_and_gradient(model, loss, n_in):
    """The traced per-sample loss (lift's input) and the scalar gradient program (the
    reference), as the Trainer makes them."""
    trainer = Trainer(model, LOSSES[loss] if isinstance(loss, str) else loss,
                      n_features=n_in, backend='python')
    return trainer.traced_sample, trainer.sample, trainer.n_params


def check_lift(forward, gradient, n_params, params, rows, tmp_path, monkeypatch):
    """lift(forward) on the interpreter and in C (1 and 2 threads, batch and sum) against the
    scalar gradient program evaluated row by row."""
    use_private_cache(tmp_path, monkeypatch)
    lifted = lift.lift(forward, n_params)
    assert lifted is not None, 'lift refused a program it should cover'
    loops.check(lifted)
    expected_rows = [codegen.evaluate(gradient, list(params) + row) for row in rows]
    expected_sum = ordered_sum(gradient, params, rows)
    assert_same(expected_sum, loops.evaluate_sum(lifted, params, rows), 'interpreter sum')
    for got, want in zip(loops.evaluate_batch(lifted, params, rows), expected_rows):
        assert_same(want, got, 'interpreter batch')
    for threads, flags in ((1, STRICT_FLAGS), (2, FAST_FLAGS)):
        source = emit_loops.to_c(lifted, threads=threads)
        compiled = Compiled(lifted.program, source, 'c', n_params,
                            compile_source(source, flags))
        assert_same(expected_sum, compiled.sum(params, rows), f'C sum, {threads} threads')
        for got, want in zip(compiled.batch(params, rows), expected_rows):
            assert_same(want, got, f'C batch, {threads} threads')
    return lifted


def test_w2_is_lifted_into_the_same_listing_without_a_scalar_gradient():
    random.seed(1337)
    trainer = Trainer(MLP(2, [64, 64, 1]), LOSSES['margin'], n_features=2, backend='python')
    lifted = lift.lift(trainer.traced_sample, trainer.n_params)
    listing = str(lifted)
    assert len(listing.splitlines()) < 40, listing
    dense = [s for s in lifted.body if isinstance(s, loops.Dense)]
    # forward 64x2, 64x64, 1x64; backward: the adjoints of both hidden layers (64x1, 64x64)
    assert sorted(s.group.shape for s in dense) == [(1, 64), (64, 1), (64, 2), (64, 64),
                                                    (64, 64)]
    assert sorted(o.group.shape for o in lifted.outers) == [(1, 64), (2, 64), (64, 64)]
    assert len(lifted.program.instrs) < 1000  # against 25,863 in the scalar gradient


# each example compiles C twice: no shrinking, which would compile hundreds more
@settings(max_examples=12, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(n_in=st.integers(1, 5), hidden=st.lists(st.integers(2, 9), min_size=1, max_size=3),
       activation=st.sampled_from([None, 'tanh', 'sigmoid', 'linear']),
       loss=st.sampled_from(sorted(LOSSES)), n_rows=st.integers(1, 70),
       specials=st.booleans(), seed=st.integers(0, 2**16))
def test_random_mlps_lift_to_the_scalar_gradients_bits(n_in, hidden, activation, loss, n_rows,
                                                       specials, seed, tmp_path_factory):
    random.seed(seed)
    model = MLP(n_in, hidden + [1], activation=activation) if activation else \
        MLP(n_in, hidden + [1])
    forward, gradient, n_params = forward_and_gradient(model, loss, n_in)
    if lift.lift(forward, n_params) is None:  # every layer below MIN_GROUP_WORK products
        assert all(a * b < 16 for a, b in zip([n_in] + hidden, hidden + [1]))
        return
    rows = random_rows(random.Random(seed), n_rows, n_in, specials)
    with pytest.MonkeyPatch.context() as monkeypatch:
        check_lift(forward, gradient, n_params, [p.data for p in model.parameters()], rows,
                   tmp_path_factory.mktemp('lift'), monkeypatch)


def test_three_hidden_layers_with_tanh_and_nan_rows(tmp_path, monkeypatch):
    """Adjoints into two hidden layers, each summed over the next layer's neurons in the
    engine's (descending) order: the case where summing in any other order changes bits."""
    random.seed(4)
    model = MLP(3, [12, 9, 7, 1], activation='tanh')
    forward, gradient, n_params = forward_and_gradient(model, 'square', 3)
    rows = random_rows(random.Random(4), 45, 3, specials=True)
    lifted = check_lift(forward, gradient, n_params, [p.data for p in model.parameters()], rows,
                        tmp_path, monkeypatch)
    # the adjoints of the first two hidden layers (the 1 x 7 output layer stays scalar)
    backward = [s for s in lifted.body if isinstance(s, loops.Dense) and s.group.init is None]
    assert len(backward) == 2


@pytest.mark.parametrize('column_major', [False, True])
def test_a_layer_built_by_hand_lifts_too(column_major, tmp_path, monkeypatch):
    rng = random.Random(5)
    W, b, params = hand_built_layer(rng, 7, 6, column_major)
    x = [Value(0.0, label=f'x{j}') for j in range(6)]
    z = Value(0.0, label='z')
    h = [sum((W[i][j] * x[j] for j in range(6)), b[i]) for i in range(7)]
    loss = sum((hi.sigmoid() for hi in h), (h[0] * h[3] - z / (h[6].exp() + 1.0)).log())
    forward = codegen.trace(loss, params + x + [z], 'sample')
    gradient = codegen.optimize(codegen.grad(forward, forward.inputs[:len(params)]))
    rows = [[rng.uniform(-2, 2) for _ in range(7)] for _ in range(40)]
    check_lift(forward, gradient, len(params), [p.data for p in params], rows, tmp_path,
               monkeypatch)


def two_layers(rng):
    """x (4 data) -> layer A (5 neurons, relu) -> layer B (6 neurons): weights, biases and
    the hidden Values, to be combined into losses lift does or does not cover."""
    A, a_bias, a_params = hand_built_layer(rng, 5, 4, False)
    B, b_bias, b_params = hand_built_layer(rng, 6, 5, False)
    x = [Value(0.0, label=f'x{j}') for j in range(4)]
    hidden = [sum((A[i][j] * x[j] for j in range(4)), a_bias[i]).relu() for i in range(5)]
    out = [sum((B[i][j] * hidden[j] for j in range(5)), b_bias[i]) for i in range(6)]
    return a_params + b_params, x, hidden, out, A


@pytest.mark.parametrize('case', ['a weight read twice', 'a hidden unit read elsewhere'])
def test_what_lift_does_not_cover_is_refused_and_the_trainer_stays_exact(case, tmp_path,
                                                                         monkeypatch):
    rng = random.Random(8)
    params, x, hidden, out, A = two_layers(rng)
    loss = sum(o.tanh() for o in out)
    loss = loss + A[0][0] * A[0][0] if case == 'a weight read twice' else loss + hidden[2]
    forward = codegen.trace(loss, params + x, 'sample')
    assert lift.lift(forward, len(params)) is None


def test_the_trainer_builds_w1_without_the_scalar_gradient_program(tmp_path, monkeypatch):
    use_private_cache(tmp_path, monkeypatch)
    random.seed(1337)
    trainer = Trainer(MLP(2, [16, 16, 1]), LOSSES['margin'], n_features=2,
                      batch_loss=lambda ps: 1e-4 * sum(p * p for p in ps))
    assert 'sample' not in trainer.__dict__  # the cached property was never computed
    assert 'sample_part0' in ''.join(trainer.source)  # and the loop level was emitted


def test_hostile_labels_reach_no_lifted_source(tmp_path, monkeypatch):
    """Labels are user text: lifting names new registers after parameters (g_<name>), so
    every hostile label is tried as a parameter's and an input's, with one and two threads."""
    hostile = ['*/ int evil; /*', 'vd', 'w', 'r', 'm', 'mg_x', 'S', 'xt', 'g_b0', 't0',
               'sample_chunk', '\n#include <stdio.h>', 'NAN']
    rng = random.Random(2)
    W, b, params = hand_built_layer(rng, 6, 5, False)
    for k, p in enumerate(params):
        p.label = hostile[k % len(hostile)]
    x = [Value(0.0, label=hostile[j]) for j in range(5)]
    loss = sum(sum((W[i][j] * x[j] for j in range(5)), b[i]).relu() for i in range(6))
    forward = codegen.trace(loss, params + x, 'sample')
    gradient = codegen.optimize(codegen.grad(forward, forward.inputs[:len(params)]))
    rows = [[rng.uniform(-2, 2) for _ in range(5)] for _ in range(3)]
    lifted = check_lift(forward, gradient, len(params), [p.data for p in params], rows,
                        tmp_path, monkeypatch)
    for threads in (1, 2):
        source = emit_loops.to_c(lifted, threads=threads)
        assert 'evil' not in source and 'stdio' not in source
