"""The one exactness rule of the whole suite: `same` / `assert_same`.

"Bit for bit" means it: two floats are the same when their IEEE-754 bit patterns are equal,
so 0.0 and -0.0 differ (1/x tells them apart). The only relaxation is nan: every nan is the
same as every other, because IEEE-754 leaves a nan's sign and payload to the implementation
(C's `-x` of a nan and Python's may differ) and nothing in the project's contract reads them.
No tolerance: glibc's libm matches Python's math bit for bit here (DESIGN B9); a platform that
needs one would add it here and only here.
"""
import math
import struct


def same(a, b):
    """a and b are the same double: equal bits (zero's sign included), or both nan."""
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return struct.pack('<d', a) == struct.pack('<d', b)


def assert_same(expected, actual, context=''):
    """Two tuples of outputs agree element by element under `same`."""
    expected, actual = tuple(expected), tuple(actual)
    assert len(expected) == len(actual), f'{context}: {len(expected)} vs {len(actual)} outputs'
    bad = [(k, e, a) for k, (e, a) in enumerate(zip(expected, actual)) if not same(e, a)]
    assert not bad, (f'{context}: outputs differ at (index, expected, actual) {bad}\n'
                     f'expected {expected}\nactual   {actual}')
