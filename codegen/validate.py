"""Checks shared by every backend: a bad number is refused before any number changes.

The Trainer (and `Compiled`) call these before running generated Python or C, so both backends
accept and refuse the same inputs with the same exception and message, and a refused call
leaves parameters and momentum exactly as they were.

Numbers: anything `Value` accepts (int, float, numpy scalars: any `numbers.Real`) except bools,
which are refused with a message saying so (True is an int in Python, rarely a meant number).
numpy is never imported here unless the caller passes a numpy array.
"""
import array
import ctypes
import functools
import math
import numbers

from micrograd.engine import Value

NORM_NOT_FINITE = ('clip_norm: the gradient norm is not finite; clipping cannot repair an inf '
                   'or nan gradient')


def number(value, what):
    """`value` as a float, for any real number; a bool or a non-number is a TypeError."""
    if type(value) is float:
        return value
    if isinstance(value, bool) or type(value).__name__ == 'bool_':  # numpy's bool too
        raise TypeError(f'{what} is the bool {value!r}: write a number (1.0 or 0.0) if one is '
                        f'meant')
    if not isinstance(value, numbers.Real):
        raise TypeError(f'{what} must be a real number, got {type(value).__name__} '
                        f'{value!r:.40}')
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f'{what} is {value!r:.40}: too large for a float') from None


_JUST_FLOAT = frozenset([float])


def numbers_of(values, what):
    """floats of a sequence of real numbers, `what` naming each by position ("input 2");
    nan and inf are numbers too: a built program computes with them as IEEE-754 says."""
    if _JUST_FLOAT.issuperset(map(type, values)):  # the common case, checked at C speed
        return values
    return [v if type(v) is float else number(v, f'{what} {i}') for i, v in enumerate(values)]


def rate(value, what):
    """A learning rate, momentum or weight decay: a finite number >= 0."""
    value = number(value, what)
    if not (value >= 0.0 and math.isfinite(value)):
        raise ValueError(f'{what} must be a finite number >= 0, got {value!r}')
    return value


def clip(value, what):
    """A clipping threshold: None (off), or a number >= 0 (inf clips nothing). Negative is
    refused rather than read as "off", so a sign slip cannot silently disable clipping."""
    if value is None:
        return None
    value = number(value, what)
    if not value >= 0.0:
        raise ValueError(f'{what} must be None (off) or a number >= 0, got {value!r}')
    return value


def step_settings(lr, momentum, weight_decay, clip_value, clip_norm):
    """The settings of one SGD step, checked: (lr, momentum, weight_decay, clip_value,
    clip_norm) as floats, the clips None when off."""
    return (rate(lr, 'lr'), rate(momentum, 'momentum'), rate(weight_decay, 'weight_decay'),
            clip(clip_value, 'clip_value'), clip(clip_norm, 'clip_norm'))


