"""What the Trainer does with bad input: one contract, whatever the backend.

Every input is checked before any number changes, by the same code on both backends
(codegen/validate.py), so both refuse it with the same exception and message, and a refused
call leaves the parameters and the momentum exactly as they were.
"""
import math
import random

import numpy
import pytest

from codegen.train import Trainer
from micrograd.nn import MLP

BACKENDS = ['python', pytest.param('c', marks=pytest.mark.needs_cc)]
ROWS = [[0.5, -1.0, 1.0], [-0.25, 0.75, -1.0], [1.5, 0.5, 1.0]]


def sample_loss(m, x, y):
    return (1 + -y * m(x)).relu()


def trainer(backend, **options):
    return Trainer(MLP(2, [3, 1], rng=random.Random(0)), sample_loss, 2, backend=backend,
                   **options)


def state(t):
    """Every number a step may change: parameters and momentum, as bits (repr keeps -0.0)."""
    if t.backend == 'python':
        return [repr(p.data) for p in t.parameters], [repr(v) for v in t.optimizer.velocity]
    return [repr(v) for v in t.params], [repr(v) for v in t.velocity]


def refused(t, call, error, message):
    """`call` raises `error` with `message` in it and changes no number of the trainer."""
    t.step(ROWS, 0.1, momentum=0.9)  # a non-zero velocity, so losing it would show
    before = state(t)
    with pytest.raises(error) as raised:
        call()
    assert message in str(raised.value)
    assert state(t) == before
    return str(raised.value)


# ---- silent damage ---------------------------------------------------------------------------

@pytest.mark.parametrize('backend', BACKENDS)
def test_an_empty_batch_is_refused_and_changes_nothing(backend):
    t = trainer(backend)
    refused(t, lambda: t.step(t.rows([]), 0.1), ValueError, 'the batch is empty')
    refused(t, lambda: t.step([], 0.1), ValueError, 'the batch is empty')


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('setting', ['lr', 'momentum', 'weight_decay'])
@pytest.mark.parametrize('value', [math.nan, math.inf, -0.5])
def test_a_nan_infinite_or_negative_rate_is_refused_and_changes_nothing(backend, setting, value):
    t = trainer(backend)
    settings = {'lr': 0.1, setting: value}
    refused(t, lambda: t.step(ROWS, **settings), ValueError,
            f'{setting} must be a finite number >= 0, got {value!r}')


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('bad', [math.nan, math.inf, -math.inf])
def test_rows_holding_nan_or_inf_are_refused_naming_the_row(backend, bad):
    t = trainer(backend)
    rows = ROWS + [[0.0, bad, 1.0]]
    message = f'row 3 holds {bad!r} at position 1: training data must be finite'
    refused(t, lambda: t.rows(rows), ValueError, message)
    refused(t, lambda: t.step(rows, 0.1), ValueError, message)
    refused(t, lambda: t.fit(rows, 1, 0.1, verbose=False), ValueError, message)
    refused(t, lambda: t.rows(numpy.array(rows)), ValueError, message)


@pytest.mark.parametrize('backend', BACKENDS)
def test_a_numpy_array_changed_after_rows_is_checked_again_at_each_step(backend):
    """Rows keep the caller's float64 array without copying it, so a value written into it
    later must still be refused (our own copies are checked once, then trusted)."""
    t = trainer(backend)
    data = numpy.array(ROWS)
    batch = t.rows(data)
    t.step(batch, 0.0)
    data[1, 0] = math.nan
    message = 'row 1 holds nan at position 0: training data must be finite'
    refused(t, lambda: t.step(batch, 0.1), ValueError, message)


# ---- batch sizes -----------------------------------------------------------------------------

@pytest.mark.parametrize('backend', BACKENDS)
def test_fit_without_rows_is_refused(backend):
    t = trainer(backend)
    refused(t, lambda: t.fit([], 1, 0.1, verbose=False), ValueError, 'fit needs at least one row')


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('size, error, message', [
    (0, ValueError, 'batch_size must be >= 1, got 0'),
    (-1, ValueError, 'batch_size must be >= 1, got -1'),
    (1.5, TypeError, 'batch_size must be a whole number, got float 1.5'),
    (True, TypeError, 'batch_size must be a whole number, got bool True')])
def test_a_batch_size_below_one_is_refused_quiet_or_not(backend, size, error, message):
    t = trainer(backend)
    for verbose in (True, False):
        refused(t, lambda: t.fit(ROWS, 1, 0.1, batch_size=size, verbose=verbose), error, message)


@pytest.mark.parametrize('backend', BACKENDS)
def test_a_batch_size_above_the_row_count_means_one_batch_of_all_rows(backend):
    whole, larger = trainer(backend), trainer(backend)
    assert larger.fit(ROWS, 2, 0.1, batch_size=100, verbose=False) == \
        whole.fit(ROWS, 2, 0.1, verbose=False)
    assert len(whole.fit(ROWS, 2, 0.1, verbose=False)) == 2


