"""Golden files: the IR listing, loop-level listing, generated Python and generated C of four
tiny graphs.

A change to the generated text must be deliberate: regenerate with
    UPDATE_GOLDEN=1 python3 -m pytest tests/test_golden.py
and read the diff of tests/golden/ before committing it.
"""
import os
import pathlib

import pytest

import codegen
from codegen_support import STRICT_FLAGS, assert_same, use_private_cache
from micrograd import Value

GOLDEN = pathlib.Path(__file__).parent / 'golden'


def neuron():
    """tanh(w*x + b) and its gradients, optimised: what the README shows."""
    w, x, b = Value(0.5, label='w'), Value(2.0, label='x'), Value(-1.0, label='b')
    out = (w * x + b).tanh()
    out.label = 'y'
    return codegen.optimize(codegen.grad(codegen.trace(out, [w, x, b], 'neuron'))), 0


def specials():
    """Every op whose C differs from its Python, special literals, unoptimised gradients."""
    x, y = Value(1.0, label='x'), Value(2.0, label='y')
    a = (x / y).relu() + abs(x) * float('inf') - (-x).sigmoid() ** 3
    b = a.step() * float('-inf') + (y.log() - 1e300) * 5e-324 + Value(float('nan')) + -0.0
    return codegen.grad(codegen.trace(b + (2.0 ** x).exp(), [x, y], 'specials')), 0


def batch():
    """Two outputs (one a literal gradient), a shared parameter and one data input per row."""
    w, x, unused = Value(0.5, label='w'), Value(2.0, label='x'), Value(0.0, label='unused')
    loss = (w * x - 1.0) ** 2
    return codegen.optimize(codegen.grad(codegen.trace(loss, [w, x, unused], 'batch'),
                                         ['w', 'unused'])), 1


def layer():
    """A dense layer of 4 tanh neurons over 4 inputs, its loss summed: the loop level's C."""
    w = [[Value(0.1 * (i - j), label=f'w{i}{j}') for j in range(4)] for i in range(4)]
    b = [Value(0.05 * i, label=f'b{i}') for i in range(4)]
    x = [Value(1.0, label=f'x{j}') for j in range(4)]
    loss = sum(sum((wi[j] * x[j] for j in range(4)), bi).tanh() for wi, bi in zip(w, b))
    params = [v for wi, bi in zip(w, b) for v in wi + [bi]]
    program = codegen.trace(loss, params + x, 'layer')
    return codegen.optimize(codegen.grad(program, program.inputs[:len(params)])), len(params)


GRAPHS = {'neuron': neuron, 'specials': specials, 'batch': batch, 'layer': layer}


def emitted(name, kind):
    program, n_params = GRAPHS[name]()
    if kind == 'ir':
        return str(program) + '\n'
    if kind == 'py':
        return codegen.to_python(program)
    if kind == 'loops':
        return str(codegen.loops.lower(program, n_params)) + '\n'
    return codegen.to_c(program, n_params)


@pytest.mark.parametrize('kind', ['ir', 'py', 'c', 'loops'])
@pytest.mark.parametrize('name', sorted(GRAPHS))
def test_generated_text_matches_the_golden_file(name, kind):
    path = GOLDEN / f'{name}.{kind}'
    text = emitted(name, kind)
    if os.environ.get('UPDATE_GOLDEN'):
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f'{path} is missing: run with UPDATE_GOLDEN=1 to create it'
    assert text == path.read_text(), f'{path} changed: check the diff, then UPDATE_GOLDEN=1'


@pytest.mark.parametrize('name', sorted(GRAPHS))
def test_the_golden_python_runs(name):
    program, _ = GRAPHS[name]()
    namespace = {}
    exec(compile((GOLDEN / f'{name}.py').read_text(), f'{name}.py', 'exec'), namespace)
    xs = [0.5] * len(program.inputs)
    assert_same(namespace[program.name](*xs), codegen.evaluate(program, xs))


@pytest.mark.needs_cc
@pytest.mark.parametrize('name', sorted(GRAPHS))
def test_the_golden_c_compiles_without_warnings(name, tmp_path, monkeypatch):
    use_private_cache(tmp_path, monkeypatch)
    program, n_params = GRAPHS[name]()
    codegen.build(program, 'c', n_params=n_params, flags=STRICT_FLAGS)