def fit_plan(n_rows, epochs, lr, batch_size, update):
    """`fit`'s arguments, checked before its first step: (epochs, batch size, the rate of every
    step). lr is a number or a function of the step index; a batch size above the number of
    rows means one batch of all of them; `update` holds the settings passed on to each step."""
    if not n_rows:
        raise ValueError('fit needs at least one row, got none')
    unknown = set(update) - {'momentum', 'weight_decay', 'clip_value', 'clip_norm'}
    if unknown:
        raise TypeError(f'fit() got unexpected settings {sorted(unknown)}')
    epochs = count(epochs, 'epochs', 0)
    batch_size = n_rows if batch_size is None else min(count(batch_size, 'batch_size', 1), n_rows)
    steps = epochs * -(-n_rows // batch_size)  # batches per epoch, the last one maybe short
    rates = [rate(lr(k) if callable(lr) else lr, 'lr') for k in range(steps)]
    step_settings(0.0, update.get('momentum', 0.0), update.get('weight_decay', 0.0),
                  update.get('clip_value'), update.get('clip_norm'))
    return epochs, batch_size, rates


def whole(value, what):
    """int(value) for a whole number (int, numpy integer); bools and floats refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f'{what} must be a whole number, got {type(value).__name__} '
                        f'{value!r:.40}')
    return int(value)


def count(value, what, low):
    """A whole number >= low (epochs, batch sizes, row widths)."""
    value = whole(value, what)
    if value < low:
        raise ValueError(f'{what} must be >= {low}, got {value!r}')
    return value


def loss_value(result, who):
    """The Value a loss function returned; anything else is refused with what it must be."""
    if not isinstance(result, Value):
        raise TypeError(f'{who} must return a Value built from the model\'s output (so it can '
                        f'be traced), got {type(result).__name__} {result!r:.40}')
    return result


# ---- rows ------------------------------------------------------------------------------------

class Rows:
    """Checked training rows, converted once for any number of steps.

    n rows of `width` finite float64 values, one row after another in `values` (an
    array.array('d'), or the caller's numpy array when it already was C-contiguous float64).
    The same object on every backend: C reads the buffer in place, Python reads `as_lists()`.
    """

    def __init__(self, values, n, width, finite=False):
        self.values, self.n, self.width = values, n, width
        # Known finite: set once checked, and kept only for our own array copy (a caller's
        # numpy array can change between steps, so it is checked again every time).
        self.finite = finite and isinstance(values, array.array)

    def __len__(self):
        return self.n

    def __repr__(self):
        return f'Rows({self.n} rows of {self.width} values)'

    def as_lists(self):
        """The rows as lists of floats."""
        if isinstance(self.values, array.array):
            flat, k = self.values.tolist(), self.width
            return [flat[i * k:(i + 1) * k] for i in range(self.n)]
        return self.values.tolist()  # a 2-D numpy array: a list per row already

    @functools.cached_property
    def address(self):
        """The address of the first value, for C (a `void *`); valid while this object lives
        (neither buffer ever moves: our array is never resized, a numpy array's data stays)."""
        if isinstance(self.values, array.array):
            return self.values.buffer_info()[0]
        return self.values.ctypes.data

    @functools.cached_property
    def c_arguments(self):
        """(address, number of rows) as ctypes objects, made once: what a C step is passed."""
        return ctypes.c_void_p(self.address), ctypes.c_long(self.n)

    def take(self, order):
        """The rows at the indices `order`, as new Rows (no per-value Python loop)."""
        if not isinstance(self.values, array.array):
            return Rows(self.values[list(order)], len(order), self.width)
        k, taken = self.width, array.array('d')
        for i in order:
            taken.extend(self.values[i * k:(i + 1) * k])
        return Rows(taken, len(order), self.width, self.finite)

    def batches(self, size):
        """Consecutive batches of `size` rows (the last one may be shorter)."""
        return [self.take(range(start, min(start + size, self.n)))
                for start in range(0, self.n, size)]


def rows(data, width, what='row', finite=True):
    """`data` (an iterable of rows, or a 2-D numpy array) as checked Rows of `width` values.

    Every value must be a real number (not a bool). finite=True (training rows): a nan or inf
    would turn every parameter into nan at the first step, so it is refused here, naming it.
    """
    if isinstance(data, Rows):
        if data.width != width:
            raise ValueError(f'these Rows have {data.width} values each, expected {width}')
        checked = data
    elif type(data).__module__ == 'numpy' and hasattr(data, 'dtype') and \
            data.dtype.kind in 'biuf':
        checked = _numpy_rows(data, width, what)
    else:
        if type(data).__module__ == 'numpy' and hasattr(data, 'tolist'):
            data = data.tolist()  # strings, objects: checked one by one, same messages
        checked = _python_rows(data, width, what)
    if finite:
        _check_finite(checked, what)
    return checked


def _python_rows(data, width, what):
    if isinstance(data, (str, bytes)) or not _iterable(data):
        raise TypeError(f'rows must be a list of {what}s (sequences of numbers), got '
                        f'{type(data).__name__} {data!r:.40}')
    values, n = array.array('d'), 0
    for i, row in enumerate(data):
        values.extend(_row(row, i, width, what))
        n += 1
    return Rows(values, n, width)


def _iterable(data):
    try:
        iter(data)
    except TypeError:
        return False
    return True


def sequence(row, what):
    """list(row), for a row that is a sequence (not a string, not a single number)."""
    if isinstance(row, (str, bytes)) or not _iterable(row):
        raise TypeError(f'{what} must be a sequence of numbers, got {type(row).__name__} '
                        f'{row!r:.40}')
    return list(row)


def _row(row, i, width, what):
    row = sequence(row, f'{what} {i}')
    if len(row) != width:
        raise ValueError(f'{what} {i} has {len(row)} values, expected {width}')
    return [v if type(v) is float else number(v, f'{what} {i}, position {j}')
            for j, v in enumerate(row)]


def _numpy_rows(data, width, what):
    """Rows from a numpy array of numbers, converted by numpy: no Python loop per value."""
    import numpy
    if data.dtype.kind == 'b':
        raise TypeError('rows must hold numbers, got a numpy array of bools: convert it with '
                        '.astype(float) if numbers are meant')
    if data.ndim != 2:
        raise ValueError(f'a numpy array of {what}s must be 2-D, (rows, {width}); got shape '
                         f'{data.shape}')
    if data.shape[0] and data.shape[1] != width:
        raise ValueError(f'{what} 0 has {data.shape[1]} values, expected {width}')
    values = numpy.ascontiguousarray(data, dtype=numpy.float64)  # no copy if it already is
    return Rows(values, values.shape[0], width)


def _check_finite(checked, what):
    """Refuse nan and inf, naming the first one's row and position."""
    values = checked.values
    if checked.finite:
        return
    if isinstance(values, array.array):
        if all(map(math.isfinite, values)):
            checked.finite = True
            return
        k = next(k for k, v in enumerate(values) if not math.isfinite(v))
        i, j, bad = k // checked.width, k % checked.width, values[k]
    else:
        import numpy
        finite = numpy.isfinite(values)
        if finite.all():
            return
        i, j = (int(k) for k in numpy.argwhere(~finite)[0])
        bad = float(values[i, j])
    raise ValueError(f'{what} {i} holds {bad!r} at position {j}: training data must be '
                     f'finite (a nan or inf would make every parameter nan)')
