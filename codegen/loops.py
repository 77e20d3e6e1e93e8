"""The loop level: a Program evaluated over chunks of rows, with dense layers as loop nests.

A `Loops` program runs the scalar Program on CHUNK rows at a time. Every value that varies by
row lives in a *slot*, an array of CHUNK doubles (`w[slot][r]`); parameters are shared by all
rows. Its body is a list of statements, each a loop nest whose innermost operation is an
op-table instruction:

    Map     for r:        w[out][r] = op(args[r])                     one scalar instruction
    Each    for m, r:     w[out+m][r] = op(args[m][r])                the same, M times over
    Dense   for m, r:     w[out+m][r] = init[m] (+) sum_j W[m,j] * w[x_j][r]   (j in order)
    Conv    for p, m, r:  the same Dense for every pixel p, over its own x_j
    Corr    for m, j, r:  w[out+m*L+j][r] = 0.0 + sum_p x[p][j][r] * g[p][m][r]  (p in order)
    Gather  for i, r:     w[out+i][r] = sum_t W[k_it] * w[g_it][r]    (t in order)
    Sum     for r:        w[out][r] = init[r] + w[x_0][r] + w[x_1][r] + ...    (in order)
    Outer   for m, j, r:  S[m,j] = S[m,j] + w[x_j][r] * w[g_m][r]     (r in order; a batch sum)

Dense, Each, Sum and Outer come from `recover.py` (`lower`); Conv, Corr and Gather from `lift.py`,
which differentiates layers whole; everything else stays a Map. Each sum keeps the program's
order (a chain's terms left to right, a batch sum's rows first to last, a convolution's pixels
in the engine's order), and only independent sums run side by side, so the loop level computes
the scalar program's bits.

This file owns the data types, the lowering from a Program (`lower`), the printer (`format`),
the checker (`check`) and the reference interpreter (`evaluate_sum`, `evaluate_batch`).
"""
import heapq
from dataclasses import dataclass
from typing import Optional, Tuple

from micrograd.ops import ADD, MUL

from codegen import recover
from codegen.ir import Instr, Program, atom_text

CHUNK = 32  # rows evaluated together: their slots stay in the L1/L2 caches
# ... in a program without layers (Map and Each statements only), which keeps more values
# alive per row: 16 rows ran a 1,892-instruction gradient 1.35x faster than 32 (8: 1.1x)
SCALAR_CHUNK = 16


@dataclass(frozen=True)
class Param:
    """params[index]: one value shared by every row."""
    index: int


# A loop-level operand: Param, a slot number (int: w[slot][r]) or a float literal.


@dataclass(frozen=True)
class Map:
    instr: Instr          # the scalar instruction, for its op, parameter and listing
    out: int
    args: Tuple[object, ...]


@dataclass(frozen=True)
class Dense:
    group: recover.Dense
    out: int              # first of M consecutive slots
    vector: Tuple[int, ...]
    init: Optional[Tuple[object, ...]]  # None, or one operand per output


@dataclass(frozen=True)
class Each:
    group: recover.Elementwise
    out: int              # first of M consecutive slots
    args: Tuple[object, ...]  # per argument: a tuple of M slots (a strip), or one operand


@dataclass(frozen=True)
class Sum:
    group: recover.Sum
    out: int
    init: object               # an operand
    terms: Tuple[int, ...]     # slots, added in this order


@dataclass(frozen=True)
class Outer:
    group: recover.Outer
    vector: Tuple[int, ...]
    rows: Tuple[int, ...]


@dataclass(frozen=True)
class Conv:
    group: recover.Conv
    pixels: Tuple[Dense, ...]  # one Dense statement per pixel, outputs pixel after pixel

    @property
    def out(self):
        return self.pixels[0].out


@dataclass(frozen=True)
class Corr:
    group: recover.Corr
    out: int                                   # first of M*L (or M) consecutive slots
    x: Optional[Tuple[Tuple[int, ...], ...]]   # per pixel, L slots; None for the biases
    g: Tuple[Tuple[int, ...], ...]             # per pixel, M slots


