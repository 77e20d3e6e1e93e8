"""Optimisation: stochastic gradient descent, and gradient clipping against exploding gradients.

These work on the numbers, not the graph: after `loss.backward()` every parameter holds its
gradient in `.grad`, and a step only changes `.data`.
"""
import math
import numbers

from micrograd.engine import Value


def _check_parameters(parameters, who):
    parameters = list(parameters)
    for p in parameters:
        if not isinstance(p, Value):
            raise TypeError(f'{who} takes Values (model.parameters()), got {type(p).__name__}')
    return parameters


def _check_non_negative(x, what):
    if not isinstance(x, numbers.Real) or isinstance(x, bool) or not x >= 0.0:
        raise ValueError(f'{what} must be a number >= 0, got {x!r}')
    return float(x)


class SGD:
    """p <- p - lr * g, where g is the gradient plus weight_decay * p, and with momentum g is
    replaced by the running velocity v <- momentum * v + g (PyTorch's convention)."""

    def __init__(self, parameters, lr, momentum=0.0, weight_decay=0.0):
        self.parameters = _check_parameters(parameters, 'SGD')
        self.lr = lr
        self.momentum = _check_non_negative(momentum, 'momentum')
        self.weight_decay = _check_non_negative(weight_decay, 'weight_decay')
        self.velocity = [0.0] * len(self.parameters)

    @property
    def lr(self):
        return self._lr

    @lr.setter
    def lr(self, lr):  # checked on every change, so a schedule cannot make it negative either
        self._lr = _check_non_negative(lr, 'learning rate lr')

    def step(self):
        lr, momentum, decay = self._lr, self.momentum, self.weight_decay
        for i, p in enumerate(self.parameters):
            g = p.grad
            if decay:  # skipped when 0, so plain SGD is exactly p.data -= lr * p.grad
                g = g + decay * p.data
            if momentum:
                g = self.velocity[i] = momentum * self.velocity[i] + g
            p.data -= lr * g

    def zero_grad(self):
        for p in self.parameters:
            p.grad = 0.0


def clip_grad_value(parameters, clip_value):
    """Clamp every gradient into [-clip_value, clip_value]."""
    clip_value = _check_non_negative(clip_value, 'clip_value')
    for p in _check_parameters(parameters, 'clip_grad_value'):
        p.grad = min(max(p.grad, -clip_value), clip_value)


def grad_norm(parameters):
    """The global L2 norm of all the gradients, sqrt(sum g**2)."""
    return math.sqrt(sum(p.grad * p.grad for p in parameters))


def clip_grad_norm(parameters, max_norm):
    """Scale all gradients by one factor so that their global norm is at most max_norm; the
    direction of the step is kept. Returns the norm before clipping."""
    max_norm = _check_non_negative(max_norm, 'max_norm')
    parameters = _check_parameters(parameters, 'clip_grad_norm')
    norm = grad_norm(parameters)
    if not math.isfinite(norm):
        raise ValueError(f'clip_grad_norm: the gradient norm is {norm}; clipping cannot '
                         f'repair an inf or nan gradient')
    if norm > max_norm:
        scale = max_norm / norm
        for p in parameters:
            p.grad *= scale
    return norm
