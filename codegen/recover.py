"""Structure recovered from a scalar Program: dense layers and their gradients.

The trace is a flat list of scalar instructions in the engine's depth-first order, so the
neurons of one layer are interleaved with those of the next. Structure is therefore read from
the dataflow, never from runs of adjacent instructions:

- a *chain* is `init + p0*v0 + p1*v1 + ...` evaluated left to right, where every p is a
  parameter (one of the first n_params inputs) and every intermediate result is used only by
  the next step: a neuron's pre-activation `b + w0*x0 + ...`, or an input's adjoint
  `w_k*g_k + w_k'*g_k' + ...` (no init: the first product is taken as it is);
- a *dense* group is a set of chains of equal length over the same vector (v0, v1, ...), whose
  parameters sit at affine positions base + m*stride_m + j*stride_j: one matrix-vector
  product per row, y[m] = init[m] + sum_j W[m, j] * v[j], each sum in the program's order;
- an *outer* group is a set of program outputs `v[j] * g[m]` at affine output positions, over
  the vector of a dense group: the weight gradients, which a batch sum accumulates row by row.

Nothing here decides correctness: a group is a claim about which instructions compute what,
and the loop level (loops.py) evaluates exactly the same operations in exactly the same order.
What is not recognised stays scalar.
"""
import itertools
from dataclasses import dataclass
from typing import Optional, Tuple

from micrograd.ops import ADD, MUL

MIN_GROUP_WORK = 16  # products below this stay scalar: a loop would cost more than it saves


@dataclass(frozen=True, eq=False)  # a group is itself: hashed by identity (LeNet-5 has 900)
class Dense:
    """outs[m] = init[m] + sum_j params[base + m*stride_m + j*stride_j] * vector[j].

    init is None (the first product is taken as it is), or one atom per chain."""
    outs: Tuple[str, ...]
    vector: Tuple[object, ...]
    init: Optional[Tuple[object, ...]]
    base: int
    stride_m: int
    stride_j: int
    internal: Tuple[str, ...]  # the registers it replaces, once each (not the final sums)

    @property
    def shape(self):
        return len(self.outs), len(self.vector)

    def weight_index(self, m, j):
        return self.base + m * self.stride_m + j * self.stride_j


@dataclass(frozen=True)
class Outer:
    """Program outputs out[base + m*stride_m + j*stride_j] = vector[j] * rows[m], or
    0.0 + vector[j] * rows[m] when `plus_zero` (a gradient that starts at 0.0, as the engine's
    does). In a batch sum, which starts at 0.0, that leading 0.0 changes no bit: it only turns
    a -0.0 product into 0.0, and a running sum from 0.0 is never -0.0, so s + 0.0 == s + -0.0."""
    vector: Tuple[object, ...]
    rows: Tuple[str, ...]
    base: int
    stride_m: int
    stride_j: int
    registers: frozenset  # the product (and 0.0 + product) registers only the outputs read
    plus_zero: bool = False

    @property
    def shape(self):
        return len(self.rows), len(self.vector)

    def output_index(self, m, j):
        return self.base + m * self.stride_m + j * self.stride_j


class Dataflow:
    """Which instruction defines each register and which read it (an instruction, or None
    for the output list; once per read). Built once per program and shared by whoever
    asks (lift's finding of layers and its reverse pass: LeNet-5 has 850k instructions)."""

    def __init__(self, program):
        self.defined = {instr.out: instr for instr in program.instrs}
        readers = {}
        reading = readers.setdefault  # one call a read, no test of the argument's type ...
        for instr in program.instrs:
            for a in instr.args:
                reading(a, []).append(instr)
        for a in program.outputs:
            reading(a, []).append(None)
        for literal in [a for a in readers if not isinstance(a, str)]:  # ... literals go after
            del readers[literal]
        self.readers = readers  # a register nobody reads: not there

    def read_once(self, register):
        return len(self.readers.get(register, ())) == 1


