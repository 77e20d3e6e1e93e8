"""Losses equal their textbook formulas, backpropagate correctly and stay finite where a naive
formula overflows; metrics count what they say."""
import math

import pytest
from hypothesis import given, strategies as st

from micrograd.engine import Value
from micrograd.gradcheck import gradcheck
from micrograd.losses import (accuracy, binary_cross_entropy, binary_cross_entropy_with_logits,
                              l2_penalty, max_margin_loss, mean_squared_error, perceptron_loss,
                              softmax, softmax_cross_entropy, sum_squared_error, top_k_accuracy)

finite = st.floats(-10, 10, allow_nan=False, allow_infinity=False)
pairs = st.integers(1, 5).flatmap(lambda n: st.tuples(
    st.lists(finite, min_size=n, max_size=n), st.lists(finite, min_size=n, max_size=n)))


def close(a, b):
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z))


# ---- squared errors --------------------------------------------------------------------------

@given(pairs)
def test_squared_errors_are_the_textbook_sums(pair):
    outputs, targets = pair
    sse = sum((o - t) ** 2 for o, t in zip(outputs, targets))
    assert close(sum_squared_error([Value(o) for o in outputs], targets).data, sse)
    assert close(mean_squared_error([Value(o) for o in outputs], targets).data,
                 sse / len(outputs))


@given(pairs)
def test_squared_error_gradient_is_twice_the_residual(pair):
    outputs, targets = pair
    xs = [Value(o) for o in outputs]
    sum_squared_error(xs, targets).backward()
    assert all(close(x.grad, 2 * (o - t)) for x, o, t in zip(xs, outputs, targets))


def test_a_bare_value_counts_as_one_output():
    assert sum_squared_error(Value(3.0), 1.0).data == 4.0


@pytest.mark.parametrize('loss', [sum_squared_error, mean_squared_error, max_margin_loss,
                                  binary_cross_entropy, binary_cross_entropy_with_logits])
def test_outputs_and_targets_must_pair_up(loss):
    with pytest.raises(ValueError, match='2 outputs but 1 targets'):
        loss([Value(0.5), Value(0.5)], [1])
    with pytest.raises(ValueError, match='at least one output'):
        loss([], [])


# ---- two classes -----------------------------------------------------------------------------

probabilities = st.floats(0.01, 0.99)
targets01 = st.sampled_from([0.0, 1.0]) | st.floats(0, 1)


@given(p=probabilities, t=targets01)
def test_binary_cross_entropy_is_the_textbook_formula(p, t):
    expected = -(t * math.log(p) + (1 - t) * math.log(1 - p))
    assert close(binary_cross_entropy([Value(p)], [t]).data, expected)


@given(z=finite, t=targets01)
def test_from_logits_equals_bce_of_the_sigmoid(z, t):
    via_sigmoid = binary_cross_entropy([Value(z).sigmoid()], [t]).data
    assert close(binary_cross_entropy_with_logits([Value(z)], [t]).data, via_sigmoid)


@given(z=finite | st.just(0.0), t=targets01)
def test_from_logits_gradient_is_sigmoid_minus_target(z, t):
    x = Value(z)
    binary_cross_entropy_with_logits([x], [t]).backward()
    assert close(x.grad, sigmoid(z) - t)


@pytest.mark.parametrize('z, t, expected', [(1000.0, 0.0, 1000.0), (-1000.0, 1.0, 1000.0),
                                            (1000.0, 1.0, 0.0), (-1000.0, 0.0, 0.0)])
def test_from_logits_stays_finite_where_the_sigmoid_saturates(z, t, expected):
    x = Value(z)
    loss = binary_cross_entropy_with_logits([x], [t])
    loss.backward()
    assert loss.data == expected
    assert math.isfinite(x.grad)


@pytest.mark.parametrize('bad', [-0.1, 1.5, 'yes'])
def test_binary_targets_must_lie_in_0_1(bad):
    with pytest.raises(ValueError, match=r'targets must be numbers in \[0, 1\]'):
        binary_cross_entropy_with_logits([Value(0.0)], [bad])


@given(scores=st.lists(finite, min_size=1, max_size=5), data=st.data())
def test_max_margin_loss_is_the_demos_formula(scores, data):
    labels = data.draw(st.lists(st.sampled_from([-1, 1]), min_size=len(scores),
                                max_size=len(scores)))
    expected = sum(max(0.0, 1 - y * s) for y, s in zip(labels, scores)) / len(scores)
    assert close(max_margin_loss([Value(s) for s in scores], labels).data, expected)


def test_max_margin_labels_must_be_plus_or_minus_one():
    with pytest.raises(ValueError, match='labels must be -1 or \\+1, got 0'):
        max_margin_loss([Value(1.0)], [0])


def test_l2_penalty():
    ps = [Value(1.0), Value(-2.0)]
    penalty = l2_penalty(ps, alpha=0.5)
    penalty.backward()
    assert penalty.data == 2.5
    assert [p.grad for p in ps] == [1.0, -2.0]


# ---- several classes -------------------------------------------------------------------------

logit_lists = st.lists(finite, min_size=1, max_size=5)