@dataclass(frozen=True)
class Gather:
    group: recover.Gather
    out: int                                        # first of K consecutive slots
    terms: Tuple[Tuple[Tuple[int, int], ...], ...]  # per output: (parameter index, slot)


@dataclass(frozen=True)
class Loops:
    program: Program
    n_params: int
    n_slots: int
    constants: Tuple[Tuple[int, object], ...]  # (slot, Param or literal) filled every chunk
    inputs: Tuple[Tuple[int, int], ...]         # (slot, data column) loaded every chunk
    body: Tuple[object, ...]                    # Map, Each, Dense, Sum, Corr, Gather
    outers: Tuple[Outer, ...]                   # batch sums of products (weight gradients)
    outputs: Tuple[Optional[int], ...]          # slot per output; None where an Outer sums it

    @property
    def name(self):
        return self.program.name

    def __str__(self):
        return format(self)


# ---- lowering -------------------------------------------------------------------------------

def lower(program, n_params=0):
    """The loop-level form of `program` (its first n_params inputs shared by all rows)."""
    flow = recover.Dataflow(program)
    dense = recover.find_dense(program, n_params, flow)
    # a program of parameters alone (a batch term such as an L2 penalty) is one row: its
    # families start from the parameters themselves, and p * literal for every parameter is
    # elementwise there, not a 1-wide dense group
    seeds = [program.inputs[:n_params]] if len(program.inputs) == n_params > 0 else []
    if seeds:
        dense = [g for g in dense if any(isinstance(v, str) for v in g.vector)]
    while dense and _schedule(program, dense) is None:
        dense = dense[:-1]  # a group that waits on its own results (never seen in layers)
    outers = recover.find_outer(program, dense, flow)
    summed = set().union(*(o.registers for o in outers)) if outers else set()
    groups = dense + recover.find_elementwise(program, dense, summed, seeds)
    groups += recover.find_sums(program, summed | replaced_by(groups), flow)
    order = _schedule(program, groups)
    if order is None:  # an element that waits on another of its family: keep those scalar
        order = _schedule(program, dense)
    return allocate(program, n_params, order, outers)


def _schedule(program, groups):
    """Map instructions and groups in an order that respects the dataflow, as close to the
    program's own order as it allows; None if some group depends on its own results."""
    position = {instr.out: k for k, instr in enumerate(program.instrs)}
    return schedule(program.instrs, groups, position)


def replaced_by(groups):
    """The registers that `groups` compute: their outputs and what they replace inside."""
    replaced = set()
    for group in groups:
        replaced.update(group.outs)
        replaced.update(getattr(group, 'internal', ()))
    return replaced


def schedule(instrs, groups, position):
    """`instrs` (those no group replaces) and `groups`, ordered by dataflow and, among the
    ready ones, by `position` (register -> sort key; a group goes where its last output is;
    equal keys keep the order given); None if some group depends on its own results."""
    replaced = replaced_by(groups)
    units = [i for i in instrs if i.out not in replaced] + list(groups)
    keys = [position[u.out] if isinstance(u, Instr) else max(position[o] for o in u.outs)
            for u in units]
    producer = {name: n for n, unit in enumerate(units) for name in _writes(unit)}
    waiting, ready, order, blocked = {}, [], [], []
    for n, unit in enumerate(units):
        needs = {producer[a] for a in _reads(unit) if a in producer}
        blocked.append(len(needs))
        for need in needs:
            waiting.setdefault(need, []).append(n)
        if not needs:
            heapq.heappush(ready, (keys[n], n))
    while ready:
        _, n = heapq.heappop(ready)
        order.append(units[n])
        for later in waiting.get(n, ()):
            blocked[later] -= 1
            if blocked[later] == 0:
                heapq.heappush(ready, (keys[later], later))
    return order if len(order) == len(units) else None


