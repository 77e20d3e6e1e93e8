"""Optimisation passes: each one a pure Program -> Program function, exact under IEEE-754.

Exact means: for every input, including inf and nan, the optimised program computes the same
values, the sign of a zero included. So there is no `x * 0 -> 0` (inf * 0 is nan) and no
`x - x -> 0` (nan - nan is nan). `optimize` runs the list to a fixed point.
"""
import math
from dataclasses import replace

from micrograd.ops import ADD, DIV, MUL, NEG, SUB


def _read(alias, args):
    """Arguments with every register replaced by what it now stands for. (Only registers are
    keys of `alias`, so a literal, looked up too, is never found and stays itself.)"""
    return tuple(map(alias.get, args, args))


def _with_args(instr, args):
    """`instr` reading `args` (itself when nothing changed: most instructions, and big
    programs are rebuilt on every pass)."""
    return instr if args == instr.args else instr._replace(args=args)


def _rebuild(program, instrs, alias):
    """`program` with new instructions and its outputs read through `alias`."""
    return replace(program, instrs=_carry_notes(program.instrs, instrs),
                   outputs=_read(alias, program.outputs))


def _carry_notes(original, kept):
    """The note of a dropped instruction (`grad of: ...`, heading a block) moves to the next
    kept one, unless that one heads a block of its own."""
    kept_outs = {instr.out for instr in kept}
    moved, note = {}, ''
    for instr in original:
        note = instr.note or note
        if instr.out in kept_outs:
            if note != instr.note:
                moved[instr.out] = note
            note = ''
    return tuple(i._replace(note=moved[i.out]) if i.out in moved else i for i in kept)


def fold(program):
    """Instructions whose arguments are all literals become literals (computed by the op's
    own forward, so folding is exactly what the program would have computed)."""
    alias, kept = {}, []
    for instr in program.instrs:
        args = _read(alias, instr.args)
        if all(isinstance(a, float) for a in args):
            p = instr.param
            alias[instr.out] = instr.op.fwd(*args) if p is None else instr.op.fwd(*args, p)
        else:
            kept.append(_with_args(instr, args))
    return _rebuild(program, kept, alias)


def _is(atom, literal):
    """`atom` is the float `literal`, sign of zero included."""
    return isinstance(atom, float) and atom == literal and \
        math.copysign(1.0, atom) == math.copysign(1.0, literal)


def _identity(instr):
    """The argument this instruction merely copies, or None. Only rewrites exact for every
    input: x*1, 1*x, x/1, x-0, x+(-0), (-0)+x; -(-x) is handled by `simplify`."""
    op, a = instr.op, instr.args
    if op is MUL or op is ADD:
        unit = 1.0 if op is MUL else -0.0  # x + (+0.0) would turn -0.0 into +0.0
        if _is(a[1], unit):
            return a[0]
        if _is(a[0], unit):
            return a[1]
    if (op is DIV and _is(a[1], 1.0)) or (op is SUB and _is(a[1], 0.0)):
        return a[0]
    return None


def simplify(program):
    """Remove instructions that copy their argument (see `_identity`) and double negations.
    `x + 0.0 -> x` is deliberately absent: it turns -0.0 into 0.0."""
    alias, negated, kept = {}, {}, []
    for instr in program.instrs:
        instr = _with_args(instr, _read(alias, instr.args))
        same = _identity(instr)
        if same is None and instr.op is NEG and instr.args[0] in negated:
            same = negated[instr.args[0]]
        if same is not None:
            alias[instr.out] = same
            continue
        if instr.op is NEG and isinstance(instr.args[0], str):
            negated[instr.out] = instr.args[0]
        kept.append(instr)
    return _rebuild(program, kept, alias)


def cse(program):
    """Common subexpressions: an instruction equal to an earlier one (same op, arguments and
    parameter; commutative ops in a canonical order) reuses its register."""
    alias, seen, kept = {}, {}, []
    for instr in program.instrs:
        args = _read(alias, instr.args)
        key_args = tuple(sorted(args, key=repr)) if instr.op in (ADD, MUL) else args
        key = (instr.op.name, tuple(map(repr, key_args)), repr(instr.param))
        if key in seen:
            alias[instr.out] = seen[key]
            continue
        seen[key] = instr.out
        kept.append(_with_args(instr, args))
    return _rebuild(program, kept, alias)


def dce(program):
    """Dead code: keep only instructions an output depends on (notes move as in _rebuild)."""
    live = {a for a in program.outputs if isinstance(a, str)}
    kept = []
    for instr in reversed(program.instrs):
        if instr.out in live:
            kept.append(instr)
            live.update(a for a in instr.args if isinstance(a, str))
    return replace(program, instrs=_carry_notes(program.instrs, kept[::-1]))


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


def assign_slots(program, first_slot=0):
    """Registers to slots of a work array, reusing a slot once its value is dead (linear
    scan, as CasADi does for big functions). Returns ({register: slot}, number of slots).
    An instruction never writes the slot of one of its own arguments, so a loop over many rows
    (the batched evaluator in emit_c) can treat result and arguments as distinct arrays."""
    last_use = {a: i for i, instr in enumerate(program.instrs) for a in instr.args
                if isinstance(a, str)}
    for a in program.outputs:
        if isinstance(a, str):
            last_use[a] = len(program.instrs)  # outputs stay live to the end
    slot, free, count = {}, [], first_slot
    for name in program.inputs:
        slot[name], count = count, count + 1
    for i, instr in enumerate(program.instrs):
        if free:
            slot[instr.out] = free.pop()
        else:
            slot[instr.out], count = count, count + 1
        for a in dict.fromkeys(instr.args):  # in order: the same slots on every run
            if isinstance(a, str) and last_use.get(a) == i:
                free.append(slot[a])
        if instr.out not in last_use:  # never read: its slot is free again at once
            free.append(slot[instr.out])
    return slot, count