@given(logit_lists)
def test_softmax_is_a_probability_distribution_ordered_like_the_logits(logits):
    probs = [p.data for p in softmax([Value(z) for z in logits])]
    assert close(sum(probs), 1.0)
    naive = [math.exp(z) / sum(math.exp(y) for y in logits) for z in logits]
    assert all(close(p, q) for p, q in zip(probs, naive))


@given(logits=logit_lists, data=st.data())
def test_softmax_cross_entropy_is_minus_log_softmax(logits, data):
    target = data.draw(st.integers(0, len(logits) - 1))
    expected = -math.log(math.exp(logits[target]) / sum(math.exp(z) for z in logits))
    assert close(softmax_cross_entropy([Value(z) for z in logits], target).data, expected)


@given(logits=logit_lists, data=st.data())
def test_softmax_cross_entropy_gradient_is_softmax_minus_one_hot(logits, data):
    target = data.draw(st.integers(0, len(logits) - 1))
    xs = [Value(z) for z in logits]
    softmax_cross_entropy(xs, target).backward()
    norm = sum(math.exp(z) for z in logits)
    for i, (x, z) in enumerate(zip(xs, logits)):
        assert close(x.grad, math.exp(z) / norm - (i == target))


def test_softmax_cross_entropy_stays_finite_for_huge_logits():
    xs = [Value(1000.0), Value(0.0), Value(-1000.0)]
    loss = softmax_cross_entropy(xs, 1)
    loss.backward()
    assert loss.data == 1000.0
    assert [x.grad for x in xs] == [1.0, -1.0, 0.0]


@pytest.mark.parametrize('target', [-1, 3, 1.0, None])
def test_softmax_cross_entropy_target_must_be_a_class_index(target):
    with pytest.raises(ValueError, match=r'class index in 0\.\.2'):
        softmax_cross_entropy([Value(0.0)] * 3, target)


@pytest.mark.parametrize('loss, n', [
    (lambda a, b: sum_squared_error([a, b], [0.5, -1.0]), 2),
    (lambda a, b: binary_cross_entropy([a.sigmoid(), b.sigmoid()], [1.0, 0.0]), 2),
    (lambda a, b: binary_cross_entropy_with_logits([a, b], [0.3, 1.0]), 2),
    (lambda a, b, c: softmax_cross_entropy([a, b, c], 2), 3),
])
@given(data=st.data())
def test_losses_backpropagate_like_central_differences(loss, n, data):
    xs = data.draw(st.lists(st.floats(-3, 3), min_size=n, max_size=n))
    assert gradcheck(loss, xs)


# ---- the perceptron loss ---------------------------------------------------------------------

@given(w=finite, x=finite, expected=st.sampled_from([0, 1]), predicted=st.sampled_from([0, 1]))
def test_perceptron_loss_gradient_is_minus_error_times_input(w, x, expected, predicted):
    weight = Value(w)
    perceptron_loss(weight * x, expected, predicted).backward()
    assert weight.grad == -(expected - predicted) * x


# ---- metrics ---------------------------------------------------------------------------------

def test_accuracy_counts_matches():
    assert accuracy([0, 1, 2, 1], [0, 1, 1, 1]) == 0.75
    assert accuracy(Value(1.0), [1.0]) == 1.0


def test_accuracy_needs_equal_lengths():
    with pytest.raises(ValueError, match='3 outputs but 2 targets'):
        accuracy([0, 1, 2], [0, 1])


def test_top_k_accuracy():
    scores = [[0.1, 0.7, 0.2], [0.5, 0.1, 0.4], [Value(0.3), Value(0.3), Value(0.4)]]
    labels = [2, 2, 1]
    assert top_k_accuracy(scores, labels, k=1) == 0.0
    # top 2: {1, 2} holds 2, {0, 2} holds 2, and {2, 0} misses 1 (the tie goes to class 0)
    assert top_k_accuracy(scores, labels, k=2) == 2 / 3
    assert top_k_accuracy(scores, labels, k=3) == 1.0


def test_top_k_ties_go_to_the_lower_class_index():
    assert top_k_accuracy([[0.5, 0.5]], [0], k=1) == 1.0
    assert top_k_accuracy([[0.5, 0.5]], [1], k=1) == 0.0


@given(st.lists(st.lists(finite, min_size=4, max_size=4), min_size=1, max_size=5),
       st.data())
def test_top_1_accuracy_is_accuracy_of_the_argmax_and_top_all_is_1(scores, data):
    labels = data.draw(st.lists(st.integers(0, 3), min_size=len(scores), max_size=len(scores)))
    argmax = [row.index(max(row)) for row in scores]
    assert top_k_accuracy(scores, labels, 1) == accuracy(argmax, labels)
    assert top_k_accuracy(scores, labels, 4) == 1.0


@pytest.mark.parametrize('k', [0, 4])
def test_top_k_needs_k_between_1_and_the_class_count(k):
    with pytest.raises(ValueError, match=r'k must be in 1\.\.3'):
        top_k_accuracy([[0.1, 0.2, 0.3]], [0], k)
