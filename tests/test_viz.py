"""Graph pictures (micrograd/viz.py): what a user sees, checked on the real Graphviz output.

Rendering tests run Graphviz's `dot` to SVG and read the SVG back with xml.etree: one box per
Value, one ellipse per op, one arrow per operand, the numbers micrograd prints. Without `dot` or
the graphviz package they fail, saying how to install it (`make test` does).
"""
import math
import os
import pathlib
import random
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from hypothesis import example, given, settings, strategies as st

import needs
from micrograd import viz
from micrograd.engine import Value, topo_order
from micrograd.nn import MLP
from micrograd.viz import draw_dot, to_dot
from replay import on_values
from strategies import recipes_with_inputs

needs_dot = pytest.mark.needs_dot
SVG = '{http://www.w3.org/2000/svg}'
ROOT = pathlib.Path(__file__).resolve().parents[1]


# ---- helpers: render, then read the picture back -----------------------------------------------
def render(text):
    """Run dot on DOT text; {node id: [its texts]} and the number of arrows in the SVG."""
    svg = subprocess.run(['dot', '-Tsvg'], input=text.encode('utf-8'), capture_output=True,
                         check=True).stdout
    boxes, arrows = {}, 0
    for group in ET.fromstring(svg).iter(SVG + 'g'):     # raises if dot wrote broken XML
        if group.get('class') == 'node':
            texts = [t.text or '' for t in group.iter(SVG + 'text')]
            boxes[group.find(SVG + 'title').text] = texts
        elif group.get('class') == 'edge':
            arrows += 1
    return boxes, arrows


def picture(root, **options):
    """(value boxes, op ellipses, arrows) of root's picture, the legend left out."""
    boxes, arrows = render(to_dot(root, legend=False, **options))
    values = {name: texts for name, texts in boxes.items() if not name.endswith('op')}
    ops = {name: texts for name, texts in boxes.items() if name.endswith('op')}
    return values, ops, arrows


def box_of(root, value, **options):
    """The texts in `value`'s box (its id is its position in topo_order)."""
    values, _, _ = picture(root, **options)
    return values[f'v{topo_order([root]).index(value)}']


def enclosing_clusters(text):
    """{node id: label of the innermost frame around it} from our DOT text."""
    where, frames = {}, []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith('subgraph cluster'):
            frames.append(None)
        elif line.startswith('label=<') and frames:
            frames[-1] = line[len('label=<'):line.index('>')]
        elif line == '}' and frames:
            frames.pop()
        elif line.startswith('v') and ' [label=' in line:
            where[line.split(' ')[0]] = frames[-1] if frames else None
    return where


def neuron():
    """Karpathy's 2-input tanh neuron, after backward: (output, {label: Value})."""
    x1, x2 = Value(2.0, label='x1'), Value(0.0, label='x2')
    w1, w2 = Value(-3.0, label='w1'), Value(1.0, label='w2')
    b = Value(6.8813735870195432, label='b')
    o = (x1 * w1 + x2 * w2 + b).tanh()
    o.label = 'o'
    o.backward()
    return o, dict(x1=x1, x2=x2, w1=w1, w2=w2, b=b, o=o)


def mlp_loss():
    """MLP(2, [4, 4, 1]) from micrograd.nn, a squared error on one sample, after backward."""
    model = MLP(2, [4, 4, 1], rng=random.Random(0))
    xs = [Value(2.0, label='x0'), Value(-1.0, label='x1')]
    out = model(xs)
    loss = (out - 1.0) ** 2
    loss.backward()
    return model, xs, out, loss


# ---- what a box shows ------------------------------------------------------------------------
@needs_dot
def test_readme_expression_has_a_box_per_value_an_ellipse_per_op_an_arrow_per_operand():
    g = viz.readme_graph()
    order = topo_order([g])
    values, ops, arrows = picture(g)
    assert len(values) == len(order)
    assert len(ops) == sum(1 for v in order if v._op)
    assert arrows == sum(len(v._args) for v in order) + len(ops)  # operand arrows + op -> box
    assert values[f'v{len(order) - 1}'] == ['g', 'data 24.7041', 'grad 1.0000']


@needs_dot
def test_readme_inputs_are_named_and_show_micrograd_gradients():
    g = viz.readme_graph()
    a, b = [v for v in topo_order([g]) if v.data in (-4.0, 2.0) and not v._args][:2]
    assert box_of(g, a) == ['a', 'data -4.0000', 'grad 138.8338']
    assert box_of(g, b) == ['b', 'data 2.0000', 'grad 645.5773']


