"""gradcheck(f, xs): backward() against central differences, for any scalar function of Values."""
import math

import pytest

from micrograd import gradcheck as exported_gradcheck
from micrograd.engine import Value
from micrograd.gradcheck import GradcheckError, gradcheck, numerical_grad


def square_with_wrong_backward(x):
    """A micrograd-style custom op whose hand-written _backward forgets the factor 2."""
    out = Value(x.data ** 2, (x,), 'square')

    def _backward():
        x.grad += x.data * out.grad  # should be 2 * x.data * out.grad
    out._backward = _backward
    return out


def square_with_right_backward(x):
    out = Value(x.data ** 2, (x,), 'square')

    def _backward():
        x.grad += 2 * x.data * out.grad
    out._backward = _backward
    return out


CORRECT = [
    ('tanh(w*x + b)', lambda w, x, b: (w * x + b).tanh(), (0.3, -1.2, 0.5)),
    ('a / b + log(a)', lambda a, b: a / b + a.log(), (2.0, -3.0)),
    ('x ** y * sigmoid(x)', lambda x, y: x ** y * x.sigmoid(), (1.7, 0.6)),
    ('relu away from 0', lambda x, y: (x * y).relu() + (x - y).relu(), (2.0, 0.5)),
    ('shared subexpression', lambda x: (lambda s: s * s + s.exp())(x * 3.0 - 1.0), (0.4,)),
    ('hand-written backward', lambda x, y: square_with_right_backward(x) * y, (1.5, -2.0)),
]


@pytest.mark.parametrize('what, f, xs', CORRECT, ids=[case[0] for case in CORRECT])
def test_passes_on_correct_gradients(what, f, xs):
    assert gradcheck(f, xs) is True


def test_raises_naming_the_input_with_a_wrong_gradient():
    f = lambda x, y: x * y + square_with_wrong_backward(y)  # noqa: E731
    with pytest.raises(GradcheckError, match=r'input 1 \(= 3\.0\)') as caught:
        gradcheck(f, [2.0, 3.0])
    # d/dy = x + 2y = 8, the wrong rule gives x + y = 5; both numbers are in the message.
    assert '5.0' in str(caught.value) and '8.0' in str(caught.value)


def test_returns_false_instead_when_asked():
    f = lambda x: square_with_wrong_backward(x)  # noqa: E731
    assert gradcheck(f, [3.0], raise_exception=False) is False


def test_gradcheck_error_is_an_assertion_error():
    # so a failing gradcheck inside a test reads as a test failure, not a crash
    assert issubclass(GradcheckError, AssertionError)


def test_numerical_grad_is_a_central_difference():
    # for a cubic, the central difference error is exactly eps**2 (the third derivative / 6)
    grads = numerical_grad(lambda x: x ** 3, [0.5], eps=1e-3)
    assert grads[0] == pytest.approx(0.75 + 1e-6, rel=1e-9)


def test_large_inputs_do_not_raise_false_alarms():
    # At 1e8 a float step of 1e-6 rounds to a multiple of ulp(1e8) = 1.5e-8, so dividing by
    # 2e-6 is off by ~1%: gradcheck then reports 2.98 for the slope 3 of a linear function.
    assert gradcheck(lambda x: x * 3.0, [1e8])
    assert gradcheck(lambda x: x * x, [1e6])


def test_tolerances_are_relative_and_absolute():
    # exp(30) ~ 1e13: an absolute tolerance alone would fail on roundoff
    assert gradcheck(lambda x: x.exp(), [30.0])
    # (x+1)**2 - 2x has slope 2e-8 at 1e-8, but f ~ 1 there: roundoff in the difference
    # (~1e-10) is large relative to the slope, small in absolute terms
    assert gradcheck(lambda x: (x + 1.0) * (x + 1.0) - 2.0 * x, [1e-8])


def test_is_exported_from_the_package():
    assert exported_gradcheck is gradcheck
    assert math.isfinite(numerical_grad(lambda x: x.tanh(), [0.1])[0])