def find_chains(program, n_params, flow=None):
    """Every chain of the program: (final register, init atom or None, [(param index, atom)],
    [internal registers]). A product p*v that no chain absorbs is a chain of length one.
    (Lists, not sets: a chain meets each register once, and LeNet-5's chains have 700k.)
    `flow`: the program's Dataflow, when the caller has it."""
    param = {name: i for i, name in enumerate(program.inputs[:n_params])}
    flow = flow or Dataflow(program)
    defined, readers = flow.defined, flow.readers

    def factors(instr):
        """(param index, other factor) if `instr` multiplies one parameter by something else."""
        if instr is None or instr.op is not MUL:
            return None
        a, b = instr.args
        if (a in param) == (b in param):
            return None
        return (param[a], b) if a in param else (param[b], a)

    # register -> factors of the instruction defining it, if nothing else reads it
    products = {instr.out: factors(instr) for instr in program.instrs
                if instr.op is MUL and len(readers.get(instr.out, ())) == 1}
    product = products.get

    def step(atom):
        """The add defining `atom` if it is one step of a chain read only by the next step."""
        instr = defined.get(atom)  # (a literal is no key)
        if instr is None or instr.op is not ADD or len(readers[atom]) != 1:
            return None
        return instr if product(instr.args[1]) or product(instr.args[0]) else None

    chains, absorbed = [], set()
    for instr in reversed(program.instrs):
        op = instr.op
        if op is not ADD and op is not MUL or instr.out in absorbed:
            continue  # (only an add starts a chain longer than one product)
        if op is MUL:
            first = factors(instr)
            if first:
                chains.append((instr.out, None, [first], []))
            continue
        node, terms, internal, init = instr, [], [], None
        while node is not None:  # an add
            a, b = node.args
            factor = product(b)
            term, rest = (b, a) if factor else (a, b)
            factor = factor or product(a)
            if not factor:
                break
            terms.append(factor)
            internal.append(term)
            node = step(rest)
            if node is not None:
                internal.append(rest)
                continue
            first = product(rest)
            if first:  # the first product, taken as it is
                terms.append(first)
                internal.append(rest)
            else:
                init = rest
            node = None
        if terms:
            chains.append((instr.out, init, terms[::-1], internal))
            absorbed.update(internal)
    return chains


def _affine(index, M, L):
    """(base, stride_m, stride_j) if index(m, j) is affine over the M x L grid, else None."""
    base = index(0, 0)
    stride_m = index(1, 0) - base if M > 1 else 0
    stride_j = index(0, 1) - base if L > 1 else 0
    for m in range(M):
        for j in range(L):
            if index(m, j) != base + m * stride_m + j * stride_j:
                return None
    return base, stride_m, stride_j


def find_dense(program, n_params, flow=None):
    """Dense groups: chains over the same vector, with affine parameter positions."""
    by_vector = {}
    for final, init, terms, internal in find_chains(program, n_params, flow):
        key = (tuple([repr(v) for _, v in terms]), init is None)
        by_vector.setdefault(key, []).append((final, init, terms, internal))
    groups = []
    for chains in by_vector.values():
        chains.sort(key=lambda c: c[2][0][0])
        M, L = len(chains), len(chains[0][2])
        if M * L < MIN_GROUP_WORK:
            continue
        affine = _affine(lambda m, j: chains[m][2][j][0], M, L)
        if affine is None:
            continue
        indices = {chains[m][2][j][0] for m in range(M) for j in range(L)}
        if len(indices) != M * L:
            continue
        init = None if chains[0][1] is None else tuple(c[1] for c in chains)
        groups.append(Dense(tuple(c[0] for c in chains), tuple(v for _, v in chains[0][2]),
                            init, *affine,
                            tuple(itertools.chain.from_iterable(c[3] for c in chains))))
    return groups


def find_outer(program, dense_groups, flow=None):
    """Outer groups: outputs vector[j] * g[m] over the vector of a dense group. `flow`: the
    program's Dataflow, when the caller has it."""
    flow = flow or Dataflow(program)
    defined, read_once = flow.defined, flow.read_once
    position = {}
    for k, a in enumerate(program.outputs):
        if isinstance(a, str):
            position.setdefault(a, []).append(k)
    candidates = {}  # output position -> (registers, factors, plus_zero)
    biases = {}  # output position -> (register, g) for an output 0.0 + g read only there
    for a, ks in position.items():
        instr = defined.get(a)
        if instr is None or len(ks) != 1 or not read_once(a):
            continue
        if instr.op is MUL:
            candidates[ks[0]] = ((a,), instr.args, False)
        elif instr.op is ADD and _is_plus_zero(instr.args[0]) and isinstance(instr.args[1], str):
            product = defined.get(instr.args[1])
            if product is not None and product.op is MUL and read_once(instr.args[1]):
                candidates[ks[0]] = ((a, product.out), product.args, True)
            else:  # perhaps a bias's gradient, 0.0 + g[m]: see _outer_over
                biases[ks[0]] = (a, instr.args[1])
    groups, taken = [], set()
    for dense in dense_groups:
        if not all(isinstance(v, str) for v in dense.vector) or \
                len(set(dense.vector)) != len(dense.vector):
            continue
        for plus_zero in (False, True):
            group = _outer_over(dense, plus_zero, program, candidates, taken, biases)
            if group is not None:
                groups.append(group)
    return groups


