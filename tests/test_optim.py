"""SGD with momentum and weight decay, and gradient clipping by value and by global norm."""
import math
import random

import pytest
from hypothesis import given, strategies as st

from micrograd.engine import Value
from micrograd.losses import mean_squared_error
from micrograd.nn import MLP
from micrograd.optim import SGD, clip_grad_norm, clip_grad_value, grad_norm

finite = st.floats(-100, 100, allow_nan=False, allow_infinity=False)


def with_grads(grads, data=0.0):
    params = [Value(data) for _ in grads]
    for p, g in zip(params, grads):
        p.grad = g
    return params


# ---- SGD -------------------------------------------------------------------------------------

@given(data=finite, grad=finite, lr=st.floats(0, 10))
def test_a_plain_step_is_data_minus_lr_times_grad_exactly(data, grad, lr):
    [p] = with_grads([grad], data)
    SGD([p], lr=lr).step()
    assert p.data == data - lr * grad


def test_momentum_accumulates_a_velocity():
    [p] = with_grads([1.0], data=0.0)
    optimizer = SGD([p], lr=0.1, momentum=0.9)
    optimizer.step()               # v = 1
    assert p.data == -0.1
    optimizer.step()               # v = 0.9 * 1 + 1 = 1.9
    assert math.isclose(p.data, -0.1 - 0.19)


def test_weight_decay_adds_decay_times_the_weight_to_the_gradient():
    [p] = with_grads([0.5], data=2.0)
    SGD([p], lr=0.1, weight_decay=0.01).step()
    assert math.isclose(p.data, 2.0 - 0.1 * (0.5 + 0.01 * 2.0))


def test_zero_grad_clears_the_gradients_of_its_parameters():
    params = with_grads([1.0, -2.0])
    SGD(params, lr=0.1).zero_grad()
    assert [p.grad for p in params] == [0.0, 0.0]


@given(seed=st.integers(0, 1000))
def test_one_small_step_lowers_the_loss(seed):
    rng = random.Random(seed)
    model = MLP(2, [4, 1], activation='tanh', rng=rng)
    xs = [[rng.uniform(-1, 1), rng.uniform(-1, 1)] for _ in range(4)]
    ys = [rng.uniform(-1, 1) for _ in xs]
    loss = mean_squared_error([model(x) for x in xs], ys)
    loss.backward()
    if grad_norm(model.parameters()) < 1e-6:
        return  # at a stationary point no step can help
    SGD(model.parameters(), lr=1e-3).step()
    assert mean_squared_error([model(x) for x in xs], ys).data < loss.data


@pytest.mark.parametrize('kwargs, message', [
    ({'lr': -0.1}, 'learning rate lr must be a number >= 0, got -0.1'),
    ({'lr': float('nan')}, 'learning rate'),
    ({'lr': '0.1'}, 'learning rate'),
    ({'lr': 0.1, 'momentum': -0.5}, 'momentum'),
    ({'lr': 0.1, 'weight_decay': -1}, 'weight_decay'),
])
def test_sgd_refuses_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SGD([Value(0.0)], **kwargs)


def test_a_schedule_cannot_set_a_negative_learning_rate():
    optimizer = SGD([Value(0.0)], lr=0.1)
    with pytest.raises(ValueError, match='learning rate'):
        optimizer.lr = -1.0


def test_sgd_takes_values_only():
    with pytest.raises(TypeError, match='SGD takes Values'):
        SGD([1.0, 2.0], lr=0.1)


# ---- clipping --------------------------------------------------------------------------------

@given(grads=st.lists(finite, min_size=1, max_size=6), clip=st.floats(0, 50))
def test_clip_by_value_clamps_each_gradient_and_keeps_the_small_ones(grads, clip):
    params = with_grads(grads)
    clip_grad_value(params, clip)
    for p, g in zip(params, grads):
        assert p.grad == (g if -clip <= g <= clip else math.copysign(clip, g))


@given(grads=st.lists(finite, min_size=1, max_size=6), max_norm=st.floats(0.01, 50))
def test_clip_by_norm_caps_the_global_norm_and_keeps_the_direction(grads, max_norm):
    params = with_grads(grads)
    norm = math.sqrt(sum(g * g for g in grads))
    assert clip_grad_norm(params, max_norm) == pytest.approx(norm)
    clipped = [p.grad for p in params]
    if norm <= max_norm:
        assert clipped == grads
    else:
        assert math.isclose(grad_norm(params), max_norm, rel_tol=1e-12)
        assert all(math.isclose(c, g * max_norm / norm, rel_tol=1e-12, abs_tol=1e-300)
                   for c, g in zip(clipped, grads))


@pytest.mark.parametrize('bad', [math.inf, math.nan])
def test_clip_by_norm_refuses_an_infinite_or_nan_gradient(bad):
    with pytest.raises(ValueError, match='gradient norm is'):
        clip_grad_norm(with_grads([1.0, bad]), 1.0)


@pytest.mark.parametrize('clip', [lambda ps: clip_grad_norm(ps, -1.0),
                                  lambda ps: clip_grad_value(ps, -1.0)])
def test_clipping_thresholds_must_not_be_negative(clip):
    with pytest.raises(ValueError, match='must be a number >= 0'):
        clip(with_grads([1.0]))
