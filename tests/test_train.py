"""Compiled training (codegen.train.Trainer) trains exactly as the engine does.

The loss of every step equals the engine's bit for bit; parameters agree to the last bits only,
because the engine scales each row's gradient by 1/n before adding rows (in reverse order)
while the generated step adds rows in order and scales once. The fast build (rows in SIMD
lanes, two threads) adds rows in the same order, so it is held to the same.
"""
import math
import random

import pytest

from codegen.train import Trainer
from exact import assert_same, same
from micrograd.engine import Value
from micrograd.losses import l2_penalty, max_margin_loss
from micrograd.nn import MLP
from micrograd.optim import SGD, clip_grad_norm, clip_grad_value

pytestmark = pytest.mark.needs_cc

DATA = [([0.5, -1.0], 1), ([-0.25, 0.75], -1), ([1.5, 0.5], 1), ([-1.0, -0.5], -1),
        ([0.1, 0.2], 1)]


def model(seed=3):
    return MLP(2, [4, 3, 1], rng=random.Random(seed))


def sample_loss(m, x, y):
    return (1 + -y * m(x)).relu()


def l2(parameters):
    return l2_penalty(parameters, 1e-3)


def engine_training(steps, lr, **update):
    """The reference: micrograd's loop, a new graph every step, micrograd.optim's update."""
    m = model()
    optimizer = SGD(m.parameters(), lr, update.get('momentum', 0.0),
                    update.get('weight_decay', 0.0))
    losses = []
    for _ in range(steps):
        scores = [m([Value(a), Value(b)]) for (a, b), _ in DATA]
        loss = max_margin_loss(scores, [y for _, y in DATA]) + l2(m.parameters())
        optimizer.zero_grad()
        loss.backward()
        if update.get('clip_value') is not None:
            clip_grad_value(m.parameters(), update['clip_value'])
        if update.get('clip_norm') is not None:
            clip_grad_norm(m.parameters(), update['clip_norm'])
        optimizer.step()
        losses.append(loss.data)
    return m, losses


# The builds a Trainer can make: backend, and for C the opt-in fast build.
BUILDS = {'c': dict(backend='c'), 'c-fast': dict(backend='c', fast=True),
          'python': dict(backend='python')}


def compiled_training(steps, lr, build='c', **update):
    m = model()
    trainer = Trainer(m, sample_loss, 2, batch_loss=l2, **BUILDS[build])
    batch = trainer.rows([x + [y] for x, y in DATA])
    losses = [trainer.step(batch, lr, **update) for _ in range(steps)]
    return trainer.write_back(), losses


def close(a, b, rel=1e-12):
    return all(math.isclose(x, y, rel_tol=rel, abs_tol=1e-15) for x, y in zip(a, b))


# Both clips at once: by value first, then by norm (both bind with these limits), as
# micrograd.optim documents; the other order drifts the parameters by ~1e-3 in three steps.
UPDATES = [{}, {'momentum': 0.9}, {'weight_decay': 0.01}, {'clip_value': 0.05},
           {'clip_norm': 0.1}, {'clip_value': 0.05, 'clip_norm': 0.1},
           {'momentum': 0.5, 'weight_decay': 0.001, 'clip_norm': 1.0}]


@pytest.mark.parametrize('update', UPDATES, ids=lambda u: ','.join(u) or 'plain')
@pytest.mark.parametrize('build', sorted(BUILDS))
def test_compiled_training_follows_the_engines_loss_curve(update, build):
    reference, expected = engine_training(8, 0.3, **update)
    trained, losses = compiled_training(8, 0.3, build, **update)
    # same parameters, rows added in the same order (the fast build's too): the same bits
    assert same(losses[0], expected[0]), (losses[0], expected[0])
    assert close(losses, expected), (losses, expected)
    assert close([p.data for p in trained.parameters()],
                 [p.data for p in reference.parameters()])


def test_the_python_and_c_steps_compute_the_same_bits():
    _, in_c = compiled_training(5, 0.2, 'c', momentum=0.9)
    _, in_python = compiled_training(5, 0.2, 'python', momentum=0.9)
    assert_same(in_c, in_python)


