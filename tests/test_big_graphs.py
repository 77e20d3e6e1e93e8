"""Big graphs: lowering, differentiation and emission are iterative, so depth is no limit; above
emit_c.STRAIGHT_LINE_LIMIT instructions the C is a table run by a loop, which compiles fast."""
import math

import pytest

import codegen
from codegen_support import assert_same, build_c, emit_c_module, use_private_cache
from micrograd import Value


def affine_chain(n_nodes):
    """x -> x * 1.0000001 + 0.5, repeated: n_nodes interior nodes in one chain."""
    x = Value(0.5, label='x')
    v = x
    for _ in range(n_nodes // 2):
        v = v * 1.0000001 + 0.5
    return v, x


def tanh_chain(n_nodes, x):
    """tanh(tanh(...tanh(x))): its gradient adds three instructions per node."""
    v = x
    for _ in range(n_nodes):
        v = v.tanh()
    return v


@pytest.mark.slow
def test_a_million_node_chain_traces_differentiates_and_emits_without_recursion():
    out, x = affine_chain(1_000_000)
    program = codegen.trace(out, [x])
    assert len(program.instrs) == 1_000_000
    gradient = codegen.grad(program)   # every partial is a literal: d out/dx folds as it goes
    assert len(gradient.outputs) == 2
    assert codegen.to_python(gradient).count('\n    v') >= 1_000_000
    assert 'switch' in codegen.to_c(gradient)  # table-driven: straight-line C crashes gcc


@pytest.mark.slow
@pytest.mark.needs_cc
def test_a_table_driven_program_of_30000_instructions_compiles_and_equals_the_engine(
        tmp_path, monkeypatch):
    use_private_cache(tmp_path, monkeypatch)
    x = Value(0.5, label='x')
    program = codegen.grad(codegen.trace(tanh_chain(7_500, x), [x]))
    assert len(program.instrs) > emit_c_module.STRAIGHT_LINE_LIMIT
    compiled = build_c(program)
    assert 'switch' in compiled.source
    rows = [(0.3,), (-2.0,), (0.0,), (math.inf,), (math.nan,), (1e-300,)]
    expected = []
    for (value,) in rows:
        x = Value(value)
        out = tanh_chain(7_500, x)
        out.backward()
        expected.append((out.data, x.grad))
    for row, want, got in zip(rows, expected, compiled.batch([], rows)):
        assert_same(want, got, f'30k-instruction table-driven C at {row}')
    assert_same(expected[0], compiled(*rows[0]), 'single call')
    assert_same(tuple(map(sum, zip(*expected[:2]))), compiled.sum([], rows[:2]), 'sum')


def test_the_straight_line_limit_decides_the_form_of_the_c():
    x = Value(0.5, label='x')
    program = codegen.trace(tanh_chain(10, x), [x])
    assert 'switch' not in codegen.to_c(program, straight_line_limit=10)
    assert 'switch' in codegen.to_c(program, straight_line_limit=9)