def test_the_readme_pictures_a_and_b_are_inputs_not_a_bias():
    g = viz.readme_graph()
    kinds = viz.leaf_kinds(topo_order([g]), **viz.example_options('readme', g))
    assert sorted(v.label for v, kind in kinds.items() if kind == 'input') == ['a', 'b']
    assert 'parameter' not in kinds.values()


@needs_dot
def test_a_labelled_value_shows_label_data_and_grad():
    o, v = neuron()
    assert box_of(o, v['w1']) == ['w1', 'data -3.0000', 'grad 1.0000']
    assert box_of(o, v['o']) == ['o', 'data 0.7071', 'grad 1.0000']


@needs_dot
def test_each_op_is_a_small_ellipse_showing_its_symbol():
    o, _ = neuron()
    _, ops, _ = picture(o)
    assert sorted(texts[0] for texts in ops.values()) == ['*', '*', '+', '+', 'tanh']


def test_numbers_too_small_or_big_for_four_decimals_use_exponents():
    text = to_dot(Value(1e-7) * Value(3e8))
    assert 'data 1.000e-07' in text and 'data 3.000e+08' in text and 'data 30.0000' in text


def test_non_commutative_operands_are_numbered_in_order():
    a, b = Value(1.0, label='a'), Value(2.0, label='b')
    text = to_dot(a - b)
    assert 'v0 -> v2op [headlabel=1]' in text and 'v1 -> v2op [headlabel=2]' in text
    assert 'headlabel' not in to_dot(a + b) + to_dot(a * b)


# ---- parameters, inputs and constants ---------------------------------------------------------
def test_leaf_kinds_follow_the_labels_and_use_counts():
    w = Value(0.5, label='L0.N1.w0')
    b = Value(0.0, label='b')
    x = Value(2.0, label='x')
    y = Value(3.0)                                # unlabelled, used twice: an input
    out = (w * x + b) * y + y * 2                 # the 2 becomes an unlabelled leaf used once
    kinds = viz.leaf_kinds(topo_order([out]))
    assert kinds[w] == kinds[b] == 'parameter'
    assert kinds[x] == kinds[y] == 'input'
    two = [v for v in kinds if v.data == 2.0 and v is not x]
    assert [kinds[v] for v in two] == ['constant']
    assert kinds[out] == 'computed'


def test_explicit_sets_override_the_label_rules():
    b = Value(1.0, label='b')                     # looks like a bias
    c = Value(2.0)                                # looks like a constant
    out = b * c
    kinds = viz.leaf_kinds(topo_order([out]), params=[c], inputs=[b])
    assert kinds[b] == 'input' and kinds[c] == 'parameter'


def test_each_kind_has_its_own_style_and_the_legend_names_them():
    o, v = neuron()
    text = to_dot(o * 2)
    for kind in ('parameter', 'input', 'constant', 'computed'):
        assert viz.STYLES[kind][0] in text
    assert 'legend [label=' in text
    assert 'legend' not in to_dot(Value(1.0) + Value(2.0), legend=False)


# ---- gradients at a glance -------------------------------------------------------------------
def test_gradient_colours_grow_with_log_magnitude_and_set_nan_and_inf_apart():
    low, high = viz.grad_range([1e-3, 1.0, -1e3, 0.0, math.nan, math.inf])
    assert (low, high) == (-3.0, 3.0)
    fills = [viz.grad_fill(g, low, high) for g in (1e-3, 1.0, -1e3, 0.0, math.nan, -math.inf)]
    assert fills[:3] == [viz.GRAD_RAMP[0], viz.GRAD_RAMP[4], viz.GRAD_RAMP[-1]]
    assert fills[3:] == [viz.GRAD_ZERO, viz.GRAD_NAN, viz.GRAD_INF]
    assert len(set(fills)) == 6


@needs_dot
def test_nan_and_inf_gradients_render_and_show_in_the_legend():
    a, b = Value(0.0, label='a'), Value(1.0, label='b')
    out = a.log() * b
    out.backward()                                # d/da = 1/0 = inf; d out/d log(a) = 1
    a.grad, b.grad = math.nan, math.inf           # and hand-set specials, as a user may
    text = to_dot(out, grad_colors=True)
    assert f'BGCOLOR="{viz.GRAD_NAN}"' in text and f'BGCOLOR="{viz.GRAD_INF}"' in text
    boxes, _ = render(text)
    assert ['a', 'data 0.0000', 'grad nan'] in boxes.values()
    assert any('grad inf' in texts for texts in boxes.values())   # the legend's entry


