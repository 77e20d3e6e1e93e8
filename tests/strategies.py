"""Hypothesis strategies shared by the tests of every backend (engine, interpreter, Python, C).

- `DOMAINS`: per op, where its finite differences are reliable. Every row of the op table needs
  one (tests/test_ops.py fails otherwise), so nobody can add untested math.
- `special_floats()`: any float, with 0, -0, ±inf, nan, subnormals, huge and tiny values likely.
- `recipes()`: random expression DAGs as plain data, replayed by tests/replay.py on floats, on
  Values, or (for the code generator) into a program. One recipe can drive every backend.
"""
import itertools
import math
import sys
from typing import NamedTuple, Optional, Tuple

from hypothesis import reject, strategies as st

from micrograd.ops import OPS


# ---- domains ---------------------------------------------------------------------------------

class Domain(NamedTuple):
    """Where an op is smooth AND monotone in each argument (the others held fixed).

    args:  one region per argument; a region is a tuple of disjoint intervals (lo, hi), so a
           kink can be left out: relu is smooth on (-10, -0.1) and on (0.1, 10), not across 0.
    param: the interval of the op's parameter (pow's exponent), None for ops without one.

    Smooth keeps central differences reliable. Monotone lets `image()` bound an op's output
    over a box of inputs from the box's corners alone, which is how smooth recipes stay inside
    the domains of every op they apply (checked by tests/test_ops.py).
    """
    args: Tuple[tuple, ...]
    param: Optional[Tuple[float, float]] = None


WIDE = ((-100.0, 100.0),)               # + - neg: magnitudes stay small enough for differences
MID = ((-30.0, 30.0),)                  # * and /: products of two MID values stay within ~1e3
AWAY_FROM_0 = ((-10.0, -0.25), (0.25, 10.0))   # denominators; relu, abs, step, sign: no kink
POSITIVE = ((0.25, 4.0),)               # bases of powers: real for any exponent

DOMAINS = {
    'add': Domain((WIDE, WIDE)),
    'sub': Domain((WIDE, WIDE)),
    'mul': Domain((MID, MID)),
    'div': Domain((MID, AWAY_FROM_0)),
    'neg': Domain((WIDE,)),
    'pow': Domain((POSITIVE,), param=(-3.0, 3.0)),
    'powv': Domain((POSITIVE, ((-2.0, 2.0),))),
    'exp': Domain((((-4.0, 4.0),),)),
    'log': Domain((((0.1, 10.0),),)),
    'tanh': Domain((((-5.0, 5.0),),)),
    'sigmoid': Domain((((-8.0, 8.0),),)),
    'relu': Domain((AWAY_FROM_0,)),
    'abs': Domain((AWAY_FROM_0,)),
    'step': Domain((AWAY_FROM_0,)),
    'sign': Domain((AWAY_FROM_0,)),
    # max is smooth where its arguments never meet: the first is far on either side of the
    # second, so each argument wins somewhere.
    'max': Domain((((-10.0, -5.0), (5.0, 10.0)), ((-2.0, 2.0),))),
}


def _in_region(region):
    return st.one_of([st.floats(lo, hi) for lo, hi in region])


def in_domain(name):
    """(args, param) for op `name`, drawn from its domain; param is None for ops without one."""
    domain = DOMAINS[name]
    param = st.floats(*domain.param) if domain.param else st.none()
    return st.tuples(st.tuples(*[_in_region(region) for region in domain.args]), param)


def image(name, spans, p=None):
    """Interval of op `name`'s output when argument i ranges over the interval spans[i].

    Exact up to rounding because DOMAINS only admits boxes on which the op is monotone in each
    argument: the extremes then sit at corners of the box.
    """
    fwd = OPS[name].fwd
    corners = [fwd(*xs) if p is None else fwd(*xs, p) for xs in itertools.product(*spans)]
    return min(corners), max(corners)


def _fits(span, region):
    return any(lo <= span[0] and span[1] <= hi for lo, hi in region)


# ---- floats ----------------------------------------------------------------------------------

SPECIALS = (0.0, -0.0, 1.0, -1.0, 0.5, -2.0, 3.0, math.inf, -math.inf, math.nan,
            sys.float_info.max, -sys.float_info.max, 1e308, -1e300,
            5e-324, -5e-324, sys.float_info.min, 1e-300, -1e-8,
            1000.0, -1000.0, 710.0, -746.0)          # exp overflows past 709.8, underflows at -745


def special_floats():
    """Any float, with the ones that break naive float code (above) drawn often."""
    return st.one_of(st.sampled_from(SPECIALS),
                     st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True),
                     st.floats(-10.0, 10.0))