def _reads(unit):
    if isinstance(unit, Instr):
        atoms = unit.args
    elif isinstance(unit, recover.Dense):
        atoms = unit.vector + (unit.init or ())
    elif isinstance(unit, recover.Corr):
        atoms = [a for row in (unit.x or ()) + unit.g for a in row]
    elif isinstance(unit, recover.Gather):
        atoms = [a for terms in unit.terms for _, a in terms]
    elif isinstance(unit, recover.Conv):
        atoms = [a for pixel in unit.pixels for a in pixel.vector + (pixel.init or ())]
    elif isinstance(unit, recover.Sum):
        atoms = (unit.init,) + unit.terms
    else:
        atoms = [r for a in unit.args
                 for r in (a.registers if isinstance(a, recover.Strip) else (a,))]
    return [a for a in atoms if isinstance(a, str)]


def _writes(unit):
    return [unit.out] if isinstance(unit, Instr) else list(unit.outs)


def allocate(program, n_params, order, outers):
    """Slots for every row-varying value; a Map's slot is reused once its value is dead."""
    params = {name: Param(i) for i, name in enumerate(program.inputs[:n_params])}
    outer_registers = set().union(*(o.registers for o in outers)) if outers else set()
    last_use = {}
    for k, unit in enumerate(order):
        for a in _reads(unit):
            last_use[a] = k
    live_to_end = [a for a in program.outputs if isinstance(a, str) and a not in outer_registers]
    for o in outers:
        live_to_end += [a for a in o.vector + o.rows if isinstance(a, str)]
    for a in live_to_end:
        last_use[a] = len(order)
    slot, free, constants, count = {}, [], {}, 0
    inputs = []
    for d, name in enumerate(program.inputs[n_params:]):
        slot[name], count = count, count + 1
        inputs.append((slot[name], d))

    def operand(atom):
        if isinstance(atom, str):
            return params[atom] if atom in params else slot[atom]
        return atom

    def as_slot(atom):
        """A slot holding `atom` for every row (a parameter or literal gets one, filled once
        per chunk), for statements that read whole rows."""
        nonlocal count
        if atom in slot:  # a row-varying register (most are: LeNet-5 asks 370k times)
            return slot[atom]
        value = operand(atom)
        if isinstance(value, int):
            return value
        key = repr(value)
        if key not in constants:
            constants[key] = (count, value)
            count += 1
        return constants[key][0]

    def block(names):
        """M consecutive slots, one per name: a group's outputs are read as w[out + m]."""
        nonlocal count
        for m, name in enumerate(names):
            slot[name] = count + m
        count += len(names)
        return slot[names[0]]

    def dense(group, out):
        vector = tuple(as_slot(v) for v in group.vector)
        init = group.init
        if init is not None:  # a bias: parameters at affine positions; else all slots
            bias = tuple(params[a] for a in init if a in params)
            affine = len(bias) == len(init) and stride(p.index for p in bias) is not None
            init = bias if affine else tuple(as_slot(a) for a in init)
        return Dense(group, out, vector, init)

    body, recyclable = [], set()  # only a Map's slot is reused: Dense outputs are blocks
    for k, unit in enumerate(order):
        if isinstance(unit, Instr):
            if unit.out in outer_registers:
                continue
            args = tuple(operand(a) for a in unit.args)
            slot[unit.out] = free.pop() if free else count
            count = max(count, slot[unit.out] + 1)
            body.append(Map(unit, slot[unit.out], args))
            recyclable.add(unit.out)
        elif isinstance(unit, recover.Corr):
            x = None if unit.x is None else tuple(tuple(as_slot(a) for a in row)
                                                  for row in unit.x)
            body.append(Corr(unit, block(unit.outs), x,
                             tuple(tuple(as_slot(a) for a in row) for row in unit.g)))
        elif isinstance(unit, recover.Gather):
            body.append(Gather(unit, block(unit.outs), tuple(
                tuple((k, as_slot(a)) for k, a in terms) for terms in unit.terms)))
        elif isinstance(unit, recover.Conv):
            out = block(unit.outs)
            body.append(Conv(unit, tuple(dense(pixel, out + p * len(pixel.outs))
                                         for p, pixel in enumerate(unit.pixels))))
        elif isinstance(unit, recover.Dense):
            body.append(dense(unit, block(unit.outs)))
        elif isinstance(unit, recover.Sum):
            body.append(Sum(unit, block(unit.outs), operand(unit.init),
                            tuple(as_slot(t) for t in unit.terms)))
        else:
            args = tuple(tuple(as_slot(r) for r in a.registers) if isinstance(a, recover.Strip)
                         else operand(a) for a in unit.args)
            body.append(Each(unit, block(unit.outs), args))
        for a in dict.fromkeys(_reads(unit)):  # in order: the same slots on every run
            if last_use.get(a) == k and a in recyclable:
                free.append(slot[a])
    statements = tuple(body)
    outer_statements = tuple(Outer(o, tuple(as_slot(v) for v in o.vector),
                                   tuple(as_slot(g) for g in o.rows)) for o in outers)
    outputs = tuple(None if isinstance(a, str) and a in outer_registers else as_slot(a)
                    for a in program.outputs)
    return Loops(program, n_params, count, tuple(constants.values()), tuple(inputs),
                 statements, outer_statements, outputs)


