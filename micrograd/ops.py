"""The op table: the one place where the math of every op lives.

Each row pairs an op's forward value with its local partial derivatives (d out / d x_i), and
gives the source templates the code generators use. The engine's backward pass, the codegen
gradient pass, generated Python and generated C all read these rows; nothing else in the project
knows what `tanh` means.

Rules are written with `+ - *` and calls to table ops, so the same rule runs on floats (engine
backward) and on symbolic registers (code generation). Division and powers inside rules go
through DIV / POW, because Python floats raise where IEEE-754 returns inf or nan.
A partial of None means "no gradient flows here" (step, sign).
"""
import math
import operator

from micrograd import ieee


class Node:
    """Base of the graph objects (engine `Value`, codegen `Sym`): an op applied to one records."""
    __slots__ = ()


class Op:
    """One row of the table: name, display symbol, arity, forward, partials and templates.

    fwd(*xs[, p])        forward value on floats (IEEE-safe)
    grad(*xs, out[, p])  tuple of partials d out / d x_i; None where no gradient flows
    py, c                expression templates over atoms {0}, {1} and the parameter {p}
    """

    def __init__(self, name, symbol, arity, fwd, grad, py, c=None, param=False):
        self.name, self.symbol, self.arity, self.param = name, symbol, arity, param
        self.fwd, self.grad = fwd, grad
        self.py, self.c = py, c if c is not None else py

    def __call__(self, *args, p=None):
        # JAX's `bind` in three lines: a graph argument records the op, floats just compute.
        for arg in args:
            if isinstance(arg, Node):
                return arg._record(self, args, p)
        return self.fwd(*args) if p is None else self.fwd(*args, p)

    def __repr__(self):
        return f'Op({self.name})'


def _relu(x):
    return 0.0 if x < 0.0 else x  # micrograd's form: nan passes through


def _max(a, b):
    return a if a > b or a != a else b  # nan if either is nan; a tie gives b


def _step(x):
    return 1.0 if x > 0.0 else 0.0  # Heaviside with step(0) = 0, the derivative of relu


# ---- the table -------------------------------------------------------------------------------
# Rows are in the order a reader meets them; rules may use rows defined further down.

ADD = Op('add', '+', 2, operator.add, lambda a, b, out: (1.0, 1.0), '{0} + {1}')
SUB = Op('sub', '-', 2, operator.sub, lambda a, b, out: (1.0, -1.0), '{0} - {1}')
MUL = Op('mul', '*', 2, operator.mul, lambda a, b, out: (b, a), '{0} * {1}')
DIV = Op('div', '/', 2, ieee.div,
         lambda a, b, out: (DIV(1.0, b), -DIV(out, b)),            # d(a/b) = 1/b, -a/b**2
         'div({0}, {1})', c='{0} / {1}')
NEG = Op('neg', 'neg', 1, operator.neg, lambda a, out: (-1.0,), '-{0}')
# C: the exponent reaches libm's pow through mg_opaque (a volatile copy, defined by the C
# emitters), because compilers fold pow(x, 2.0) into x*x and pow(x, -1.0) into 1.0/x, which can
# differ from pow in the last bit; the engine and generated Python call libm's pow.
POW = Op('pow', '**{p}', 1, ieee.pow,                               # exponent is a constant
         lambda a, out, p: (p * POW(a, p=p - 1.0),),
         'pow({0}, {p})', c='pow({0}, mg_opaque({p}))', param=True)
POWV = Op('powv', '**', 2, ieee.pow,                                # exponent is a Value too
          lambda a, b, out: (b * POWV(a, b - 1.0), LOG(a) * out),  # d(a**b)/db = log(a) a**b
          'pow({0}, {1})', c='pow({0}, mg_opaque({1}))')
EXP = Op('exp', 'exp', 1, ieee.exp, lambda a, out: (out,), 'exp({0})')
LOG = Op('log', 'log', 1, ieee.log, lambda a, out: (DIV(1.0, a),), 'log({0})')
TANH = Op('tanh', 'tanh', 1, math.tanh, lambda a, out: (1.0 - out * out,), 'tanh({0})')
SIGMOID = Op('sigmoid', 'sigmoid', 1, ieee.sigmoid, lambda a, out: (out * (1.0 - out),),
             'sigmoid({0})', c='1.0 / (1.0 + exp(-{0}))')
RELU = Op('relu', 'ReLU', 1, _relu, lambda a, out: (STEP(out),),
          '(0.0 if {0} < 0.0 else {0})', c='({0} < 0.0 ? 0.0 : {0})')
ABS = Op('abs', 'abs', 1, math.fabs, lambda a, out: (SIGN(a),), 'fabs({0})')
STEP = Op('step', 'step', 1, _step, lambda a, out: (None,),
          '(1.0 if {0} > 0.0 else 0.0)', c='({0} > 0.0 ? 1.0 : 0.0)')
SIGN = Op('sign', 'sign', 1, ieee.sign, lambda a, out: (None,),
          'sign({0})', c='({0} > 0.0 ? 1.0 : ({0} < 0.0 ? -1.0 : {0}))')
# The larger of two, so library code (softmax's shift) can take a maximum inside the graph
# instead of reading `.data` at trace time. Its subgradient goes to the argument it returned
# (b on a tie, as the forward): step(a - b) is 1 exactly when a > b.
MAX = Op('max', 'max', 2, _max,
         lambda a, b, out: (STEP(a - b), 1.0 - STEP(a - b)),
         '({0} if {0} > {1} or {0} != {0} else {1})',
         c='({0} > {1} || {0} != {0} ? {0} : {1})')

OPS = {op.name: op for op in (ADD, SUB, MUL, DIV, NEG, POW, POWV, EXP, LOG, TANH, SIGMOID,
                              RELU, ABS, STEP, SIGN, MAX)}
