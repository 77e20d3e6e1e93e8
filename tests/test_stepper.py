"""The backward-pass stepper (micrograd/stepper.py): what each step says, checked in Python.

The page in a real browser is tested in test_stepper_browser.py; here are the recorded steps:
the engine's order, the op table's formulas, the engine's numbers bit for bit, a page that
needs no network and keeps user text as text, and the size guard draw_dot has.
"""
import json
import re
import shutil
import struct

import pytest

from micrograd import ops, viz
from micrograd.engine import Value, topo_order
from micrograd.stepper import Steps, apply_text

pytestmark = pytest.mark.skipif(shutil.which('dot') is None, reason="Graphviz's `dot` is not "
                                "installed (apt-get install graphviz)")


def bits(x):
    return struct.pack('<d', x)


def mul_graph():
    """c = a * b, then d = c * 2, so the chain rule reads from a table row with numbers."""
    a, b = Value(-4.0, label='a'), Value(2.0, label='b')
    c = a * b
    c.label = 'c'
    return a, b, c


def test_one_step_per_node_forward_in_topo_order_then_backward_in_reverse():
    g = viz.readme_graph()
    order = topo_order([g])
    stepper = Steps(g)
    forward = [s['node'] for s in stepper.steps if s['phase'] == 'forward']
    backward = [s['node'] for s in stepper.steps if s['phase'] == 'backward']
    assert stepper.steps[0]['phase'] == 'start'
    assert forward == list(range(len(order)))
    assert backward == list(reversed(range(len(order))))
    assert len(stepper) == 1 + 2 * len(order)


@pytest.mark.parametrize('name', sorted(viz.GRAPHS))
def test_last_step_gradients_are_backwards_bit_for_bit(name):
    stepper = Steps(viz.GRAPHS[name]())
    engine = [node.grad for node in topo_order([viz.GRAPHS[name]()])]   # a fresh backward()
    shown = {}
    for step in stepper.steps:
        for i, field, exact, _ in step['changes']:
            if field == 'grad':
                shown[i] = exact
    assert [float(shown[i]) for i in range(len(engine))] == engine
    assert [bits(float(shown[i])) for i in range(len(engine))] == [bits(g) for g in engine]
    assert [shown[i] for i in range(len(engine))] == [repr(g) for g in engine]


def test_the_graph_is_left_as_found():
    g = viz.readme_graph()
    g.backward()                      # twice: the gradients are now the sum of two passes
    before = [(node.grad, node.label) for node in topo_order([g])]
    Steps(g)
    assert [(node.grad, node.label) for node in topo_order([g])] == before


def test_chain_rule_line_for_a_product_shows_the_other_factor_and_the_numbers():
    a, b, c = mul_graph()
    out = (c * 3.0).tanh()
    out.label = 'out'
    lines = [line for s in Steps(out).steps for line in s['lines']]
    grad_c = 3.0 * (1.0 - out.data * out.data)
    assert f'a.grad += b.data * c.grad = 2.0 * {grad_c!r} = {2.0 * grad_c!r}' in lines
    assert f'b.grad += a.data * c.grad = -4.0 * {grad_c!r} = {-4.0 * grad_c!r}' in lines
    assert 'c = a * b = -4.0 * 2.0 = -8.0' in lines


def test_gradients_add_up_and_each_step_says_to_what():
    """a is used twice (a * a): two += lines, then the total the engine holds."""
    a = Value(3.0, label='a')
    out = a * a
    out.label = 'out'
    lines = Steps(out).steps[-2]['lines']
    assert lines == ['out.grad = 1.0   (the seed: d out / d out)',
                     'a.grad += a.data * out.grad = 3.0 * 1.0 = 3.0',
                     'a.grad += a.data * out.grad = 3.0 * 1.0 = 3.0',
                     'now a.grad = 6.0']
    assert Steps(out).steps[-1]['lines'] == [
        'a is a leaf: nothing to pass back; its gradient is final, a.grad = 6.0']


def test_formulas_are_the_op_tables_rules_not_text_written_per_op(monkeypatch):
    """Change the table row: the line changes with it, so no op's text is written elsewhere."""
    a, b, c = mul_graph()
    monkeypatch.setattr(ops.MUL, 'grad', lambda x, y, out: (y * 2.0, ops.EXP(x)))
    lines = [line for s in Steps(c).steps for line in s['lines']]
    assert 'a.grad += (b.data * 2.0) * c.grad = 4.0 * 1.0 = 4.0' in lines
    assert any(line.startswith('b.grad += exp(a.data) * c.grad = ') for line in lines)