# ---- printer --------------------------------------------------------------------------------

def operand_text(a):
    if isinstance(a, Param):
        return f'p[{a.index}]'
    if isinstance(a, int):
        return f'w{a}'
    return atom_text(a)


def _affine_text(base, stride_m, stride_j):
    terms = [str(base)] + [f'{"" if s == 1 else "-" if s == -1 else s}{v}'
                           for s, v in ((stride_m, 'm'), (stride_j, 'j')) if s]
    return ' + '.join(terms).replace('+ -', '- ')


def stride(values):
    """The step of an arithmetic sequence (values[k] = values[0] + step*k), else None. The
    printer and the C renderer write such a sequence as base + step*m instead of listing it."""
    values = list(values)
    step = values[1] - values[0] if len(values) > 1 else 0
    return step if values == [values[0] + step * k for k in range(len(values))] else None


def _slots_text(slots):
    """w3 w4 w5 ... with each run of more than 2 consecutive slots as a range w3..w5 (or
    w5..w3): a layer's inputs and the 1.0 of its biases are (w196..w259 w648)."""
    runs = []
    for a in slots:
        run = runs[-1] if runs else None
        if run and isinstance(a, int) and isinstance(run[-1], int) and \
                a - run[-1] in (1, -1) and (len(run) == 1 or a - run[-1] == run[1] - run[0]):
            run.append(a)
        else:
            runs.append([a])
    return ' '.join(f'w{run[0]}..w{run[-1]}' if len(run) > 2 else
                    ' '.join(map(operand_text, run)) for run in runs)


def _init_text(statement):
    init = statement.init
    if init is None:
        return ''
    if all(isinstance(a, Param) for a in init):
        step = stride(a.index for a in init)
        if step is not None:
            return f'p[{_affine_text(init[0].index, step, 0)}] + '
    return f'({_slots_text(init)})[m] + '


def _strip_text(slots):
    """A strip of slots read as w[base + step*m], or listed."""
    step = stride(slots)
    if step in (1, -1):
        return f'w[{slots[0]}{"+" if step == 1 else "-"}m]'
    return f'({" ".join(map(operand_text, slots))})[m]'


def _pixels_text(rows):
    """The first pixel's slots, and how many pixels."""
    first = _slots_text(rows[0]) if len(rows[0]) > 1 else operand_text(rows[0][0])
    return f'({first}), ... {len(rows)} pixels'


