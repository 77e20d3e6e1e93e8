"""The op table, row by row: forward values against independent oracles, partials against
central differences, and no exception on any float (README, "IEEE-754 semantics")."""
import ctypes
import ctypes.util
import functools
import itertools
import math
from fractions import Fraction
from math import copysign, inf, isinf, isnan, nan

import pytest
from hypothesis import given, settings, strategies as st

import needs
from exact import same
from micrograd.engine import Value
from micrograd.ops import OPS
from strategies import DOMAINS, SPECIAL_EXPONENTS, SPECIALS, image, in_domain, special_floats


def call_fwd(name, xs, p=None):
    fwd = OPS[name].fwd
    return fwd(*xs) if p is None else fwd(*xs, p)


def call_grad(name, xs, out, p=None):
    grad = OPS[name].grad
    return grad(*xs, out) if p is None else grad(*xs, out, p)


# ---- independent oracles ---------------------------------------------------------------------
# Arithmetic: exact rational arithmetic (Fraction) rounded once, plus the IEEE rules for
# infinities, nan and the sign of a zero result spelled out. Transcendentals: C's libm through
# ctypes, the documented reference ("as C's libm"), reached without going through Python's `math`.

def _rounded(exact):
    """The float nearest to a Fraction; ±inf past the largest float, as IEEE rounding does."""
    try:
        return float(exact)
    except OverflowError:
        return inf if exact > 0 else -inf


def _sign_product(a, b):
    return copysign(1.0, a) * copysign(1.0, b)


def oracle_add(a, b):
    if isnan(a) or isnan(b) or (isinf(a) and isinf(b) and a != b):  # inf + -inf = nan
        return nan
    if isinf(a) or isinf(b):
        return a if isinf(a) else b
    if a == 0.0 and b == 0.0:  # -0 + -0 = -0; any other sum of zeros is +0
        return -0.0 if copysign(1.0, a) < 0 and copysign(1.0, b) < 0 else 0.0
    return _rounded(Fraction(a) + Fraction(b))  # an exact zero (x + -x) rounds to +0


def oracle_mul(a, b):
    if isnan(a) or isnan(b):
        return nan
    if isinf(a) or isinf(b):
        return nan if a == 0.0 or b == 0.0 else inf * _sign_product(a, b)  # 0 * inf = nan
    # a zero product (or one that underflows to zero) keeps the sign of the exact product
    return copysign(_rounded(Fraction(a) * Fraction(b)), _sign_product(a, b))


def oracle_div(a, b):
    if isnan(a) or isnan(b) or (isinf(a) and isinf(b)) or (a == 0.0 and b == 0.0):
        return nan
    if isinf(a) or b == 0.0:  # x/0 = ±inf, sign of x times sign of 0
        return inf * _sign_product(a, b)
    if isinf(b):
        return 0.0 * _sign_product(a, b)
    return copysign(_rounded(Fraction(a) / Fraction(b)), _sign_product(a, b))


def _libm():
    path = ctypes.util.find_library('m')
    if path is None:
        return None
    lib = ctypes.CDLL(path)
    for name, n_args in (('exp', 1), ('log', 1), ('tanh', 1), ('pow', 2)):
        getattr(lib, name).argtypes = [ctypes.c_double] * n_args
        getattr(lib, name).restype = ctypes.c_double
    return lib


LIBM = _libm()


def needs_libm(test):
    """The oracles of exp, log, tanh and pow are C's libm: without it the test fails."""
    def run(*args, **kwargs):
        if LIBM is None:
            needs.missing("C's libm (ctypes.util.find_library('m'))", 'apt-get install libc6-dev')
        return test(*args, **kwargs)
    return functools.wraps(test)(run)


ORACLES = {
    'add': oracle_add,
    'sub': lambda a, b: oracle_add(a, -b),             # IEEE defines a - b as a + (-b)
    'mul': oracle_mul,
    'div': oracle_div,
    'neg': lambda a: -a,                               # flips the sign bit, exact
    'pow': lambda a, p: LIBM.pow(a, p),
    'powv': lambda a, b: LIBM.pow(a, b),
    'exp': lambda a: LIBM.exp(a),
    'log': lambda a: LIBM.log(a),
    'tanh': lambda a: LIBM.tanh(a),
    'sigmoid': lambda a: oracle_div(1.0, oracle_add(1.0, LIBM.exp(-a))),
    'relu': lambda a: a if isnan(a) else max(a, 0.0),  # nan passes, as in micrograd and PyTorch
    'abs': lambda a: copysign(a, 1.0),                 # clears the sign bit
    'step': lambda a: 1.0 if a > 0.0 else 0.0,         # step(0) = step(nan) = 0
    'sign': lambda a: a if a == 0.0 or isnan(a) else copysign(1.0, a),
    'max': lambda a, b: nan if isnan(a) or isnan(b) else max(b, a),  # a tie gives b
}


