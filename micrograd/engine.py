"""The autodiff engine: a scalar `Value` that records every op, and `backward()`.

Drop-in compatible with Karpathy's micrograd (`Value(data, _children, _op)`, `.data`, `.grad`,
`._prev`, `._op`, `._backward`, `.backward()`), but each op's math comes from the table in
`ops.py`, and no function here recurses, so a chain of a million nodes backpropagates.
"""
import numbers

from micrograd import ops
from micrograd.ops import (ABS, ADD, DIV, EXP, LOG, MUL, NEG, POW, POWV, RELU, SIGMOID, STEP,
                           SUB, TANH)


class Value(ops.Node):
    """A scalar and its gradient, plus the op and arguments that produced it."""
    __slots__ = ('data', 'grad', '_args', '_op', '_rule', '_param', '_custom_backward', 'label')

    def __init__(self, data, _children=(), _op='', label=''):
        if type(data) is not float:
            data = _as_float(data)
        self.data, self.grad = data, 0.0
        self._args = tuple(_children)  # ordered, so gradients always sum in the same order
        self._op, self.label = _op, label
        self._rule = self._param = self._custom_backward = None

    # ---- recording: every op goes through here ---------------------------------------------
    def _record(self, op, args, p=None, symbol=None):
        """Apply table row `op` to `args` (Values or numbers); return the new node."""
        args = tuple([a if isinstance(a, Value) else Value(a) for a in args])
        xs = [a.data for a in args]
        if symbol is None:  # pow's symbol '**{p}' shows its exponent, e.g. '**2'
            symbol = op.symbol if p is None else op.symbol.format(p=f'{p:g}')
        out = Value(op.fwd(*xs) if p is None else op.fwd(*xs, p), args, symbol)
        out._rule, out._param = op, p
        return out

    # ---- arithmetic, as in micrograd ---------------------------------------------------------
    def __add__(self, other): return self._record(ADD, (self, other))         # a + b
    def __radd__(self, other): return self._record(ADD, (other, self))
    def __sub__(self, other): return self._record(SUB, (self, other))         # a - b
    def __rsub__(self, other): return self._record(SUB, (other, self))
    def __mul__(self, other): return self._record(MUL, (self, other))         # a * b
    def __rmul__(self, other): return self._record(MUL, (other, self))
    def __truediv__(self, other): return self._record(DIV, (self, other))     # a / b
    def __rtruediv__(self, other): return self._record(DIV, (other, self))
    def __neg__(self): return self._record(NEG, (self,))                      # -a

    def __pow__(self, other):
        if isinstance(other, Value):                                          # a ** b
            return self._record(POWV, (self, other))
        if not isinstance(other, numbers.Real):
            raise TypeError(f'exponent must be a number or a Value, not {type(other).__name__}')
        return self._record(POW, (self,), float(other), symbol=f'**{other}')  # a ** 2

    def __rpow__(self, other): return self._record(POWV, (other, self))       # 2 ** a

    # ---- functions -------------------------------------------------------------------------
    def relu(self): return self._record(RELU, (self,))
    def tanh(self): return self._record(TANH, (self,))
    def sigmoid(self): return self._record(SIGMOID, (self,))
    def exp(self): return self._record(EXP, (self,))
    def log(self): return self._record(LOG, (self,))
    def step(self): return self._record(STEP, (self,))
    def __abs__(self): return self._record(ABS, (self,))
    abs = __abs__

    # ---- backward pass ---------------------------------------------------------------------
    def backward(self):
        """Seed d self / d self = 1 and apply the chain rule in reverse topological order."""
        order = topo_order([self])
        self.grad = 1.0
        for node in reversed(order):
            node._backward()

    @property
    def _backward(self):
        """The chain-rule step of this node: a hand-written closure if one was assigned
        (micrograd-style custom ops), else the table rule."""
        return self._custom_backward or self._chain_rule

    @_backward.setter
    def _backward(self, fn):
        self._custom_backward = fn

    def _chain_rule(self):
        """child.grad += d self / d child * self.grad, with the partials from the op table."""
        if self._rule is None:
            return
        for child, partial in zip(self._args, self._partials()):
            if partial is not None:
                child.grad += partial * self.grad

    def _partials(self):
        """d self / d child for each child, from the op table row (None: no gradient flows).
        The backward-pass stepper (micrograd/stepper.py) shows these same numbers."""
        xs = [a.data for a in self._args]
        return self._rule.grad(*xs, self.data) if self._param is None else \
            self._rule.grad(*xs, self.data, self._param)

    @property
    def _prev(self):
        """The children as micrograd's set (read-only; `_args` keeps their order)."""
        return set(self._args)

    def __repr__(self):
        return f'Value(data={self.data}, grad={self.grad})'


def _as_float(data):
    if isinstance(data, numbers.Real) and not isinstance(data, bool):
        try:
            return float(data)
        except OverflowError:
            raise ValueError(f'Value({data!r:.40}): too large for a float (about 1.8e308 at most)')
    raise TypeError(f'Value needs a real number, got {type(data).__name__} {data!r:.60}')


def topo_order(roots):
    """Every node reachable from `roots`, children before parents, in a fixed order.

    Depth-first over the ordered `_args` with an explicit stack: no recursion limit.
    """
    order, seen = [], set()
    for root in roots:
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(root._args))]
        while stack:
            node, children = stack[-1]
            for child in children:
                if child not in seen:
                    seen.add(child)
                    stack.append((child, iter(child._args)))
                    break
            else:
                stack.pop()
                order.append(node)
    return order