def statement_text(s):
    if isinstance(s, Conv):
        first = statement_text(s.pixels[0]).split('    #')[0]
        return (f'for each of {len(s.pixels)} pixels p: {first.replace("w[", "w[M*p + ", 1)}'
                f'    # M = {s.pixels[0].group.shape[0]}; pixel 0 shown; {s.group.outs[0]} ...')
    if isinstance(s, Gather):
        n = sum(len(t) for t in s.terms)
        first = ' + '.join(f'p[{k}] * w{slot}' for k, slot in s.terms[0][:3])
        return (f'for i < {len(s.terms)}: w[{s.out}+i] = sum over its terms of p[k] * g    '
                f'# {n} terms; i = 0: {first}{" + ..." if len(s.terms[0]) > 3 else ""}; '
                f'{s.group.outs[0]} ...')
    if isinstance(s, Corr):
        g = s.group
        if s.x is None:
            return (f'for m < {g.M}: w[{s.out}+m] = 0.0 + sum over {len(s.g)} pixels p of '
                    f'g[p][m]    # g: {_pixels_text(s.g)}; {g.outs[0]} ...')
        return (f'for m < {g.M}, j < {g.L}: w[{s.out}+{g.L}m+j] = 0.0 + sum over {len(s.g)} '
                f'pixels p of x[p][j] * g[p][m]    # x: {_pixels_text(s.x)}; g: '
                f'{_pixels_text(s.g)}; {g.outs[0]} ...')
    if isinstance(s, Sum):
        return (f'w{s.out} = {operand_text(s.init)} + sum j < {len(s.terms)} of '
                f'({_slots_text(s.terms)})[j]    # {s.group.outs[0]}')
    if isinstance(s, Map):
        param = '' if s.instr.param is None else f'[p={s.instr.param!r}]'
        args = ' '.join(operand_text(a) for a in s.args)
        return f'w{s.out} = {s.instr.op.name}{param} {args}    # {s.instr.out}'
    if isinstance(s, Each):
        g = s.group
        param = '' if g.param is None else f'[p={g.param!r}]'
        args = ' '.join(_strip_text(a) if isinstance(a, tuple) else operand_text(a)
                        for a in s.args)
        return (f'for m < {len(g.outs)}: w[{s.out}+m] = {g.op.name}{param} {args}'
                f'    # {g.outs[0]} ...')
    if isinstance(s, Dense):
        g = s.group
        M, L = g.shape
        return (f'for m < {M}: w[{s.out}+m] = {_init_text(s)}'
                f'sum j < {L} of p[{_affine_text(g.base, g.stride_m, g.stride_j)}] * '
                f'({_slots_text(s.vector)})[j]    # {g.outs[0]} ...')
    g = s.group
    M, L = g.shape
    zero = '0.0 + ' if g.plus_zero else ''
    return (f'for m < {M}, j < {L}: out[{_affine_text(g.base, g.stride_m, g.stride_j)}] += '
            f'{zero}({_slots_text(s.vector)})[j] * ({_slots_text(s.rows)})[m]')


def chunk_rows(loops):
    """Rows per chunk: CHUNK for programs with layers, SCALAR_CHUNK for the others, and one
    row for a program of parameters alone (a batch term): nothing varies by row there."""
    if len(loops.program.inputs) == loops.n_params:
        return 1
    scalar = not loops.outers and all(isinstance(s, (Map, Each, Sum)) for s in loops.body)
    return SCALAR_CHUNK if scalar else CHUNK


