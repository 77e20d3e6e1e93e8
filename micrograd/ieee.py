"""IEEE-754 float helpers: what C's libm returns where Python's `math` raises.

Python raises OverflowError, ZeroDivisionError or ValueError (or turns complex) where C and
PyTorch return inf or nan. The engine uses these helpers as forward functions, and the Python
code generator copies the source of the ones a program uses into the generated file, so every
backend computes the same numbers. Each helper therefore only uses names from `math`.
"""
from math import copysign, inf, nan
import math


def div(a, b):
    """a / b, with x/0 = ±inf and 0/0 = nan."""
    try:
        return a / b
    except ZeroDivisionError:
        if a != a or a == 0.0:
            return nan
        return copysign(inf, a) * copysign(1.0, b)


def exp(x):
    """e**x, inf on overflow."""
    try:
        return math.exp(x)
    except OverflowError:
        return inf


def log(x):
    """Natural log: log(0) = -inf, log(x < 0) = nan."""
    if x > 0.0:
        return math.log(x)
    return -inf if x == 0.0 else nan


def pow(x, y):
    """x**y as C's pow: (-8)**(1/3) = nan, 0**-1 = inf, overflow = ±inf."""
    try:
        return math.pow(x, y)
    except (OverflowError, ValueError):
        if x < 0.0 and y != math.floor(y):  # negative base, fractional exponent
            return nan
        odd = y % 2.0 == 1.0  # an odd integer exponent keeps the base's sign
        return copysign(inf, x) if odd else inf


def sigmoid(x):
    """1 / (1 + e**-x), written so it never overflows."""
    return 1.0 / (1.0 + exp(-x))


def sign(x):
    """-1, 0 or 1 by the sign of x; nan stays nan."""
    if x > 0.0:
        return 1.0
    if x < 0.0:
        return -1.0
    return x
