"""Reverse-mode differentiation of a Program, with the op table's rules run on symbols.

The same loop as the engine's backward pass, written once more over instructions instead of
nodes: seed the output's adjoint with 1.0, walk the instructions in reverse, and for each
argument add `partial * adjoint`. Because the order matches the engine, so do the bits.
"""
from micrograd.ops import ADD, MUL

from codegen.ir import Instr, Program
from codegen.lower import Builder, Sym
from codegen.passes import dce


def grad(program, wrt=None, of=0):
    """Append d outputs[of] / d x for every input name x in `wrt` (default: all inputs)."""
    wrt = list(program.inputs if wrt is None else wrt)
    inputs = set(program.inputs)
    unknown = [x for x in wrt if x not in inputs]
    if unknown:
        shown = ', '.join(repr(x)[:40] for x in unknown[:3])
        raise ValueError(f'cannot differentiate with respect to {shown}'
                         f'{" and more" if len(unknown) > 3 else ""}: not inputs of '
                         f'{program.name} (wrt takes input names, e.g. '
                         f'{", ".join(program.inputs[:3])})')
    taken = set(program.inputs) | {i.out for i in program.instrs}
    builder = Builder(prefix='t', taken=taken)
    builder.instrs = list(program.instrs)
    outputs = set(wrt)
    needs = _depends_on(program, outputs)
    adjoint = {}  # register -> Sym or float: d output / d register so far
    target = program.outputs[of]
    if isinstance(target, str) and target in needs:
        adjoint[target] = 1.0
    defined = {instr.out: instr for instr in program.instrs}
    for instr in reversed(_topo_order(defined, target)):
        if instr.out in needs:
            backward_step(builder, instr, adjoint, needs, outputs, len(program.instrs))
    grads = tuple(adjoint.get(x, 0.0) for x in wrt)
    # Rules return every partial; those of arguments needing no gradient are dead: drop them.
    return dce(Program(program.name, program.inputs, tuple(builder.instrs),
                       program.outputs + tuple(_atom(g) for g in grads),
                       program.output_names + tuple(f'd{program.output_names[of]}/d{x}'
                                                    for x in wrt)))


def backward_step(builder, instr, adjoint, needs, outputs, n_forward):
    """The chain rule through one instruction: for each argument in `needs`, add
    partial * adjoint[instr.out] into adjoint[argument] (the instructions go to `builder`, whose
    first n_forward instructions are the forward program's). Registers in `outputs` are
    gradients the caller returns: their sums start at 0.0, as the engine's do."""
    # Like the engine (and PyTorch), apply the chain rule also where no gradient arrived
    # (a register that only feeds step or sign): 0.0 times an inf or nan partial is nan.
    adjoint.setdefault(instr.out, 0.0)
    builder.note = f'grad of: {instr}'
    args = [Sym(a, builder) if isinstance(a, str) else a for a in instr.args]
    out = Sym(instr.out, builder)
    partials = instr.op.grad(*args, out) if instr.param is None else \
        instr.op.grad(*args, out, instr.param)
    terms = {}  # x*x: both partials are x, and the engine computes the same term twice
    for arg, partial in zip(instr.args, partials):
        if partial is None or not isinstance(arg, str) or arg not in needs:
            continue
        key = _atom(partial), _atom(adjoint[instr.out])
        term = terms[key] if key in terms else \
            terms.setdefault(key, builder.emit(MUL, (partial, adjoint[instr.out])))
        total = builder.emit(ADD, (adjoint[arg], term)) if arg in adjoint else \
            _first_term(builder, term, arg in outputs)
        adjoint[arg] = _name_adjoint(builder, total, arg, n_forward)
        if total is term:  # renamed g_<arg>: the reused term goes by that name now
            terms[key] = adjoint[arg]


def _first_term(builder, term, is_output):
    """The adjoint after its first term. An input's gradient is an output, and the engine's
    starts at 0.0 (`grad += term`), which turns a first term of -0.0 into +0.0: so does this.
    Other adjoints skip the add: their zero's sign only reaches the sign of zero terms, and the
    outputs' leading 0.0 erases that."""
    return builder.emit(ADD, (0.0, term)) if is_output else term


def _name_adjoint(builder, total, register, n_forward):
    """Rename a just-computed adjoint of `register` to g_<register> (tangent's naming): only
    an instruction this pass emitted, never one of the `n_forward` forward instructions."""
    last = builder.instrs[-1] if len(builder.instrs) > n_forward else None
    if not isinstance(total, Sym) or last is None or last.out != total.name \
            or not total.name.startswith('t'):
        return total
    name = builder.fresh('', fallback=f'g_{register}')
    builder.instrs[-1] = Instr(name, last.op, last.args, last.param, last.note)
    return Sym(name, builder)


def _topo_order(defined, target):
    """The instructions `target` depends on (`defined`: register -> its instruction), in the
    engine's order for it: that of `topo_order([output])`, a depth-first walk over the
    arguments. The engine sums gradients in this order; the program's own order can differ
    (trace([a, b]) walks from a first)."""
    order, seen = [], set()
    if target in defined:
        seen.add(target)
        stack = [(defined[target], iter(defined[target].args))]
        while stack:
            instr, args = stack[-1]
            for a in args:
                if a in defined and a not in seen:
                    seen.add(a)
                    stack.append((defined[a], iter(defined[a].args)))
                    break
            else:
                stack.pop()
                order.append(instr)
    return order


def _depends_on(program, wrt):
    """Registers whose value depends on an input in `wrt` (only they need adjoints)."""
    needs = set(wrt)
    for instr in program.instrs:
        if not needs.isdisjoint(instr.args):  # (literals: never equal to a name)
            needs.add(instr.out)
    return needs


def _atom(g):
    return g.name if isinstance(g, Sym) else float(g)