@pytest.mark.parametrize('backend', BACKENDS)
def test_a_learning_rate_schedule_is_checked_before_the_first_step(backend):
    t = trainer(backend)
    refused(t, lambda: t.fit(ROWS, 3, lambda k: 0.1 if k < 2 else math.nan, batch_size=1,
                             verbose=False),
            ValueError, 'lr must be a finite number >= 0, got nan')


# ---- numbers ---------------------------------------------------------------------------------

@pytest.mark.parametrize('backend', BACKENDS)
def test_rows_take_any_real_number_value_takes(backend):
    reference = trainer(backend).step(ROWS, 0.0)
    numpy_rows = [[numpy.float32(0.5), numpy.float64(-1.0), numpy.int64(1)],
                  [numpy.float16(-0.25), 0.75, -1], [1.5, numpy.float32(0.5), 1]]
    assert trainer(backend).step(numpy_rows, 0.0) == reference
    for array in (numpy.array(ROWS), numpy.array(ROWS, dtype=numpy.float32),
                  numpy.asfortranarray(ROWS), numpy.array(ROWS)[:, :]):
        assert trainer(backend).step(array, 0.0) == reference


def test_a_contiguous_float64_array_is_used_without_copying_or_a_loop():
    rows = numpy.array(ROWS)
    batch = trainer('python').rows(rows)
    assert batch.values is rows  # no conversion: not even a copy, let alone a loop per value


@pytest.mark.parametrize('backend', BACKENDS)
def test_bools_are_refused_saying_so(backend):
    t = trainer(backend)
    refused(t, lambda: t.rows([[True, 0.5, 1.0]]), TypeError,
            'row 0, position 0 is the bool True: write a number')
    refused(t, lambda: t.rows(numpy.array([[True, False, True]])), TypeError,
            'a numpy array of bools')
    refused(t, lambda: t.step(ROWS, True), TypeError, 'lr is the bool True')


@pytest.mark.parametrize('backend', BACKENDS)
def test_strings_and_wrong_lengths_are_refused(backend):
    t = trainer(backend)
    refused(t, lambda: t.rows([['1', 0.5, 1.0]]), TypeError,
            "row 0, position 0 must be a real number, got str '1'")
    refused(t, lambda: t.rows([[0.5, 1.0]]), ValueError, 'row 0 has 2 values, expected 3')
    refused(t, lambda: t.rows('abc'), TypeError, 'rows must be a list of rows')
    refused(t, lambda: t.rows([1.0, 2.0, 3.0]), TypeError,
            'row 0 must be a sequence of numbers, got float 1.0')


# ---- one contract ----------------------------------------------------------------------------

@pytest.mark.needs_cc
def test_rows_are_the_same_kind_of_object_on_both_backends():
    python, c = trainer('python').rows(ROWS), trainer('c').rows(ROWS)
    assert type(python) is type(c) and len(python) == len(c) == 3
    assert python.as_lists() == c.as_lists() == ROWS


@pytest.mark.needs_cc
def test_rows_made_for_one_backend_train_the_other():
    python, c = trainer('python'), trainer('c')
    assert c.step(python.rows(ROWS), 0.1) == python.step(c.rows(ROWS), 0.1)


@pytest.mark.parametrize('backend', BACKENDS)
def test_a_negative_clip_is_refused_not_read_as_off(backend):
    t = trainer(backend)
    for setting in ('clip_value', 'clip_norm'):
        refused(t, lambda: t.step(ROWS, 0.1, **{setting: -1}), ValueError,
                f'{setting} must be None (off) or a number >= 0, got -1.0')


@pytest.mark.parametrize('backend', BACKENDS)
def test_a_loss_that_is_not_a_value_is_explained(backend):
    with pytest.raises(TypeError, match="sample_loss must return a Value built from the model's "
                                        "output .* got float 1.5"):
        Trainer(MLP(2, [1]), lambda m, x, y: 1.5, 2, backend=backend)
    with pytest.raises(TypeError, match='batch_loss must return a Value'):
        Trainer(MLP(2, [1]), sample_loss, 2, batch_loss=lambda ps: 0.0, backend=backend)


@pytest.mark.parametrize('backend', BACKENDS)
def test_an_infinite_gradient_norm_is_refused_alike_and_changes_nothing(backend):
    t = Trainer(MLP(1, [1], rng=random.Random(0)), lambda m, x, y: (m(x) * y).exp(), 1,
                backend=backend)
    before = state(t)
    with pytest.raises(ValueError) as raised:
        t.step([[1.0, 1e308]], 0.1, clip_norm=1.0)
    assert str(raised.value) == ('clip_norm: the gradient norm is not finite; clipping cannot '
                                 'repair an inf or nan gradient')
    assert state(t) == before
    t.step([[1.0, 0.5]], 0.1, clip_norm=1.0)  # the refusal is not carried into the next step
    assert state(t) != before


@pytest.mark.parametrize('backend', BACKENDS)
def test_predict_takes_any_float_and_gives_ieee_answers(backend):
    t = trainer(backend)
    assert [math.isnan(s[0]) for s in t.predict([[math.nan, 0.0], [0.5, 0.25]])] == [True, False]
    refused(t, lambda: t.predict([[True, 0.0]]), TypeError, 'feature row 0, position 0 is the bool')
