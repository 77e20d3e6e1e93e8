"""What the codegen tests share: the engine as oracle, strict C flags and a private compiler
cache. Every comparison of numbers between evaluators goes through `exact.same` / `assert_same`
(re-exported here), so "bit for bit" has one meaning in the whole suite.
"""
import importlib
import os
import shutil
import subprocess

import codegen
from exact import assert_same, same  # noqa: F401 (re-exported for the codegen tests)
from codegen.train import FAST_FLAGS
from micrograd.engine import Value, topo_order
from replay import SUGAR
from micrograd.ops import OPS

# `codegen.build` is the build *function* (re-exported by codegen/__init__.py), which hides the
# module of the same name; tests that patch the module's globals need the module itself.
build_module = importlib.import_module('codegen.build')
emit_c_module = importlib.import_module('codegen.emit_c')

# Every C file the tests compile must be warning-free under these (issue 5).
WARNINGS = ('-Wall', '-Wextra', '-pedantic', '-Werror')
STRICT_FLAGS = tuple(build_module.DEFAULT_FLAGS) + WARNINGS

has_cc = shutil.which(os.environ.get('CC', 'cc')) is not None


# ---- the engine as oracle --------------------------------------------------------------------

def slots_on_values(recipe, xs):
    """(input Values, every slot's Value): like replay.on_values, but all slots, so several
    of them can be outputs of one traced program."""
    inputs = [Value(float(x)) for x in xs]
    slots = list(inputs)
    for name, args, p in recipe.steps:
        operands = [slots[a] if isinstance(a, int) else a[1] for a in args]
        if p is not None:
            operands.append(p)
        slots.append((SUGAR.get(name) or OPS[name])(*operands))
    return inputs, slots


def engine(recipe, xs, outputs=(-1,), of=0, wrt=None):
    """The engine's answer: the chosen output slots, then d outputs[of] / d x for x in `wrt`
    (input positions, default all), by backward() on fresh Values."""
    inputs, slots = slots_on_values(recipe, xs)
    outs = [slots[k] for k in outputs]
    outs[of].backward()
    wrt = range(len(inputs)) if wrt is None else wrt
    return tuple(v.data for v in outs) + tuple(inputs[i].grad for i in wrt)


def traced(recipe, outputs=(-1,), of=0, wrt=None, name='f'):
    """The program a user gets for `recipe`: trace the output slots, append the gradients."""
    inputs, slots = slots_on_values(recipe, [0.5] * recipe.n_inputs)  # values do not matter
    program = codegen.trace([slots[k] for k in outputs], inputs, name)
    wrt = program.inputs if wrt is None else [program.inputs[i] for i in wrt]
    return codegen.grad(program, wrt, of=of)


def ordered_sum(rows_of_outputs):
    """What the default `sum` promises: outputs added up row by row, row 0 first, from 0.0."""
    total = [0.0] * len(rows_of_outputs[0])
    for outputs in rows_of_outputs:
        total = [t + o for t, o in zip(total, outputs)]
    return tuple(total)


# ---- C ---------------------------------------------------------------------------------------

def use_private_cache(tmp_path, monkeypatch):
    """Compile into a fresh private cache (tmp_path is 0700), with nothing loaded yet."""
    cache = tmp_path / 'cache'
    monkeypatch.setenv('MICROGRAD_CACHE', str(cache))
    monkeypatch.setattr(build_module, '_loaded', {})
    return cache


def build_c(program, **options):
    """build(program, 'c') with the warning flags every test compile uses."""
    options.setdefault('flags', STRICT_FLAGS)
    return codegen.build(program, 'c', **options)


def build_c_with(program, n_params=0, lanes=1, threads=1):
    """`codegen.to_c(program, n_params, lanes=, threads=)` compiled and loaded: the opt-in fast
    entry points, built with the flags Trainer(fast=True) uses (GNU C, OpenMP)."""
    source = codegen.to_c(program, n_params, lanes=lanes, threads=threads)
    flags = STRICT_FLAGS if (lanes, threads) == (1, 1) else FAST_FLAGS
    return codegen.Compiled(program, source, 'c', n_params,
                            build_module.compile_source(source, flags))


def run_c_program(sources, tmp_path, args=(), flags=()):
    """Compile C files with plain `cc` (no project flags) into an executable, run it and return
    its standard output."""
    exe = tmp_path / 'prog'
    cc = os.environ.get('CC', 'cc')
    compiled = subprocess.run([cc, *flags, '-o', str(exe), *map(str, sources), '-lm'],
                              capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stderr
    ran = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    return ran.stdout


# ---- labels ----------------------------------------------------------------------------------

def label_graph(inputs, outputs, labels):
    """Give every node of the graph a label, cycling through `labels` (inputs first)."""
    nodes = list(inputs) + [n for n in topo_order(list(outputs)) if n._args]
    for k, node in enumerate(nodes):
        node.label = labels[k % len(labels)]
    return nodes