def format(loops):  # noqa: A001  (named like ir.format)
    """A listing a person can read: the chunk loop, its statements and the batch sums."""
    p, chunk = loops.program, chunk_rows(loops)
    lines = [f'loops {p.name}(p[{loops.n_params}], rows[n, {len(p.inputs) - loops.n_params}])'
             f' -> out[{len(p.outputs)}]   # {loops.n_slots} slots of {chunk} rows',
             f'  for each chunk of {chunk} rows r:']
    if loops.inputs:
        lines.append(f'    {_slots_text([s for s, _ in loops.inputs])} = rows[r, 0..'
                     f'{len(loops.inputs) - 1}]    # {" ".join(p.inputs[loops.n_params:])}')
    for s, value in loops.constants:
        lines.append(f'    w{s} = {operand_text(value)}')
    for statement in loops.body:
        lines.append('    ' + statement_text(statement))
    lines.append('    sum over r (in order):')
    for statement in loops.outers:
        lines.append('      ' + statement_text(statement))
    plain = [(k, a) for k, a in enumerate(loops.outputs) if a is not None]
    if plain:
        shown = ', '.join(f'{k}: {operand_text(a)}' for k, a in plain[:8])
        lines.append(f'      out[k] += ({shown}{", ..." if len(plain) > 8 else ""})'
                     f'    # {len(plain)} outputs')
    return '\n'.join(lines)


# ---- checker --------------------------------------------------------------------------------

def check(loops):
    """Raise ValueError unless every slot is written before it is read, every parameter and
    output index is in range, and every output is summed exactly once."""
    n_params, n_out = loops.n_params, len(loops.program.outputs)
    written = set()

    def parameter(index, where):
        if not 0 <= index < n_params:
            raise ValueError(f'{where}: parameter {index} out of range')

    def read(a, where):
        if isinstance(a, Param):
            parameter(a.index, where)
        elif isinstance(a, int) and a not in written:
            raise ValueError(f'{where}: slot w{a} is read before it is written')
        elif not isinstance(a, (int, float, Param)):
            raise ValueError(f'{where}: bad operand {a!r:.40}')

    def read_all(atoms, where):
        """read() of each, in one set operation when all are slots written (most are)."""
        try:
            fine = written.issuperset(atoms)
        except TypeError:  # an unhashable operand: read() says what is wrong
            fine = False
        if not fine:
            for a in atoms:
                read(a, where)

    def write(s, where):
        if not 0 <= s < loops.n_slots:
            raise ValueError(f'{where}: slot w{s} out of range')
        written.add(s)

    def weights_in_range(group):
        """Whether every weight of a Dense group is a parameter: its indices are affine in
        (m, j), so the grid's corners are the least and greatest (LeNet-5's convolutions read
        475k weights, pixel by pixel; each is looked at only when one is out of range)."""
        M, L = group.shape
        corners = [group.weight_index(m, j) for m in (0, M - 1) for j in (0, L - 1)]
        return 0 <= min(corners) and max(corners) < n_params

    for s, d in loops.inputs:
        write(s, 'input load')
    for s, value in loops.constants:
        read(value, 'constant')
        write(s, 'constant')
    for statement in _flat(loops.body):
        where = statement_text(statement)
        if isinstance(statement, Gather):
            for terms in statement.terms:
                if not terms:
                    raise ValueError(f'{where}: an output without terms')
                indices = [k for k, _ in terms]
                if 0 <= min(indices) and max(indices) < n_params and \
                        written.issuperset([slot for _, slot in terms]):
                    continue  # (most are: no call per term)
                for k, slot in terms:
                    parameter(k, where)
                    read(slot, where)
            for i in range(len(statement.terms)):
                write(statement.out + i, where)
            continue
        if isinstance(statement, Corr):
            g = statement.group
            for row in (statement.x or ()) + statement.g:
                read_all(row, where)
            if any(len(row) != g.L for row in statement.x or ()) or \
                    any(len(row) != g.M for row in statement.g):
                raise ValueError(f'{where}: a pixel with the wrong number of slots')
            for k in range(len(g.outs)):
                write(statement.out + k, where)
            continue
        if isinstance(statement, (Map, Sum)):
            read_all(statement.args if isinstance(statement, Map) else
                     (statement.init,) + statement.terms, where)
            write(statement.out, where)
            continue
        if isinstance(statement, Each):
            M = len(statement.group.outs)
            for a in statement.args:
                if isinstance(a, tuple) and len(a) != M:
                    raise ValueError(f'{where}: a strip of {len(a)} slots for {M} elements')
                for b in a if isinstance(a, tuple) else (a,):
                    read(b, where)
            for m in range(M):
                write(statement.out + m, where)
            continue
        M, L = statement.group.shape
        read_all(statement.vector + (statement.init or ()), where)
        in_range = weights_in_range(statement.group)
        for m in range(M):
            for j in range(0 if in_range else L):
                read(Param(statement.group.weight_index(m, j)), where)
            write(statement.out + m, where)
    summed = [k for k, a in enumerate(loops.outputs) if a is not None]
    for statement in loops.outers:
        where = statement_text(statement)
        for a in statement.vector + statement.rows:
            read(a, where)
        M, L = statement.group.shape
        summed += [statement.group.output_index(m, j) for m in range(M) for j in range(L)]
    for k, a in enumerate(loops.outputs):
        if a is not None:
            read(a, f'output {k}')
    if sorted(summed) != list(range(n_out)):
        raise ValueError('the outputs are not each summed exactly once')
    return loops


