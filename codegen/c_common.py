"""C source text that both C emitters (emit_c, emit_loops) share: float literals, helpers."""


def literal(x):
    """A float as C source: repr round-trips through strtod; inf/nan are <math.h> macros."""
    if x != x:
        return 'NAN'
    if x in (float('inf'), float('-inf')):
        return 'INFINITY' if x > 0 else '(-INFINITY)'
    text = repr(x)
    return f'({text})' if text.startswith('-') else text


OPAQUE = """
/* pow's exponent as a value the compiler cannot see: it would turn pow(x, 2.0) into x*x and
 * pow(x, -1.0) into 1.0/x, which can differ from libm's pow (and so from the engine) in the
 * last bit. */
static double mg_opaque(double x) { volatile double v = x; return v; }
"""


def helpers(program):
    """C helpers the templates of `program`'s ops call (only those: -Wall warns of unused ones)."""
    return OPAQUE if any('mg_opaque' in instr.op.c for instr in program.instrs) else ''