# Exponents for `x ** p`: integers (odd and even), roots, zero, and in full range non-finite ones.
EXPONENTS = (2.0, 3.0, -1.0, -2.0, 0.5, 1.0 / 3.0, 0.0, 1.0, -0.5)
SPECIAL_EXPONENTS = EXPONENTS + (math.inf, -math.inf, math.nan, 1e300, -1e300)


# ---- recipes ---------------------------------------------------------------------------------

class Recipe(NamedTuple):
    """A random expression DAG as plain data.

    Slots 0..n_inputs-1 are the inputs; step k computes slot n_inputs + k. A step is
    (op_name, args, param): each arg is an earlier slot index (so sub-expressions are shared)
    or ('const', float); param is pow's exponent, else None. The output is the last slot.
    input_ranges: for smooth recipes, the interval each input is drawn from, else None.
    """
    n_inputs: int
    steps: Tuple[tuple, ...]
    input_ranges: Optional[Tuple[Tuple[float, float], ...]] = None

    def __str__(self):
        def atom(a):
            return f's{a}' if isinstance(a, int) else repr(a[1])
        lines = [f'  s{self.n_inputs + k} = {name}({", ".join(map(atom, args))}'
                 + (f'; p={p!r})' if p is not None else ')')
                 for k, (name, args, p) in enumerate(self.steps)]
        names = ', '.join(f's{i}' for i in range(self.n_inputs))
        return f'recipe over inputs {names}:\n' + '\n'.join(lines)


# Smooth recipes draw each input from one of these: one range crosses 0 (kinked ops and
# denominators must avoid it), the others let log, roots and division apply to inputs directly.
INPUT_RANGES = ((-1.5, 1.5), (0.25, 2.0), (-2.0, -0.25))


@st.composite
def recipes(draw, max_inputs=4, max_nodes=12, ops=None, smooth=False, exponents=None):
    """A random Recipe using the ops named in `ops` (default: every op in the table).

    exponents: a strategy for pow's exponent (default: SPECIAL_EXPONENTS and floats, or in
    smooth recipes floats inside DOMAINS['pow']).

    smooth=True: every op is only applied where its DOMAINS hold for ANY inputs in the recipe's
    input_ranges (tracked by interval arithmetic), so central differences are reliable anywhere
    in the input box. Constants and exponents are then drawn inside the domains too.
    """
    names = sorted(ops if ops is not None else OPS)
    n_inputs = draw(st.integers(1, max_inputs))
    ranges = tuple(draw(st.sampled_from(INPUT_RANGES)) for _ in range(n_inputs)) if smooth \
        else None
    spans = list(ranges) if smooth else None          # interval of each slot's value
    steps, used = [], set()
    for _ in range(draw(st.integers(1, max_nodes))):
        n_slots = n_inputs + len(steps)
        step = _smooth_step(names, spans, exponents) if smooth else \
            _step(names, n_slots, exponents)
        name, args, p = draw(step)
        steps.append((name, args, p))
        used.update(a for a in args if isinstance(a, int))
        if smooth:
            spans.append(image(name, [_span(a, spans) for a in args], p))
    # Optionally sum the slots nothing consumes into the output, so every node counts.
    if draw(st.booleans()):
        for slot in range(n_inputs, n_inputs + len(steps) - 1):
            out = n_inputs + len(steps) - 1
            if slot in used or (smooth and not _applies('add', (spans[out], spans[slot]))):
                continue
            steps.append(('add', (out, slot), None))
            if smooth:
                spans.append(image('add', (spans[out], spans[slot])))
    return Recipe(n_inputs, tuple(steps), ranges)


@st.composite
def _step(draw, names, n_slots, exponents):
    """One full-range step: any op, args from earlier slots, maybe one special constant."""
    name = draw(st.sampled_from(names))
    op = OPS[name]
    slots = st.integers(0, n_slots - 1)
    args = [draw(slots) for _ in range(op.arity)]
    position = draw(st.sampled_from([None, None] + _const_positions(name)))
    if position is not None:
        args[position] = ('const', draw(special_floats()))
    if exponents is None:
        exponents = st.sampled_from(SPECIAL_EXPONENTS) | st.floats(-4.0, 4.0)
    p = draw(exponents) if op.param else None
    return name, tuple(args), p


