"""The linear IR: a Program is a flat list of instructions, like a jaxpr.

Registers are names (str); literals are floats written inline. Every pass, printer and emitter is
one loop over `Program.instrs`. This file owns the data types, the printer (`format`), the
verifier (`check`) and the reference interpreter (`evaluate`, using the op table's forward).
"""
import hashlib
import re
from dataclasses import dataclass
from typing import NamedTuple, Optional, Tuple, Union

from micrograd.ops import OPS, Op

from codegen.abi import RESERVED_WORDS, USABLE_IDENTIFIER
from codegen.abi import usable_name  # noqa: F401  (re-exported: the IR's names obey the ABI)

Atom = Union[str, float]  # a register name or an inline literal

OUTPUT_NAME = re.compile(r'[A-Za-z0-9_./]{1,80}\Z')  # shown in comments of generated code


class Instr(NamedTuple):
    """out = op(*args) [with parameter p]; `note` is a comment carried into generated code."""
    out: str
    op: Op
    args: Tuple[Atom, ...]
    param: Optional[float] = None
    note: str = ''

    def __str__(self):
        return instr_text(self)


@dataclass(frozen=True)
class Program:
    """A straight-line function of named inputs; outputs are registers or literals."""
    name: str
    inputs: Tuple[str, ...]
    instrs: Tuple[Instr, ...]
    outputs: Tuple[Atom, ...]
    output_names: Tuple[str, ...] = ()

    def __str__(self):
        return format(self)

    def digest(self):
        """A short content hash, used in generated headers and cache keys."""
        return hashlib.sha256(format(self).encode()).hexdigest()[:12]


def atom_text(atom):
    return atom if isinstance(atom, str) else repr(atom)


def instr_text(instr):
    """`out = op[p=param] args`, an Instr's line in listings."""
    try:  # registers only, most often: joined in one call (LeNet-5's listing has 850k lines)
        args = ' '.join(instr.args)
    except TypeError:
        args = ' '.join(map(atom_text, instr.args))
    param = '' if instr.param is None else f'[p={instr.param!r}]'
    return f'{instr.out} = {instr.op.name}{param} {args}'


def format(program):  # noqa: A001  (the printer, named like jaxpr's pretty-printer)
    """The jaxpr-style listing: `{ lambda inputs . let ... in ( outputs ) }`."""
    lines = [f'{{ lambda {" ".join(program.inputs)} .']
    indent = '  let '
    for instr in program.instrs:
        if instr.note:
            lines.append(f'      # {instr.note}')
        lines.append(indent + instr_text(instr))
        indent = '      '
    lines.append(f'  in ( {", ".join(map(atom_text, program.outputs))} ) }}')
    return '\n'.join(lines)


def check(program):
    """Raise ValueError unless every register is a valid name defined once before its use
    and every instruction has the arity and parameter its op requires."""
    defined = set()
    if not usable_name(program.name):
        raise ValueError(f'invalid program name {program.name!r:.60}: it must be an identifier '
                         'that is no keyword or name of the generated code')
    bad = [n for n in program.output_names if not isinstance(n, str) or not OUTPUT_NAME.match(n)]
    if bad:
        raise ValueError(f'invalid output name {bad[0]!r:.60}: letters, digits, _ . / only')

    def define(name):
        if not usable_name(name):
            raise ValueError(f'invalid register name {name!r:.60}')
        if name in defined:
            raise ValueError(f'register {name} is defined twice')
        defined.add(name)

    def use(atom, where):
        if isinstance(atom, str) and atom not in defined:
            raise ValueError(f'{where} uses {atom}, which is not defined before it')
        if not isinstance(atom, (str, float)):
            raise ValueError(f'{where} has an argument that is neither a register nor a float')

    for name in program.inputs:
        define(name)
    # One loop, no call per instruction when all is well (LeNet-5: 850k of them): each op is
    # looked up in the table once, and a name is only looked at again to say what is wrong.
    usable, known_ops = USABLE_IDENTIFIER.match, set()
    for instr in program.instrs:
        op = instr.op
        if op not in known_ops:
            if OPS.get(op.name) is not op:
                raise ValueError(f'{instr}: unknown op {op!r}')
            known_ops.add(op)
        if len(instr.args) != op.arity:
            raise ValueError(f'{instr}: {op.name} takes {op.arity} arguments')
        if (instr.param is not None) != op.param:
            raise ValueError(f'{instr}: parameter presence does not match op {op.name}')
        try:  # all arguments registers defined before, in one call (most are)
            all_defined = defined.issuperset(instr.args)
        except TypeError:  # an unhashable argument: the loop below says what is wrong
            all_defined = False
        if not all_defined:
            for atom in instr.args:
                if not (isinstance(atom, str) and atom in defined):
                    use(atom, instr)  # formatted only in an error message
        out = instr.out
        # usable_name's tests, its regex first: the others only for names it lets through
        if not (isinstance(out, str) and usable(out)) or out in defined or \
                out in RESERVED_WORDS or (len(out) > 1 and out.isupper()):
            define(out)  # raises
        defined.add(out)
    for atom in program.outputs:
        use(atom, 'the output list')
    return program


def evaluate(program, inputs):
    """The reference semantics: run the program on floats with each op's forward."""
    if len(inputs) != len(program.inputs):
        raise TypeError(f'{program.name} takes {len(program.inputs)} inputs, got {len(inputs)}')
    env = dict(zip(program.inputs, map(float, inputs)))

    def value(atom):
        return env[atom] if isinstance(atom, str) else atom

    for instr in program.instrs:
        xs = [value(a) for a in instr.args]
        p = instr.param
        env[instr.out] = instr.op.fwd(*xs) if p is None else instr.op.fwd(*xs, p)
    return tuple(value(a) for a in program.outputs)