def _is_plus_zero(atom):
    return isinstance(atom, float) and atom == 0.0 and str(atom) == '0.0'


def _outer_over(dense, plus_zero, program, candidates, taken, biases):
    """The Outer group of the candidates over `dense`'s vector, if they form one; with the
    biases' gradients, 0.0 + g[m] = 0.0 + 1.0 * g[m], as the sums of one more input, of 1.0,
    where they sit right after their neurons' weights (as lift.py does, see _bias_in_line)."""
    index = {v: j for j, v in enumerate(dense.vector)}
    by_row = {}  # other factor -> {j: output position}
    for k, (registers, (a, b), form) in candidates.items():
        if k in taken or form != plus_zero:
            continue
        for x, g in ((a, b), (b, a)):
            if x in index and isinstance(g, str):
                by_row.setdefault(g, {})[index[x]] = k
                break
    L = len(dense.vector)
    rows = sorted((g for g, ks in by_row.items() if len(ks) == L), key=lambda g: by_row[g][0])
    if len(rows) * L < MIN_GROUP_WORK:
        return None
    affine = _affine(lambda m, j: by_row[rows[m]][j], len(rows), L)
    if affine is None:
        return None
    ks = [by_row[g][j] for g in rows for j in range(L)]
    taken.update(ks)
    base, stride_m, stride_j = affine
    registers = frozenset(r for k in ks for r in candidates[k][0])
    vector, M = dense.vector, len(rows)
    if plus_zero and biases:
        # a bias of each neuron: the neurons are the rows (x: the layer's inputs) or the vector
        after_x = [base + m * stride_m + L * stride_j for m in range(M)]
        after_g = [base + M * stride_m + j * stride_j for j in range(L)]
        if _biases_at(after_x, rows, biases, taken):
            vector, in_line = vector + (1.0,), after_x
        elif _biases_at(after_g, vector, biases, taken):
            rows, in_line = rows + [1.0], after_g
        else:
            in_line = []
        registers |= {biases[k][0] for k in in_line}
        taken.update(in_line)
    if L >= M:
        return Outer(vector, tuple(rows), base, stride_m, stride_j, registers, plus_zero)
    # the longer side runs in the vector lanes: x*g = g*x, so swap the roles
    return Outer(tuple(rows), vector, base, stride_j, stride_m, registers, plus_zero)


def _biases_at(positions, factors, biases, taken):
    """Whether the outputs at `positions` are 0.0 + factors[k], one each, untaken."""
    return all(k not in taken and biases.get(k, (None, None))[1] == g
               for k, g in zip(positions, factors))


class Conv:
    """The pixels of a convolution: Dense groups over the same weights (and starts), each over
    its own vector. Its outputs are every pixel's, pixel after pixel. lift.py makes these."""

    def __init__(self, pixels):
        self.pixels = tuple(pixels)
        self.outs = tuple(y for pixel in self.pixels for y in pixel.outs)
        # none to leave out (as a Gather): the program lift schedules a Conv in holds none of
        # its chains' products and sums (LeNet-5: 700k registers, which find_elementwise and
        # schedule each copied into a set, to find none of them)
        self.internal = ()


@dataclass(frozen=True)
class Corr:
    """A convolution's gradient in one row, summed over its pixels in the order given:
    outs[m*L + j] = 0.0 + sum over p of x[p][j] * g[p][m] (the weights), or, when x is None,
    outs[m] = 0.0 + sum over p of g[p][m] (the biases). lift.py makes these; nothing here
    finds them in a scalar program."""
    outs: Tuple[str, ...]
    x: Optional[Tuple[Tuple[object, ...], ...]]  # per pixel, its input vector (L atoms)
    g: Tuple[Tuple[str, ...], ...]                # per pixel, the adjoints of its M outputs
    M: int
    L: int


@dataclass(frozen=True)
class Gather:
    """The adjoints of a layer's or convolution's inputs in one row: outs[i] = W[k0] * g0 +
    W[k1] * g1 + ... over the (parameter index, adjoint register) terms of input i, in the
    order given, the first taken as it is. lift.py makes these."""
    outs: Tuple[str, ...]
    terms: Tuple[Tuple[Tuple[int, str], ...], ...]
    internal: Tuple[str, ...] = ()  # none: like a Dense group's, for find_elementwise


MIN_SUM = 8  # shorter sums stay scalar: a loop would cost more than it saves