def test_parameters_come_back_into_the_micrograd_model():
    m = model()
    before = [p.data for p in m.parameters()]
    trainer = Trainer(m, sample_loss, 2)
    trainer.step([x + [y] for x, y in DATA], 0.5)
    assert [p.data for p in m.parameters()] == before  # untouched until written back
    trainer.write_back()
    assert [p.data for p in m.parameters()] == list(trainer.params)[:len(before)] != before


@pytest.mark.parametrize('build', sorted(BUILDS))
def test_predict_gives_the_models_outputs(build):
    m = model()
    trainer = Trainer(m, sample_loss, 2, **BUILDS[build])
    expected = [(m([Value(a), Value(b)]).data,) for (a, b), _ in DATA]
    predicted = trainer.predict([x for x, _ in DATA])
    assert len(predicted) == len(expected)
    for want, got in zip(expected, predicted):
        assert_same(want, got)


def test_several_targets_per_row_reach_the_loss_as_a_list():
    m = MLP(2, [3, 2], rng=random.Random(0))

    def squared_error(model, x, ys):
        return sum((out - y) ** 2 for out, y in zip(model(x), ys))
    trainer = Trainer(m, squared_error, 2, n_targets=2, reduction='sum')
    row = [0.5, -0.5, 1.0, 0.0]
    expected = squared_error(m, [Value(0.5), Value(-0.5)], [1.0, 0.0]).data
    assert same(trainer.step([row], 0.0), expected)


def test_fit_reports_each_epoch_and_can_be_quiet(capsys):
    trainer = Trainer(model(), sample_loss, 2)
    rows = [x + [y] for x, y in DATA]
    losses = trainer.fit(rows, epochs=3, lr=lambda k: 0.1, batch_size=2,
                         metric=lambda t, r: 0.5)
    printed = capsys.readouterr().out.splitlines()
    assert len(losses) == 9 and len(printed) == 3
    assert printed[0].startswith('epoch 1/3: loss ') and 'samples/s' in printed[0]
    trainer.fit(rows, epochs=2, lr=0.1, verbose=False)
    assert capsys.readouterr().out == ''


def test_a_second_trainer_for_the_same_model_runs_no_compiler(monkeypatch):
    Trainer(model(), sample_loss, 2, batch_loss=l2)  # builds, or finds it built already

    def no_compiler(*args, **kwargs):
        raise AssertionError('the compiler ran on a cache hit')
    monkeypatch.setattr('subprocess.run', no_compiler)
    monkeypatch.setattr('subprocess.Popen', no_compiler)
    trainer = Trainer(model(), sample_loss, 2, batch_loss=l2)
    assert trainer.step([DATA[0][0] + [DATA[0][1]]], 0.0) > 0.0


@pytest.mark.parametrize('bad, message', [
    (dict(lr=-0.1), 'lr must be a finite number >= 0'),
    (dict(lr=0.1, momentum=-1.0), 'momentum must be a finite number >= 0')])
def test_bad_settings_are_refused(bad, message):
    trainer = Trainer(model(), sample_loss, 2)
    with pytest.raises(ValueError, match=message):
        trainer.step([DATA[0][0] + [1.0]], **bad)


def test_rows_of_the_wrong_length_are_refused():
    trainer = Trainer(model(), sample_loss, 2)
    with pytest.raises(ValueError, match='expected 3'):
        trainer.step([[1.0, 2.0]], 0.1)
    with pytest.raises(ValueError, match="reduction must be 'mean' or 'sum'"):
        Trainer(model(), sample_loss, 2, reduction='median')


def test_an_infinite_gradient_norm_cannot_be_clipped():
    trainer = Trainer(MLP(1, [1], rng=random.Random(0)), lambda m, x, y: (m(x) * y).exp(), 1)
    with pytest.raises(ValueError, match='not finite'):
        trainer.step([[1.0, 1e308]], 0.1, clip_norm=1.0)
