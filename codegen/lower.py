"""Lowering: a recorded Value graph becomes a Program; `Sym`/`Builder` let rules emit instructions.

`trace` walks the same `topo_order` as the engine's backward pass, so the generated backward
sums gradients in the engine's order. Labels are user text: they become register names only
after sanitising (letters, digits, `_`), and never when they could clash with a keyword or a
name the generated code uses.
"""
import re

from micrograd.engine import Value, topo_order
from micrograd.ops import ADD, MUL, NEG, OPS, SUB, Node

from codegen.ir import Instr, Program, usable_name

TEMPORARY = re.compile(r'v[0-9]+\Z|g_')  # names the builder itself hands out


def register_name(label, taken):
    """A safe, unique register name from a label, or None to fall back to a numbered one."""
    name = re.sub(r'[^A-Za-z0-9_]', '_', label)[:32]
    if not usable_name(name) or TEMPORARY.match(name) or name in taken:
        return None
    return name


def output_name(label, i):
    """A label made safe to show in a comment of generated code (else out<i>)."""
    name = re.sub(r'[^A-Za-z0-9_.]', '_', str(label or ''))[:40]
    return name if name.strip('_.') else f'out{i}'


class Sym(Node):
    """A register during code generation: arithmetic on it appends instructions."""
    __slots__ = ('name', 'builder')

    def __init__(self, name, builder):
        self.name, self.builder = name, builder

    def _record(self, op, args, p=None):
        return self.builder.emit(op, args, p)

    def __add__(self, other): return self.builder.emit(ADD, (self, other))
    def __radd__(self, other): return self.builder.emit(ADD, (other, self))
    def __sub__(self, other): return self.builder.emit(SUB, (self, other))
    def __rsub__(self, other): return self.builder.emit(SUB, (other, self))
    def __mul__(self, other): return self.builder.emit(MUL, (self, other))
    def __rmul__(self, other): return self.builder.emit(MUL, (other, self))
    def __neg__(self): return self.builder.emit(NEG, (self,))


class _Taken:
    """A builder's taken names: those of `reserved`, read in place, and a set of the rest."""

    def __init__(self, taken, reserved):
        self.names, self.reserved = set(taken), reserved

    def __contains__(self, name):
        return name in self.names or name in self.reserved

    def add(self, name):
        self.names.add(name)


class Builder:
    """Collects instructions, handing out fresh register names.

    It folds only what is exact for every IEEE input: all-literal arguments (computed with the
    op's own forward) and multiplication by the literal 1.0 or -1.0 (the latter becomes neg).
    """

    def __init__(self, prefix='v', taken=(), reserved=None):
        """taken: names not to hand out; reserved: more of them, in a container of the
        caller's that is looked up but not copied (lift's builder: the 850k registers of
        LeNet-5's forward program, whose copy took 0.2 s)."""
        self.instrs, self.prefix, self.count = [], prefix, 0
        self.taken = set(taken) if reserved is None else _Taken(taken, reserved)
        self.suffix = {}  # base name -> next suffix to try
        self.note = ''

    def fresh(self, label='', fallback=None):
        name = register_name(str(label), self.taken) if label else None  # labels are any text
        if name is None and fallback is not None:
            name = self._unused(fallback)
        while name is None or name in self.taken:
            name, self.count = f'{self.prefix}{self.count}', self.count + 1
        self.taken.add(name)
        return name

    def numbered(self):
        """`fresh('')` without its lookups, for trace's builder: no label becomes a numbered
        name (`register_name` refuses TEMPORARY ones), so only this counter hands them out and
        they need no place in `taken` (LeNet-5's trace names 850k registers)."""
        name = f'{self.prefix}{self.count}'
        self.count += 1
        return name

    def _unused(self, base):
        """base, or base_2, base_3, ... whichever is free first."""
        k = self.suffix.get(base, 1)
        name = base if k == 1 else f'{base}_{k}'
        while name in self.taken:
            k += 1
            name = f'{base}_{k}'
        self.suffix[base] = k + 1
        return name

    def emit(self, op, args, p=None, label=''):
        atoms = tuple(a.name if isinstance(a, Sym) else float(a) for a in args)
        if all(isinstance(a, float) for a in atoms):
            return op.fwd(*atoms) if p is None else op.fwd(*atoms, p)
        if op is MUL:
            for i, literal in ((0, atoms[0]), (1, atoms[1])):
                if literal == 1.0:
                    return args[1 - i]
                if literal == -1.0:
                    return self.emit(NEG, (args[1 - i],))
        return self.emit_raw(op, args, p, label)

    def emit_raw(self, op, args, p=None, label=''):
        """Append `out = op(*args)` without folding; return the Sym of `out`."""
        atoms = tuple(a.name if isinstance(a, Sym) else float(a) for a in args)
        return Sym(self.append(op, atoms, p, label), self)

    def append(self, op, atoms, p=None, label=''):
        """Append `out = op(*atoms)` (register names and floats, as they are); return `out`."""
        out = self.fresh(label)
        self.instrs.append(Instr(out, op, atoms, p, self.note))
        self.note = ''
        return out