@pytest.mark.parametrize('name', sorted(ops.OPS))
def test_every_op_gets_a_chain_rule_line_with_the_engines_partials(name):
    op = ops.OPS[name]
    xs = [Value(0.75, label='x'), Value(1.5, label='y')][:op.arity]
    out = op(*xs, p=2.0) if op.param else op(*xs)
    out.label = 'out'
    step = Steps(out).steps[-len(xs) - 1]           # the backward step of `out`
    assert step['node'] == len(xs)
    for x, partial, line in zip(xs, out._partials(), step['lines'][1:]):
        if partial is None:
            assert line == f'{x.label}.grad: no gradient flows back through {name}'
        else:
            assert line.startswith(f'{x.label}.grad += ')
            assert line.endswith(f' = {partial!r} * 1.0 = {partial * 1.0!r}')


def test_op_text_is_generic_over_the_table():
    assert apply_text('+', 2, ['a', 'b']) == ('a + b', True)
    assert apply_text('tanh', 1, ['a']) == ('tanh(a)', False)
    assert apply_text('**{p}', 1, ['a'], 2.0) == ('a**2', True)


def test_a_hand_written_backward_is_replayed_and_said_so():
    x = Value(3.0, label='x')
    out = Value(x.data * 2, (x,), 'double', label='out')

    def _backward():
        x.grad += 2 * out.grad
    out._backward = _backward
    stepper = Steps(out)
    assert 'hand-written _backward()' in stepper.steps[-2]['lines'][1]
    assert stepper.final_grads == [2.0, 1.0]


def test_unlabelled_values_are_named_in_the_picture_as_in_the_formulas():
    g = viz.readme_graph()
    stepper = Steps(g)
    assert stepper.names[:2] == ['a', 'b']
    assert '>#2</text>' in stepper.svg
    assert all(not node.label for node in topo_order([g])[2:-1])   # the names were lent only


def test_the_page_is_self_contained():
    page = Steps(viz.neuron_graph()).html()
    assert '<svg' in page
    for fetch in (r'<script[^>]+src', r'<link', r'@import', r'url\(', r'<img'):
        assert not re.search(fetch, page), fetch


def test_user_text_cannot_break_out_of_the_page():
    x = Value(1.0, label='</script><script>alert(1)</script>{{data}}')
    out = (x * 2.0).tanh()
    page = Steps(out).html()
    assert page.count('</script>') == 1                # only the page's own script ends
    assert page.count('<script>') == 1
    data = json.loads(re.search(r'const DATA = (.*);\n', page).group(1))
    assert data['nodes'][0]['name'] == x.label


def test_size_guard_is_draw_dots():
    with pytest.raises(ValueError, match='max_nodes=10'):
        Steps(viz.readme_graph(), max_nodes=10)


def test_jupyter_shows_the_page_in_an_isolated_frame():
    html = Steps(viz.neuron_graph())._repr_html_()
    assert html.startswith('<iframe srcdoc="&lt;!DOCTYPE html&gt;')
    assert '<script' not in html                       # all of the page is inside srcdoc


def test_command_line_writes_the_page(tmp_path, capsys):
    viz.main(['steps', 'mlp', '--collapse', '-o', str(tmp_path / 'mlp.html')])
    assert 'wrote' in capsys.readouterr().out
    assert (tmp_path / 'mlp.html').read_text().startswith('<!DOCTYPE html>')


def test_jupyter_displays_the_stepper_and_draw_dots_picture_inline():
    """What IPython's display machinery makes of each object: HTML for the stepper, SVG for
    draw_dot's graphviz.Digraph (its own _repr_mimebundle_; nothing to add)."""
    formatter = pytest.importorskip('IPython.core.formatters').DisplayFormatter()
    shown, _ = formatter.format(Steps(viz.neuron_graph()))
    assert shown['text/html'].startswith('<iframe srcdoc=')
    shown, _ = formatter.format(viz.draw_dot(viz.neuron_graph()))
    assert '<svg' in shown['image/svg+xml']