# ---- whole networks ---------------------------------------------------------------------------
def test_every_mlp_node_belongs_to_its_neuron_and_shared_inputs_to_none():
    model, xs, out, loss = mlp_loss()
    owners = viz.neuron_owners(topo_order([loss]))
    for layer in model.layers:
        for neuron_ in layer.neurons:
            assert {owners.get(p) for p in neuron_.parameters()} == {neuron_.b.label[:-2]}
    assert owners.get(xs[0]) is None and owners.get(loss) is None
    assert owners[out] == 'L2.N0'


def test_clusters_frame_each_layer_and_each_neuron():
    model, xs, out, loss = mlp_loss()
    text = to_dot(loss, cluster=True)
    assert text.count('subgraph cluster') == 3 + 9
    where = enclosing_clusters(text)
    ids = {v: f'v{i}' for i, v in enumerate(topo_order([loss]))}
    assert where[ids[model.layers[1].neurons[2].w[3]]] == 'L1.N2'
    assert where[ids[out]] == 'L2.N0'
    assert where[ids[xs[0]]] is None and where[ids[loss]] is None


def test_a_region_stops_at_other_neurons_outputs_and_parameters():
    h = Value(1.0, label='L0.N0')                         # an earlier neuron's output
    foreign = Value(2.0, label='L0.N1.w0')                # someone else's weight
    w = Value(3.0, label='L1.N0.w0')
    out = (w * h + foreign).relu()
    out.label = 'L1.N0'
    owners = viz.neuron_owners(topo_order([out]))
    assert owners[w] == owners[out] == 'L1.N0'
    assert owners[h] == 'L0.N0' and foreign not in owners


@needs_dot
def test_collapse_draws_each_neuron_as_one_box_wired_like_the_network():
    model, xs, out, loss = mlp_loss()
    boxes, arrows = render(to_dot(loss, collapse=True, legend=False))
    neurons = [texts for texts in boxes.values() if texts[0].startswith('L')]
    assert len(neurons) == 4 + 4 + 1
    assert ['L2.N0', 'linear', f'data {out.data:.4f}', f'grad {out.grad:.4f}'] in neurons
    assert sum(1 for texts in neurons if texts[1] == 'ReLU') == 8
    # x -> 4 neurons each, 4 x 4 between hidden layers, 4 into the output neuron;
    # then out and the constant 1.0 into '-', '-' -> box, box -> '**2', '**2' -> loss box.
    assert arrows == 2 * 4 + 16 + 4 + 2 + 1 + 1 + 1


@needs_dot
def test_clustered_and_collapsed_mlp_renders_with_a_frame_per_layer():
    _, _, _, loss = mlp_loss()
    text = to_dot(loss, cluster=True, collapse=True)
    assert text.count('subgraph cluster') == 3
    render(text)


def frame_extents(text):
    """{frame label: (left, right, top, bottom)} of the frames in dot's SVG of DOT `text`."""
    svg = subprocess.run(['dot', '-Tsvg'], input=text.encode('utf-8'), capture_output=True,
                         check=True).stdout
    extents = {}
    for group in ET.fromstring(svg).iter(SVG + 'g'):
        if group.get('class') == 'cluster':
            outline = next(e for e in group if e.tag in (SVG + 'polygon', SVG + 'path'))
            numbers = [float(n) for n in re.findall(r'-?[\d.]+', outline.get('points')
                                                    or outline.get('d'))]
            xs, ys = numbers[0::2], numbers[1::2]
            extents[group.find(SVG + 'text').text] = (min(xs), max(xs), min(ys), max(ys))
    return extents


@needs_dot
def test_clustered_mlp_reads_left_to_right_one_layer_after_the_other():
    """Layer frames side by side, in order, at overlapping heights: not a staircase."""
    _, _, _, loss = mlp_loss()
    layers = [frame_extents(to_dot(loss, cluster=True))[f'layer {i}'] for i in range(3)]
    for (_, right, top, bottom), (left, _, next_top, next_bottom) in zip(layers, layers[1:]):
        assert right < left                                   # the next layer starts after
        assert next_top < bottom and top < next_bottom        # and level with this one


def test_a_neuron_called_on_several_samples_collapses_to_one_box():
    model = MLP(2, [3, 1], rng=random.Random(1))
    loss = sum((model([x, -x]) - 1.0) ** 2 for x in (1.0, 2.0))
    text = to_dot(loss, collapse=True)
    assert text.count('L0.N0</B>') == 1 and '2 calls' in text


# ---- big graphs -------------------------------------------------------------------------------
def chain(n):
    x = Value(1.0, label='x')
    for _ in range(n - 1):
        x = -x
    return x


