"""Optimisation passes: each one a pure Program -> Program function, exact under IEEE-754.

Exact means: for every input, including inf and nan, the optimised program computes the same
values (the sign of a zero aside). So there is no `x * 0 -> 0` (inf * 0 is nan) and no
`x - x -> 0` (nan - nan is nan). `optimize` runs the list to a fixed point.
"""
from dataclasses import replace

from micrograd.ops import ADD, DIV, MUL, NEG, SUB

from codegen.ir import Instr


def _substitute(program, instrs, alias):
    """Rebuild `program` with `instrs`, reading every argument and output through `alias`."""
    def see(atom):
        return alias.get(atom, atom) if isinstance(atom, str) else atom
    instrs = tuple(Instr(i.out, i.op, tuple(map(see, i.args)), i.param, i.note) for i in instrs)
    return replace(program, instrs=instrs, outputs=tuple(map(see, program.outputs)))


def fold(program):
    """Instructions whose arguments are all literals become literals (computed by the op's
    own forward, so folding is exactly what the program would have computed)."""
    alias, kept = {}, []
    for instr in program.instrs:
        args = tuple(alias.get(a, a) if isinstance(a, str) else a for a in instr.args)
        if all(isinstance(a, float) for a in args):
            p = instr.param
            alias[instr.out] = instr.op.fwd(*args) if p is None else instr.op.fwd(*args, p)
        else:
            kept.append(Instr(instr.out, instr.op, args, instr.param, instr.note))
    return _substitute(program, kept, alias)


def _identity(instr):
    """The argument this instruction merely copies, or None. Only exact rewrites:
    x*1, 1*x, x/1, x-0, x+(-0.0), -(-x) (the last handled by `simplify`)."""
    a = instr.args
    if instr.op is MUL and a[1] == 1.0 and isinstance(a[1], float):
        return a[0]
    if instr.op is MUL and a[0] == 1.0 and isinstance(a[0], float):
        return a[1]
    if instr.op in (DIV, SUB) and isinstance(a[1], float) and a[1] == (1.0 if instr.op is DIV else 0.0):
        return a[0]
    return None


def simplify(program):
    """Remove instructions that copy their argument (see `_identity`) and double negations.
    `x + 0.0 -> x` is deliberately absent: it turns -0.0 into 0.0."""
    alias, negated, kept = {}, {}, []
    for instr in program.instrs:
        instr = Instr(instr.out, instr.op, tuple(alias.get(a, a) if isinstance(a, str) else a
                                                 for a in instr.args), instr.param, instr.note)
        same = _identity(instr)
        if same is None and instr.op is NEG and instr.args[0] in negated:
            same = negated[instr.args[0]]
        if same is not None:
            alias[instr.out] = same
            continue
        if instr.op is NEG and isinstance(instr.args[0], str):
            negated[instr.out] = instr.args[0]
        kept.append(instr)
    return _substitute(program, kept, alias)


def cse(program):
    """Common subexpressions: an instruction equal to an earlier one (same op, arguments and
    parameter; commutative ops in a canonical order) reuses its register."""
    alias, seen, kept = {}, {}, []
    for instr in program.instrs:
        args = tuple(alias.get(a, a) if isinstance(a, str) else a for a in instr.args)
        key_args = tuple(sorted(args, key=repr)) if instr.op in (ADD, MUL) else args
        key = (instr.op.name, tuple(map(repr, key_args)), repr(instr.param))
        if key in seen:
            alias[instr.out] = seen[key]
            continue
        seen[key] = instr.out
        kept.append(Instr(instr.out, instr.op, args, instr.param, instr.note))
    return _substitute(program, kept, alias)


def dce(program):
    """Dead code: keep only instructions an output depends on."""
    live = {a for a in program.outputs if isinstance(a, str)}
    kept = []
    for instr in reversed(program.instrs):
        if instr.out in live:
            kept.append(instr)
            live.update(a for a in instr.args if isinstance(a, str))
    return replace(program, instrs=tuple(reversed(kept)))


PASSES = (fold, simplify, cse, dce)


def optimize(program, passes=PASSES, max_rounds=10):
    """Run the passes until the program stops changing (or `max_rounds` is reached)."""
    for _ in range(max_rounds):
        before = program
        for run in passes:
            program = run(program)
        if program == before:
            break
    return program