def trace(outputs, inputs, name='f'):
    """Lower the graph behind `outputs` (a Value or a list) to a Program of the leaves `inputs`.

    Every other leaf becomes a literal (its current `.data`); interior nodes become
    instructions, one per node, in the engine's topological order.
    """
    if not usable_name(name):
        raise ValueError(f'invalid program name {name!r:.60}: the name of a C and Python function '
                         'is needed (letters, digits, _; no keyword)')
    outputs = [outputs] if isinstance(outputs, Value) else list(outputs)
    for i, out in enumerate(outputs):
        if not isinstance(out, Value):
            raise TypeError(f'output {i} is a {type(out).__name__}, not a Value')
    inputs = list(inputs)
    _check_inputs(inputs)
    builder = Builder()
    # Value -> its atom: a register name, or the float of a leaf that is no input (a node's
    # arguments are then its instruction's as they are: no Sym per node, no folding). Values
    # hash by identity; keyed by themselves, not id(), a lookup is one C call (LeNet-5: 1.7M)
    atoms = {}
    for i, leaf in enumerate(inputs):
        atoms[leaf] = builder.fresh(leaf.label, fallback=f'x{i}')
    input_names = tuple(atoms[leaf] for leaf in inputs)
    atom_of = atoms.__getitem__
    table_ops, new_instr = set(OPS.values()), tuple.__new__
    instrs = builder.instrs  # appended to directly: `Builder.append`, minus two calls a node
    for node in topo_order(outputs):
        if not node._args:  # an input (named above: inputs are leaves) or a literal
            if node not in atoms:
                atoms[node] = float(node.data)
            continue
        if node._rule is None or node._custom_backward is not None:  # the engine runs that
            raise ValueError(f'cannot generate code for op {node._op!r}: it has a hand-written '
                             '_backward, not a row in micrograd/ops.py; add the op there')
        if node._rule not in table_ops or len(node._args) != node._rule.arity or \
                (node._param is not None) != node._rule.param:
            _refuse_op(node)
        out = builder.fresh(node.label) if node.label else builder.numbered()
        # Instr(...) without the Python-level __new__ of a NamedTuple (850k for LeNet-5)
        instrs.append(new_instr(Instr, (out, node._rule, tuple(map(atom_of, node._args)),
                                        node._param, '')))
        atoms[node] = out
    return Program(name, input_names, tuple(instrs), tuple(atoms[v] for v in outputs),
                   tuple(output_name(v.label, i) for i, v in enumerate(outputs)))


def _refuse_op(node):
    """Raise what `ir.check` would say of this node's instruction: trace's programs pass it
    by construction (names from `Builder.fresh`, each defined before use), save for an op
    that is no row of the table or does not match it, which is refused here."""
    op = node._rule
    if OPS.get(getattr(op, 'name', None)) is not op:
        raise ValueError(f'cannot generate code for op {node._op!r}: {op!r} is not a row of '
                         'micrograd/ops.py (unknown op)')
    if len(node._args) != op.arity:
        raise ValueError(f'op {op.name} takes {op.arity} arguments, not {len(node._args)}')
    raise ValueError(f'parameter presence does not match op {op.name}')


def _check_inputs(inputs):
    seen = set()
    for i, leaf in enumerate(inputs):
        if not isinstance(leaf, Value):
            raise TypeError(f'input {i} is a {type(leaf).__name__}, not a Value')
        if leaf._args:
            raise ValueError(f'input {i} ({leaf!r}, op {leaf._op!r}) is not a leaf: only leaves '
                             'can be inputs')
        if id(leaf) in seen:
            raise ValueError(f'input {i} ({leaf!r}) is listed twice')
        seen.add(id(leaf))