def test_a_graph_over_the_limit_is_refused_with_its_size_and_the_ways_out():
    with pytest.raises(ValueError) as error:
        draw_dot(chain(10_000))
    message = str(error.value)
    assert f'more than {viz.MAX_NODES} values' in message
    assert 'collapse=True' in message and 'cluster=True' in message
    assert f'max_nodes={2 * viz.MAX_NODES}' in message


def test_the_limit_can_be_raised_or_lifted():
    assert to_dot(chain(600), max_nodes=600).count(' -> ') == 2 * 599
    assert 'digraph' in to_dot(chain(600), max_nodes=None)
    with pytest.raises(ValueError, match='more than 5 values'):
        to_dot(chain(6), max_nodes=5)


def test_collapsed_networks_are_measured_after_collapsing():
    _, _, _, loss = mlp_loss()
    to_dot(loss, collapse=True, max_nodes=20)            # 9 neurons + 2 inputs + a few more
    with pytest.raises(ValueError, match=r'has \d+ boxes even with its neurons collapsed'):
        to_dot(loss, collapse=True, max_nodes=5)


def test_counting_stops_as_soon_as_the_limit_is_passed():
    assert viz.count_nodes([chain(10_000)], stop_after=500) == 501
    assert viz.count_nodes([chain(10_000)]) == 10_000


@pytest.mark.slow
def test_the_size_guard_handles_a_million_node_chain():
    # No recursion and no full walk: a recursive count would overflow the stack here.
    root = chain(1_000_000)
    assert viz.count_nodes([root], stop_after=viz.MAX_NODES) == viz.MAX_NODES + 1
    with pytest.raises(ValueError, match='more than 500 values'):
        to_dot(root)


# ---- same graph, same text --------------------------------------------------------------------
def test_the_same_graph_gives_byte_identical_text():
    first, second = viz.readme_graph(), viz.readme_graph()
    assert to_dot(first) == to_dot(second) == to_dot(first)
    _, _, _, loss1 = mlp_loss()
    _, _, _, loss2 = mlp_loss()
    assert to_dot(loss1, cluster=True, grad_colors=True) == to_dot(loss2, cluster=True,
                                                                   grad_colors=True)


def test_the_text_does_not_depend_on_hash_seeds():
    # Sets of Values iterate in address order; the text must never follow that order.
    script = ('from micrograd import viz; import sys; '
              'sys.stdout.write(viz.to_dot(viz.mlp_graph(), cluster=True, collapse=True)'
              ' + viz.to_dot(viz.readme_graph()))')
    texts = {subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                            check=True, env={**os.environ, 'PYTHONHASHSEED': seed}).stdout
             for seed in ('1', '2', '3')}
    assert len(texts) == 1


@needs_dot
@settings(max_examples=30)
@given(recipes_with_inputs())
def test_any_recorded_graph_renders_one_box_per_value(recipe_and_inputs):
    recipe, xs = recipe_and_inputs
    _, out = on_values(recipe, xs)
    out.backward()
    order = topo_order([out])
    assert to_dot(out) == to_dot(out)
    values, ops, arrows = picture(out)
    assert len(values) == len(order)
    assert len(ops) == sum(1 for v in order if v._op)
    assert arrows == sum(len(v._args) for v in order) + len(ops)


# ---- hostile text -----------------------------------------------------------------------------
HOSTILE = ['"', "'", '\\', 'a\\', '\\N', '\\G', '\\n', '{|}', '<b>x</b>', '<<TABLE>>', '&amp;',
           '&#0;', '&#1;', '&nbsp;', ']]>', '-->', '"];\nnode [shape=box', '} digraph {', '[]',
           'ø·ñ 漢字 🙂', '\u202eevil']


@needs_dot
@pytest.mark.parametrize('label', HOSTILE)
def test_hostile_labels_show_as_written(label):
    a = Value(1.0, label=label)
    out = a * a
    out.label = label
    values, _, _ = picture(out)
    shown = label.replace('\n', '\\n').replace('\u202e', '\\u202e')   # invisible -> escapes
    assert values['v0'][0] == shown and values['v1'][0] == shown


@needs_dot
@settings(max_examples=60)
@given(st.lists(st.text(max_size=60), min_size=3, max_size=3))
@example(['a', 'b', ']'])   # dot's parser refused these labels until ']' was escaped
@example([']]', ']', 'x]'])
def test_no_text_breaks_the_dot_or_the_svg(texts):
    leaf_label, result_label, op_symbol = texts
    a = Value(1.0, label=leaf_label)
    out = Value(2.0, (a, Value(3.0)), op_symbol)        # a hand-made op, as micrograd allows
    out.label = result_label
    values, ops, arrows = picture(out, grad_colors=True)  # raises on broken DOT or SVG
    assert len(values) == 3 and len(ops) == (1 if op_symbol else 0)
    label_shown = viz._visible(leaf_label)
    if label_shown.strip():
        assert label_shown.strip() in ''.join(values['v0'])


