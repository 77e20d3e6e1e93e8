"""Loss functions (built from engine ops, so they backpropagate and compile) and metrics.

Losses take a model's outputs (a list of Values, or one bare Value as a one-output Layer gives)
and the targets (numbers), and return one Value to call `backward()` on. Metrics take plain
numbers or Values and return a float.
"""
import functools
import math
import numbers

from micrograd.engine import Value
from micrograd.ops import MAX


def _as_list(outputs):
    return [outputs] if isinstance(outputs, (Value, numbers.Real)) else list(outputs)


def _paired(outputs, targets, who):
    """outputs and targets as two non-empty lists of equal length."""
    outputs, targets = _as_list(outputs), _as_list(targets)
    if len(outputs) != len(targets):
        raise ValueError(f'{who}: {len(outputs)} outputs but {len(targets)} targets')
    if not outputs:
        raise ValueError(f'{who}: needs at least one output')
    return outputs, targets


def _total(values):
    return sum(values[1:], values[0])  # no extra `0 + x0` node, unlike sum(values)


# ---- regression ------------------------------------------------------------------------------

def sum_squared_error(outputs, targets):
    """(o0 - t0)**2 + (o1 - t1)**2 + ..."""
    outputs, targets = _paired(outputs, targets, 'sum_squared_error')
    return _total([(o - t) ** 2 for o, t in zip(outputs, targets)])


def mean_squared_error(outputs, targets):
    """sum_squared_error divided by the number of outputs."""
    outputs, targets = _paired(outputs, targets, 'mean_squared_error')
    return sum_squared_error(outputs, targets) / len(outputs)


# ---- two classes -----------------------------------------------------------------------------

def _check_probability_targets(targets, who):
    for t in targets:
        if not isinstance(t, numbers.Real) or not 0.0 <= t <= 1.0:
            raise ValueError(f'{who}: targets must be numbers in [0, 1], got {t!r}')


def binary_cross_entropy(probabilities, targets):
    """Mean of -(t log p + (1 - t) log(1 - p)), for outputs p already in (0, 1) (a sigmoid).
    A p of exactly 0 or 1 gives inf; prefer binary_cross_entropy_with_logits."""
    probabilities, targets = _paired(probabilities, targets, 'binary_cross_entropy')
    _check_probability_targets(targets, 'binary_cross_entropy')
    terms = [-(t * p.log() + (1.0 - t) * (1.0 - p).log()) for p, t in zip(probabilities, targets)]
    return _total(terms) / len(terms)


def softplus(z):
    """log(1 + exp(z)), computed as relu(z) + log(1 + exp(-|z|)) so exp never overflows.

    |z| is written z * (2 * step(z) - 1) rather than with `abs`: at z = 0 the engine's relu
    takes slope 0 (the z <= 0 side) and abs takes slope 0 (neither side); mixing the two sides
    would make the gradient at 0 come out 0 instead of 1/2. With step(z), both take the z <= 0
    side, where log(1 + exp(z)) is smooth.
    """
    magnitude = z * (2.0 * z.step() - 1.0)
    return z.relu() + (1.0 + (-magnitude).exp()).log()


def binary_cross_entropy_with_logits(logits, targets):
    """binary_cross_entropy(sigmoid(z), t), computed stably from the logit z as
    softplus(z) - z*t: exp never overflows, log never sees 0."""
    logits, targets = _paired(logits, targets, 'binary_cross_entropy_with_logits')
    _check_probability_targets(targets, 'binary_cross_entropy_with_logits')
    terms = [softplus(z) - z * t for z, t in zip(logits, targets)]
    return _total(terms) / len(terms)


def max_margin_loss(scores, labels):
    """The hinge loss of micrograd's demo: mean of relu(1 - y * score), labels y = -1 or +1."""
    scores, labels = _paired(scores, labels, 'max_margin_loss')
    for y in labels:
        if y not in (-1, 1):
            raise ValueError(f'max_margin_loss: labels must be -1 or +1, got {y!r}')
    losses = [(1 + -y * s).relu() for y, s in zip(labels, scores)]  # the demo's exact form
    return sum(losses) * (1.0 / len(losses))


def l2_penalty(parameters, alpha):
    """alpha * sum(p * p): weight decay written as a loss (the demo uses alpha = 1e-4)."""
    return alpha * sum(p * p for p in parameters)


# ---- several classes -------------------------------------------------------------------------

def _maximum(values):
    """The largest of `values` as a graph node (the op table's max), not a number read from
    `.data`: a traced program then computes it from its inputs instead of freezing the value
    seen when it was traced."""
    return functools.reduce(MAX, values)


def softmax(logits):
    """exp(z_i) / sum_j exp(z_j), shifted by max(z) so exp never overflows (the shift cancels
    in the result and, up to rounding, in the gradient)."""
    logits = _as_list(logits)
    if not logits:
        raise ValueError('softmax: needs at least one logit')
    shift = _maximum(logits)
    exps = [(z - shift).exp() for z in logits]
    norm = _total(exps)
    return [e / norm for e in exps]


def softmax_cross_entropy(logits, target):
    """-log softmax(logits)[target] for one sample of several classes, as
    log(sum_j exp(z_j - m)) - (z_target - m) with m = max(z): stable for large logits."""
    logits = _as_list(logits)
    if not isinstance(target, numbers.Integral) or not 0 <= target < len(logits):
        raise ValueError(f'softmax_cross_entropy: target must be a class index in '
                         f'0..{len(logits) - 1}, got {target!r}')
    shift = _maximum(logits)
    log_norm = _total([(z - shift).exp() for z in logits]).log()
    return log_norm - (logits[target] - shift)


# ---- the perceptron --------------------------------------------------------------------------

def perceptron_loss(activation, expected, predicted):
    """-(expected - predicted) * activation, with `predicted` a constant (the step of the
    activation, which has no gradient).

    Its gradient with respect to each weight is -(expected - predicted) * x_i, so one SGD step
    w <- w - lr * grad is exactly the perceptron rule w <- w + lr * (expected - predicted) * x_i
    (and for the bias, x = 1): the perceptron rule is gradient descent on this loss.
    """
    error = float(expected) - float(predicted)
    return activation * -error


# ---- metrics ---------------------------------------------------------------------------------

def _data(x):
    return x.data if isinstance(x, Value) else x


def accuracy(predicted, actual):
    """The fraction of positions where predicted == actual (class labels, not scores)."""
    predicted, actual = _paired(predicted, actual, 'accuracy')
    return sum(_data(p) == _data(a) for p, a in zip(predicted, actual)) / len(actual)


def top_k_accuracy(scores, labels, k):
    """The fraction of samples whose true label is among their k highest scores.
    `scores` holds one list of class scores per sample; ties go to the lower class index."""
    scores, labels = list(scores), list(labels)
    if len(scores) != len(labels) or not scores:
        raise ValueError(f'top_k_accuracy: {len(scores)} score lists but {len(labels)} labels')
    hits = 0
    for row, label in zip(scores, labels):
        row = [_data(s) for s in row]
        if not 1 <= k <= len(row):
            raise ValueError(f'top_k_accuracy: k must be in 1..{len(row)}, got {k!r}')
        if any(math.isnan(s) for s in row):
            raise ValueError('top_k_accuracy: a score is nan, so there is no ranking')
        ranked = sorted(range(len(row)), key=lambda i: -row[i])  # stable: ties keep index order
        hits += label in ranked[:k]
    return hits / len(labels)