def oracle_args(name):
    """Strategy of (args, param) over the full float range, specials likely."""
    op = OPS[name]
    args = st.tuples(*[special_floats() for _ in range(op.arity)])
    param = st.sampled_from(SPECIAL_EXPONENTS) | special_floats() if op.param else st.none()
    return st.tuples(args, param)


# Per-op properties run for each row; fewer examples each keeps the file fast, and
# the special combinations above are checked exhaustively anyway.
per_op = settings(max_examples=50)


def special_cases(name):
    """Every combination of SPECIALS for the op's arguments (and exponents for pow)."""
    op = OPS[name]
    args = list(itertools.product(SPECIALS, repeat=op.arity))
    params = SPECIAL_EXPONENTS if op.param else (None,)
    return list(itertools.product(args, params))


# ---- every row is covered ---------------------------------------------------------------------

def test_every_op_has_a_domain_and_an_oracle():
    assert set(DOMAINS) == set(OPS), 'add a DOMAINS entry in tests/strategies.py for new ops'
    assert set(ORACLES) == set(OPS), 'add an independent oracle for new ops'


@pytest.mark.parametrize('name', sorted(OPS))
def test_domain_has_a_region_per_argument(name):
    assert len(DOMAINS[name].args) == OPS[name].arity
    assert (DOMAINS[name].param is not None) == OPS[name].param


# ---- forward ---------------------------------------------------------------------------------

@needs_libm
@pytest.mark.parametrize('name', sorted(OPS))
def test_forward_matches_oracle_on_all_special_combinations(name):
    for xs, p in special_cases(name):
        got, want = call_fwd(name, xs, p), ORACLES[name](*xs, *([p] if p is not None else []))
        assert same(got, want), f'{name}{xs} p={p}: {got!r}, oracle {want!r}'


@needs_libm
@pytest.mark.parametrize('name', sorted(OPS))
@per_op
@given(case=st.data())
def test_forward_matches_oracle_on_any_floats(name, case):
    xs, p = case.draw(oracle_args(name))
    got, want = call_fwd(name, xs, p), ORACLES[name](*xs, *([p] if p is not None else []))
    assert same(got, want), f'{name}{xs} p={p}: {got!r}, oracle {want!r}'


# The README's table of special values, through the operators a user writes.
README_VALUES = [
    ('inf - inf = nan', lambda: Value(inf) - inf, nan),
    ('0 * inf = nan', lambda: Value(0.0) * inf, nan),
    ('1 / 0 = inf', lambda: 1 / Value(0.0), inf),
    ('-1 / 0 = -inf', lambda: -1 / Value(0.0), -inf),
    ('1 / -0 = -inf', lambda: 1 / Value(-0.0), -inf),
    ('0 / 0 = nan', lambda: Value(0.0) / 0.0, nan),
    ('(-8) ** (1/3) = nan', lambda: Value(-8.0) ** (1 / 3), nan),
    ('0 ** -1 = inf', lambda: Value(0.0) ** -1, inf),
    ('(-0) ** -1 = -inf', lambda: Value(-0.0) ** -1, -inf),
    ('10 ** 400 = inf', lambda: Value(10.0) ** 400, inf),
    ('(-10) ** 309 = -inf', lambda: Value(-10.0) ** 309, -inf),
    ('(-8) ** Value(1/3) = nan', lambda: Value(-8.0) ** Value(1 / 3), nan),
    ('2 ** Value(2000) = inf', lambda: 2 ** Value(2000.0), inf),
    ('exp(1000) = inf', lambda: Value(1000.0).exp(), inf),
    ('exp(-inf) = 0', lambda: Value(-inf).exp(), 0.0),
    ('log(0) = -inf', lambda: Value(0.0).log(), -inf),
    ('log(-1) = nan', lambda: Value(-1.0).log(), nan),
    ('tanh(inf) = 1', lambda: Value(inf).tanh(), 1.0),
    ('tanh(-inf) = -1', lambda: Value(-inf).tanh(), -1.0),
    ('sigmoid(-1000) = 0', lambda: Value(-1000.0).sigmoid(), 0.0),
    ('sigmoid(inf) = 1', lambda: Value(inf).sigmoid(), 1.0),
    ('relu(nan) = nan', lambda: Value(nan).relu(), nan),
    ('relu(-inf) = 0', lambda: Value(-inf).relu(), 0.0),
    ('abs(-inf) = inf', lambda: abs(Value(-inf)), inf),
    ('step(0) = 0', lambda: Value(0.0).step(), 0.0),
    ('step(nan) = 0', lambda: Value(nan).step(), 0.0),
    ('nan propagates through exp', lambda: Value(nan).exp(), nan),
]


@pytest.mark.parametrize('rule, build, expected', README_VALUES,
                         ids=[rule for rule, _, _ in README_VALUES])
def test_readme_special_values(rule, build, expected):
    assert same(build().data, expected), rule


def partial_of(build, x):
    """d build(x) / dx through the engine's backward()."""
    leaf = Value(x)
    build(leaf).backward()
    return leaf.grad