def test_control_characters_and_long_labels_stay_visible_and_short():
    assert viz._visible('a\nb\x00\u200b') == 'a\\nb\\x00\\u200b'
    assert len(viz._visible('x' * 1000)) == viz.MAX_LABEL_CHARS


def test_rankdir_is_checked_before_it_reaches_the_text():
    with pytest.raises(ValueError, match='rankdir'):
        to_dot(Value(1.0), rankdir='LR]; node [shape=box')


# ---- the graphviz package and the dot program -------------------------------------------------
def test_draw_dot_is_micrograds_call_and_holds_the_same_text():
    graphviz = needs.module('graphviz', needs.GRAPHVIZ_PACKAGE)
    g = viz.readme_graph()
    dot = draw_dot(g, format='svg', rankdir='TB')
    assert isinstance(dot, graphviz.Digraph)
    assert dot.format == 'svg'
    assert dot.source == to_dot(g, 'TB')


@needs_dot
def test_draw_dot_renders_through_the_graphviz_package():
    needs.module('graphviz', needs.GRAPHVIZ_PACKAGE)
    o, _ = neuron()
    svg = draw_dot(o).pipe()
    assert b'data 0.7071' in svg
    ET.fromstring(svg)


def test_without_dot_rendering_says_how_to_install_graphviz(monkeypatch, tmp_path):
    graphviz = needs.module('graphviz', needs.GRAPHVIZ_PACKAGE)
    monkeypatch.setenv('PATH', str(tmp_path))              # a PATH with no `dot` on it
    dot = draw_dot(viz.readme_graph())
    assert dot.source.startswith('digraph {')              # the text is still there
    for attempt in (dot.pipe, lambda: dot.render(tmp_path / 'g')):
        with pytest.raises(graphviz.ExecutableNotFound) as error:
            attempt()
        assert 'apt-get install graphviz' in str(error.value)
        assert 'brew install graphviz' in str(error.value)
        assert '.source' in str(error.value)


def test_without_the_graphviz_package_draw_dot_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, 'graphviz', None)     # makes `import graphviz` fail
    with pytest.raises(ImportError, match='pip install graphviz'):
        draw_dot(Value(1.0))
    assert to_dot(Value(1.0)).startswith('digraph {')     # the text needs no package


def test_importing_viz_and_writing_text_needs_only_the_standard_library():
    script = ("import sys; sys.modules['graphviz'] = None; "
              "from micrograd import viz; print(viz.to_dot(viz.neuron_graph())[:7])")
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True)
    assert result.stdout == 'digraph\n', result.stderr


# ---- the command line and the example ------------------------------------------------------------
def test_command_line_prints_dot_text(capsys):
    viz.main(['mlp', '--cluster', '--collapse'])
    assert capsys.readouterr().out == to_dot(viz.mlp_graph(), cluster=True, collapse=True)


@needs_dot
def test_command_line_writes_a_picture(tmp_path):
    needs.module('graphviz', needs.GRAPHVIZ_PACKAGE)
    target = tmp_path / 'out' / 'readme.svg'
    subprocess.run([sys.executable, '-m', 'micrograd.viz', 'readme', '-o', str(target)],
                   check=True, capture_output=True)
    assert b'data 24.7041' in target.read_bytes()


def test_command_line_reports_a_graph_over_the_limit(capsys):
    with pytest.raises(SystemExit) as exit_:
        viz.main(['mlp', '--max-nodes', '10'])
    assert 'more than 10 values' in str(exit_.value.code)


@needs_dot
def test_the_drawing_example_writes_dot_text_and_svg(tmp_path):
    needs.module('graphviz', needs.GRAPHVIZ_PACKAGE)
    subprocess.run([sys.executable, str(ROOT / 'examples' / 'draw_graph.py'), '--out',
                    str(tmp_path)], check=True, capture_output=True,
                   env={**os.environ, 'PYTHONPATH': str(ROOT)})
    for name in ('readme', 'neuron', 'neuron_grad_colors', 'mlp_clustered', 'mlp_collapsed'):
        assert (tmp_path / f'{name}.dot').read_text(encoding='utf-8').startswith('digraph {')
        svg = ET.parse(tmp_path / f'{name}.svg').getroot()  # with dot and graphviz: a picture
        assert svg.tag == f'{SVG}svg' and svg.find(f'.//{SVG}text') is not None, name