# ---- reference interpreter ------------------------------------------------------------------

def slots_read(statement):
    """The slots a statement reads (with repeats), for emitters that need to know who reads
    what."""
    if isinstance(statement, Gather):
        return [slot for terms in statement.terms for _, slot in terms]
    if isinstance(statement, Corr):
        return [a for row in (statement.x or ()) + statement.g for a in row]
    if isinstance(statement, Conv):
        return [a for pixel in statement.pixels for a in slots_read(pixel)]
    if isinstance(statement, (Dense, Outer)):
        atoms = statement.vector + (statement.rows if isinstance(statement, Outer)
                                    else statement.init or ())
    elif isinstance(statement, Sum):
        atoms = (statement.init,) + statement.terms
    else:  # Map, Each
        atoms = [b for a in statement.args for b in (a if isinstance(a, tuple) else (a,))]
    return [a for a in atoms if isinstance(a, int) and not isinstance(a, bool)]


def slots_written(statement):
    """The slots a statement writes."""
    if isinstance(statement, Conv):
        return [s for pixel in statement.pixels for s in slots_written(pixel)]
    if isinstance(statement, (Map, Sum)):
        return [statement.out]
    size = {Dense: lambda: statement.group.shape[0], Each: lambda: len(statement.group.outs),
            Corr: lambda: len(statement.group.outs), Gather: lambda: len(statement.terms)}
    return list(range(statement.out, statement.out + size[type(statement)]()))


def _flat(body):
    """The statements with each Conv as its pixels' Dense statements."""
    for statement in body:
        if isinstance(statement, Conv):
            yield from statement.pixels
        else:
            yield statement