# The README's "local partials" column at the points where it states a special value.
README_PARTIALS = [
    ('relu partial at nan is 0', lambda a: a.relu(), nan, 0.0),
    ('relu partial at 0 is 0', lambda a: a.relu(), 0.0, 0.0),
    ('abs partial at 0 is 0', lambda a: abs(a), 0.0, 0.0),
    ('abs partial at -3 is -1', lambda a: abs(a), -3.0, -1.0),
    ('abs partial at nan is nan', lambda a: abs(a), nan, nan),
    ('step has no gradient', lambda a: a.step(), 2.0, 0.0),
    ('d(1/b)/db at 0 is -inf', lambda b: 1 / b, 0.0, -inf),
    ('d(b ** 0.5)/db at 0 is inf', lambda b: b ** 0.5, 0.0, inf),
    ('d(2 ** b)/db is log(2) 2**b', lambda b: 2 ** b, 3.0, math.log(2.0) * 8.0),
    ('d(a ** b)/db is nan for a < 0', lambda b: Value(-2.0) ** b, 2.0, nan),
    ('d log(a)/da at 0 is inf', lambda a: a.log(), 0.0, inf),
    ('d exp(a)/da at 1000 is inf', lambda a: a.exp(), 1000.0, inf),
    ('d tanh(a)/da at inf is 0', lambda a: a.tanh(), inf, 0.0),
    ('d sigmoid(a)/da at -1000 is 0', lambda a: a.sigmoid(), -1000.0, 0.0),
]


@pytest.mark.parametrize('rule, build, x, expected', README_PARTIALS,
                         ids=[rule for rule, _, _, _ in README_PARTIALS])
def test_readme_special_partials(rule, build, x, expected):
    assert same(partial_of(build, x), expected), rule


# ---- local partials --------------------------------------------------------------------------

def central_difference(name, xs, i, p=None):
    """d fwd / d xs[i] by a central difference with a step scaled to xs[i]."""
    h = 1e-6 * max(1.0, abs(xs[i]))
    up = [x + (h if j == i else 0.0) for j, x in enumerate(xs)]
    down = [x - (h if j == i else 0.0) for j, x in enumerate(xs)]
    return (call_fwd(name, up, p) - call_fwd(name, down, p)) / (up[i] - down[i])


@pytest.mark.parametrize('name', sorted(OPS))
@per_op
@given(case=st.data())
def test_partials_match_central_differences_in_domain(name, case):
    xs, p = case.draw(in_domain(name))
    partials = call_grad(name, xs, call_fwd(name, xs, p), p)
    assert len(partials) == OPS[name].arity
    for i, partial in enumerate(partials):
        estimate = central_difference(name, xs, i, p)
        # None means "no gradient flows": right only where the op is locally constant.
        analytic = 0.0 if partial is None else partial
        assert abs(analytic - estimate) <= 1e-8 + 1e-6 * abs(estimate), \
            f'd {name}{xs} / d arg {i} (p={p}): rule {partial!r}, central difference {estimate!r}'


@pytest.mark.parametrize('name', sorted(OPS))
@per_op
@given(case=st.data())
def test_domains_are_boxes_where_the_op_is_monotone(name, case):
    """image() bounds an op by its corners; smooth recipes rely on that (strategies.py)."""
    domain = DOMAINS[name]
    spans, xs = [], []
    for region in domain.args:
        lo, hi = case.draw(st.sampled_from(region))
        a, b = sorted(case.draw(st.tuples(st.floats(lo, hi), st.floats(lo, hi))))
        spans.append((a, b))
        xs.append(case.draw(st.floats(a, b)) if a < b else a)  # sorted() keeps (0.0, -0.0)
    p = case.draw(st.floats(*domain.param)) if domain.param else None
    low, high = image(name, spans, p)
    out = call_fwd(name, xs, p)
    slack = 1e-12 * max(1.0, abs(out))  # corners and inner points round independently
    assert low - slack <= out <= high + slack, f'{name}{tuple(xs)} outside {low, high}'


# ---- rules never raise -----------------------------------------------------------------------

def assert_rule_is_total(name, xs, p):
    out = call_fwd(name, xs, p)
    assert isinstance(out, float), f'{name}{xs} returned {out!r}'
    partials = call_grad(name, xs, out, p)
    assert len(partials) == OPS[name].arity
    for partial in partials:
        assert partial is None or isinstance(partial, float), f'{name}{xs}: partial {partial!r}'


@pytest.mark.parametrize('name', sorted(OPS))
def test_rules_never_raise_on_special_combinations(name):
    for xs, p in special_cases(name):
        assert_rule_is_total(name, xs, p)


@pytest.mark.parametrize('name', sorted(OPS))
@per_op
@given(case=st.data())
def test_rules_never_raise_on_any_floats(name, case):
    xs, p = case.draw(oracle_args(name))
    assert_rule_is_total(name, xs, p)