@st.composite
def _smooth_step(draw, names, spans, exponents):
    """One smooth step: an op whose domain holds for some earlier slots (or constants)."""
    applicable = [name for name in names if _applies_to_some(name, spans)]
    if not applicable:  # possible only with a narrow `ops`, e.g. ops=['log'] on negative inputs
        reject()
    name = draw(st.sampled_from(applicable))
    domain = DOMAINS[name]
    fitting = [[i for i, span in enumerate(spans) if _fits(span, region)]
               for region in domain.args]
    # A position no slot fits must be a constant (_applies_to_some made sure one may be).
    forced = [position for position, slots in enumerate(fitting) if not slots]
    const_position = forced[0] if forced else \
        draw(st.sampled_from([None, None] + _const_positions(name)))
    args = tuple(('const', draw(_in_region(region))) if position == const_position
                 else draw(st.sampled_from(fitting[position]))
                 for position, region in enumerate(domain.args))
    p = None
    if domain.param:
        lo, hi = domain.param
        if exponents is None:
            exponents = st.sampled_from([e for e in EXPONENTS if lo <= e <= hi]) | \
                st.floats(lo, hi)
        p = draw(exponents)
    return name, args, p


def _const_positions(name):
    """Where a step may take a constant: one argument of a binary op (the result must stay a
    graph node), and never powv's exponent (a constant exponent is what 'pow' is for)."""
    arity = OPS[name].arity
    return [] if arity == 1 else [0] if name == 'powv' else [0, 1]


def _span(arg, spans):
    return spans[arg] if isinstance(arg, int) else (arg[1], arg[1])


def _applies(name, spans):
    return all(_fits(span, region) for span, region in zip(spans, DOMAINS[name].args))


def _applies_to_some(name, spans):
    """Every argument of `name` can be filled: by a slot that fits, or else by a constant."""
    regions = DOMAINS[name].args
    missing = [position for position, region in enumerate(regions)
               if not any(_fits(span, region) for span in spans)]
    return len(missing) == 0 or (len(missing) == 1 and missing[0] in _const_positions(name))


def inputs(recipe):
    """Input floats for `recipe`: inside its input_ranges if it is smooth, else full range."""
    if recipe.input_ranges is not None:
        return st.tuples(*[st.floats(lo, hi) for lo, hi in recipe.input_ranges])
    return st.tuples(*[special_floats() for _ in range(recipe.n_inputs)])


@st.composite
def recipes_with_inputs(draw, **kwargs):
    """(recipe, xs): a recipe from recipes(**kwargs) and inputs drawn for it."""
    recipe = draw(recipes(**kwargs))
    return recipe, draw(inputs(recipe))


# ---- strategies with teeth: order and cancellation ---------------------------------------------

def mixed_finite_floats():
    """Finite floats of both signs and magnitudes from ~1e-9 to ~1e9 (never inf or nan): adding
    a list of them in another order rounds differently, so they can see the order of a sum.
    (Special values hide it: a sum with an inf or nan in it is inf or nan in any order.)"""
    return st.builds(lambda sign, mantissa, exponent: sign * mantissa * 2.0 ** exponent,
                     st.sampled_from((1.0, -1.0)), st.floats(1.0, 2.0, exclude_max=True),
                     st.integers(-30, 30))


# How the same input can reach one node twice with partials of opposite sign.
_TWICE_OPPOSITE = (
    (('sub', (0, 0), None),),                                  # x - x: partials 1, -1
    (('div', (0, 0), None),),                                  # x / x: 1/x, -x/x**2
    (('neg', (0,), None), ('add', (0, 1), None)),              # x + (-x)
    (('neg', (0,), None), ('mul', (0, 1), None)),              # x * -x: partials -x, x
    (('neg', (0,), None), ('add', (1, 0), None)),              # (-x) + x
)


@st.composite
def cancelling_recipes(draw):
    """Recipes where one input reaches a node twice with partials of opposite sign (x - x,
    x * -x, ...), that node is scaled by a power of two as large as 2**60, and the input is
    used once more. The input's gradient then adds terms like 1, 2**53 and -2**53, whose sum
    depends on the order they are added in: any evaluator adding them in another order than
    the engine gets another answer (((x - x) * 2**53) + x: 0.0 one way, 1.0 the other)."""
    steps = list(draw(st.sampled_from(_TWICE_OPPOSITE)))
    pair = len(steps)                      # slot of the cancelling node (input 0 is slot 0)
    exponent = draw(st.sampled_from((52, 53, 54, 60)) | st.integers(0, 60))  # 2**53: 1 is lost
    scale = draw(st.sampled_from((1.0, -1.0))) * 2.0 ** exponent
    steps.append(('mul', (pair, ('const', scale)), None))
    scaled = len(steps)
    again = draw(st.sampled_from([(scaled, 0), (0, scaled)]))
    steps.append((draw(st.sampled_from(('add', 'sub'))), again, None))
    if draw(st.booleans()):                # and maybe through a nonlinear op afterwards
        steps.append((draw(st.sampled_from(('tanh', 'neg', 'abs', 'relu'))), (len(steps),),
                      None))
    return Recipe(1, tuple(steps))