def _run_chunk(loops, params, rows):
    """Every slot of one chunk of rows (Python floats, the op table's forward)."""
    n = len(rows)
    w = [[0.0] * n for _ in range(loops.n_slots)]

    def column(a):
        if isinstance(a, Param):
            return [params[a.index]] * n
        return w[a] if isinstance(a, int) else [a] * n

    for s, d in loops.inputs:
        w[s] = [float(row[d]) for row in rows]
    for s, value in loops.constants:
        w[s] = column(value)
    for statement in _flat(loops.body):
        if isinstance(statement, Corr):
            _run_corr(statement, w, n)
            continue
        if isinstance(statement, Gather):
            for i, terms in enumerate(statement.terms):
                acc = None
                for k, slot in terms:
                    products = [MUL.fwd(params[k], g) for g in w[slot]]
                    acc = products if acc is None else [ADD.fwd(a, t)
                                                        for a, t in zip(acc, products)]
                w[statement.out + i] = acc
            continue
        if isinstance(statement, Sum):
            acc = column(statement.init)
            for t in statement.terms:
                acc = [ADD.fwd(a, x) for a, x in zip(acc, w[t])]
            w[statement.out] = acc
            continue
        if isinstance(statement, Map):
            op, p = statement.instr.op, statement.instr.param
            args = [column(a) for a in statement.args]
            w[statement.out] = [op.fwd(*xs) if p is None else op.fwd(*xs, p) for xs in zip(*args)]
            continue
        if isinstance(statement, Each):
            op, p = statement.group.op, statement.group.param
            for m in range(len(statement.group.outs)):
                args = [column(a[m] if isinstance(a, tuple) else a) for a in statement.args]
                w[statement.out + m] = [op.fwd(*xs) if p is None else op.fwd(*xs, p)
                                        for xs in zip(*args)]
            continue
        group = statement.group
        M, L = group.shape
        for m in range(M):
            acc = None if statement.init is None else column(statement.init[m])
            for j in range(L):
                weight = params[group.weight_index(m, j)]
                terms = [MUL.fwd(weight, x) for x in w[statement.vector[j]]]
                acc = terms if acc is None else [ADD.fwd(a, t) for a, t in zip(acc, terms)]
            w[statement.out + m] = acc
    return w, column


def _run_corr(statement, w, n):
    """0.0 + the pixels' terms, in order, for each output (see recover.Corr)."""
    g = statement.group
    for m in range(g.M):
        for j in range(g.L if statement.x is not None else 1):
            acc = [0.0] * n
            for p, gs in enumerate(statement.g):
                if statement.x is None:
                    terms = w[gs[m]]
                else:
                    terms = [MUL.fwd(a, b) for a, b in zip(w[statement.x[p][j]], w[gs[m]])]
                acc = [ADD.fwd(a, t) for a, t in zip(acc, terms)]
            w[statement.out + (m * g.L + j if statement.x is not None else m)] = acc


def evaluate_sum(loops, params, rows):
    """The outputs added up over `rows` (row 0 first): what NAME_sum computes."""
    params, total = [float(p) for p in params], [0.0] * len(loops.outputs)
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        w, column = _run_chunk(loops, params, chunk)
        for r in range(len(chunk)):
            for k, a in enumerate(loops.outputs):
                if a is not None:
                    total[k] = ADD.fwd(total[k], column(a)[r])
            for statement in loops.outers:
                M, L = statement.group.shape
                for m in range(M):
                    for j in range(L):
                        k = statement.group.output_index(m, j)
                        term = MUL.fwd(w[statement.vector[j]][r], w[statement.rows[m]][r])
                        total[k] = ADD.fwd(total[k], term)
    return tuple(total)


def evaluate_batch(loops, params, rows):
    """The outputs of each row: what NAME_batch computes."""
    params, result = [float(p) for p in params], []
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        w, column = _run_chunk(loops, params, chunk)
        for r in range(len(chunk)):
            out = [column(a)[r] if a is not None else None for a in loops.outputs]
            for statement in loops.outers:
                M, L = statement.group.shape
                for m in range(M):
                    for j in range(L):
                        product = MUL.fwd(w[statement.vector[j]][r], w[statement.rows[m]][r])
                        out[statement.group.output_index(m, j)] = \
                            ADD.fwd(0.0, product) if statement.group.plus_zero else product
            result.append(tuple(out))
    return result


# Above this many scalar statements the loop level's C compiles slowly (each Map is a loop that
# gcc -O3 vectorises: 7,131 of them, the digits CNN's, took 46 s against 0.5 s table-driven).
MAP_LIMIT = 1000


def has_structure(loops, map_limit=MAP_LIMIT):
    """True when the loop level found a dense group and left little scalar code (at most
    map_limit statements; else the scalar emitters serve better)."""
    maps = sum(1 for s in loops.body if isinstance(s, Map))
    return maps <= map_limit and any(isinstance(s, (Dense, Conv)) for s in loops.body)