@dataclass(frozen=True, eq=False)
class Sum:
    """outs[0] = init + terms[0] + terms[1] + ..., added left to right: a chain of adds, each
    read only by the next (an L2 penalty's sum of squares, a loss summed over many outputs)."""
    outs: Tuple[str]
    init: object
    terms: Tuple[object, ...]
    internal: frozenset  # every step but the last


def find_sums(program, taken=frozenset(), flow=None):
    """Sums of at least MIN_SUM terms: adds `s = add s' t` where s' is itself such an add
    that only s reads. Registers in `taken` (other groups') are never part of one."""
    flow = flow or Dataflow(program)

    def previous(instr):
        """The add whose result `instr` continues, or None."""
        a = instr.args[0]
        before = flow.defined.get(a) if isinstance(a, str) else None
        if before is None or before.op is not ADD or a in taken or not flow.read_once(a):
            return None
        return before

    adds = [i for i in program.instrs if i.op is ADD and i.out not in taken]
    continued = {i.args[0] for i in adds if previous(i)}
    sums = []
    for last in adds:
        if last.out in continued:
            continue
        steps, before = [last], previous(last)
        while before:
            steps.append(before)
            before = previous(before)
        if len(steps) >= MIN_SUM:
            steps.reverse()
            sums.append(Sum((last.out,), steps[0].args[0], tuple(s.args[1] for s in steps),
                            frozenset(s.out for s in steps[:-1])))
    return sums


MIN_ELEMENTWISE = 4  # fewer elements than this stay scalar


@dataclass(frozen=True)
class Elementwise:
    """outs[m] = op(args...) for m < M, where each argument is a strip (a tuple of registers,
    element m reading strip[m]) or one atom shared by every element."""
    op: object
    param: Optional[float]
    outs: Tuple[str, ...]
    args: Tuple[object, ...]  # Strip or atom


@dataclass(frozen=True)
class Strip:
    registers: Tuple[str, ...]


def find_elementwise(program, dense_groups, exclude=frozenset(), seeds=()):
    """Families of identical scalar instructions across the outputs of dense groups: the
    activation of a layer, its derivative, the product of that with an adjoint, and so on.

    Starting from the dense groups' outputs (and the strips of registers in `seeds`), an
    instruction joins a family when the same op applies, for every m, to element m (or
    element M-1-m) of families already found and to the same shared atoms. Repeated until
    nothing new is found. Registers in `exclude` (those an Outer group sums) stay out."""
    families = [g.outs for g in dense_groups] + [tuple(seed) for seed in seeds]
    member = {r: (f, i) for f, regs in enumerate(families) for i, r in enumerate(regs)}
    replaced = set()
    for g in dense_groups:
        replaced.update(g.internal)
    pending = [i for i in program.instrs
               if i.out not in replaced and i.out not in member and i.out not in exclude]
    groups = []
    while True:
        buckets = {}
        for instr in pending:
            key, m = _family_key(instr, member, families)
            if key is not None:
                buckets.setdefault(key, []).append((m, instr))
        found = [_family(key, entries, member, families) for key, entries in buckets.items()]
        found = [g for g in found if g is not None]
        if not found:
            return groups
        for group in found:
            families.append(group.outs)
            member.update((r, (len(families) - 1, i)) for i, r in enumerate(group.outs))
            groups.append(group)
        pending = [i for i in pending if i.out not in member]


def _family_key(instr, member, families):
    """(op, param, argument kinds) and the element index m, or (None, None) when no argument
    belongs to a family."""
    kinds, m = [], None
    for a in instr.args:
        if isinstance(a, str) and a in member:
            f, i = member[a]
            m = i if m is None else m
            kinds.append(('family', f))
        else:
            kinds.append(('shared', repr(a)))
    if m is None:
        return None, None
    return (instr.op.name, repr(instr.param), tuple(kinds)), m


def _family(key, entries, member, families):
    """An Elementwise group from the instructions of one bucket: the same op on the same
    shared atoms, reading elements of the same families. Its elements are ordered by the
    element of the first family they read (one instruction per element: a second one reading
    the same element waits for the next round); the other arguments may be read in any
    order, as a table (a pooling window's pixels, a flattened image). None when fewer than
    MIN_ELEMENTWISE instructions remain."""
    by_m = {}
    for m, instr in entries:
        by_m.setdefault(m, instr)
    if len(by_m) < MIN_ELEMENTWISE:
        return None
    order = sorted(by_m)
    args = []
    for k, kind in enumerate(key[2]):
        if kind[0] == 'shared':
            args.append(by_m[order[0]].args[k])
        else:
            args.append(Strip(tuple(by_m[m].args[k] for m in order)))
    first = by_m[order[0]]
    return Elementwise(first.op, first.param, tuple(by_m[m].out for m in order), tuple(args))
