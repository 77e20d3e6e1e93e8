"""Graph pictures: draw a recorded `Value` graph with Graphviz.

This file owns the picture and nothing else. `to_dot(root)` writes DOT text with the standard
library only; `draw_dot(root)` wraps the same text in a `graphviz.Digraph` (the call of micrograd's
trace_graph notebook), which shows inline in Jupyter and renders to SVG, PNG or PDF through
Graphviz's `dot` program. The graph itself belongs to engine.py, the labels to whoever set them.

What a picture shows
  Every Value is a box with its label (when set), data and grad; every op is a small ellipse of
  its own, as in micrograd. Leaves come in three kinds, told apart by fill and border:
    parameter  blue, thick rounded border. In `params=`, or a leaf labelled the way micrograd.nn
               labels weights and biases: 'w3', 'b', 'N1.w0', 'L0.N2.b', 'L1.gamma0'.
    input      green, rounded border. In `inputs=`, any other labelled leaf, or an unlabelled leaf
               used more than once (or not at all, as a lone root).
    constant   dashed border, grey text. In `constants=`, or an unlabelled leaf used exactly once:
               what the engine makes from a plain number, like the 2 in `x * 2`.
  Values computed by ops are plain boxes. The explicit sets win over the label rules.

Options
  grad_colors=True  fill boxes by log10 |grad|, light yellow (smallest in this graph) to dark red
                    (largest); grey is exactly zero, purple nan, blue +-inf.
  cluster=True      frame each layer and neuron of a micrograd.nn network. A neuron is found by its
                    output's label 'L{layer}.N{neuron}' (or 'N{neuron}'); its region is what can be
                    reached backwards from that output without entering another neuron's output or
                    another neuron's parameters. Nodes two neurons share stay outside the frames.
  collapse=True     draw each neuron (all of its region) as one box.
  legend=None       a key to the styles; None shows it when it helps (several leaf kinds, colours
                    or collapsed neurons).
  max_nodes=500     refuse bigger graphs with a ValueError instead of making dot work for minutes.

Same graph, same text: node ids are positions in `topo_order`, children keep their order.

`steps(root)` (micrograd/stepper.py) plays the forward and backward pass over this picture, one
node per step, as a web page: `python -m micrograd.viz steps readme -o page.html`.
"""
import argparse
import functools
import math
import pathlib
import re
import sys
import unicodedata

from micrograd.engine import Value, topo_order

MAX_NODES = 500        # measured with dot 2.43: 600 values lay out in 1 s, 2000 clustered in 4 min
MAX_LABEL_CHARS = 40   # a label is a name; longer text is cut so the box stays a box

NEURON_OUTPUT = re.compile(r'(?:L(\d+)\.)?N\d+')                # 'L0.N2' or 'N2'
PARAMETER = re.compile(r'(?:(L\d+(?:\.N\d+)?|N\d+)\.)?'       # 'w0', 'b', 'N1.w0', 'L0.N2.b',
                       r'(?:w\d*|b|gamma\d*|beta\d*)')            # BatchNorm's 'L1.gamma0'

# Per kind of box: its border, which still tells the kind when grad colours fill it, and fill.
STYLES = {
    'parameter': ('BORDER="3" STYLE="rounded"', '#cfe2ff'),
    'input': ('BORDER="1" STYLE="rounded"', '#d3f2d3'),
    'constant': ('BORDER="1" STYLE="dashed" COLOR="grey50"', 'white'),
    'computed': ('BORDER="1"', 'white'),
    'neuron': ('BORDER="2" STYLE="rounded"', '#ffe4b0'),
}
GRAD_RAMP = ('#ffffcc', '#ffeda0', '#fed976', '#feb24c', '#fd8d3c',   # ColorBrewer YlOrRd:
             '#fc4e2a', '#e31a1c', '#bd0026', '#800026')              # light = small |grad|
GRAD_ZERO, GRAD_NAN, GRAD_INF = '#e0e0e0', '#b36ae2', '#3a7bd5'
DARK_FILLS = set(GRAD_RAMP[6:]) | {GRAD_NAN, GRAD_INF}                # these need white text

MISSING_DOT = ("Graphviz's `dot` program was not found on PATH, so the picture cannot be "
               "rendered (the DOT text is still in `.source`). Install Graphviz: "
               "`apt-get install graphviz` (Debian/Ubuntu), `brew install graphviz` (macOS), "
               "or see https://graphviz.org/download/")
MISSING_PACKAGE = ("draw_dot needs the `graphviz` Python package: `pip install graphviz` "
                   "(or `pip install -e '.[viz]'`). to_dot(root) gives the DOT text without it.")


# ---- how big, and what is what ---------------------------------------------------------------
def count_nodes(roots, stop_after=None):
    """How many Values `roots` reach; stops counting once the count passes `stop_after`."""
    seen, stack = set(), list(roots)
    while stack:                                # a loop, not recursion: a 10**6 chain is fine
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            if stop_after is not None and len(seen) > stop_after:
                break
            stack.extend(node._args)
    return len(seen)


def _label(node):
    return '' if node.label is None else str(node.label)


def leaf_kinds(order, params=(), inputs=(), constants=()):
    """Map every node in `order` to 'parameter', 'input', 'constant' or 'computed' (see top)."""
    uses = {}
    for node in order:
        for child in node._args:
            uses[child] = uses.get(child, 0) + 1
    explicit = {**{v: 'constant' for v in constants}, **{v: 'input' for v in inputs},
                **{v: 'parameter' for v in params}}
    kinds = {}
    for node in order:
        label = _label(node)
        if node in explicit:
            kinds[node] = explicit[node]
        elif node._args:
            kinds[node] = 'computed'
        elif PARAMETER.fullmatch(label):
            kinds[node] = 'parameter'
        elif label or uses.get(node, 0) != 1:
            kinds[node] = 'input'
        else:
            kinds[node] = 'constant'
    return kinds


def neuron_owners(order):
    """Map each node that belongs to exactly one neuron to that neuron's label, e.g. 'L0.N2'."""
    outputs = {node for node in order if NEURON_OUTPUT.fullmatch(_label(node))}
    claims = {}
    for out in order:
        if out in outputs:
            for node in _region(out, outputs):
                claims.setdefault(node, set()).add(_label(out))
    return {node: names.pop() for node, names in claims.items() if len(names) == 1}


def _region(out, outputs):
    """`out` and what it reaches backwards, stopping at other neurons' outputs and parameters."""
    region, stack = {out}, [out]
    while stack:
        for child in stack.pop()._args:
            param = PARAMETER.fullmatch(_label(child))
            foreign = param and param.group(1) not in (None, _label(out))
            if child not in region and child not in outputs and not foreign:
                region.add(child)
                stack.append(child)
    return region


# ---- text that can never break DOT or SVG ----------------------------------------------------
def _visible(text):
    """Cut long text; show control and invisible characters as Python escapes ('\\n')."""
    text = str(text)
    if len(text) > MAX_LABEL_CHARS:
        text = text[:MAX_LABEL_CHARS - 1] + '\u2026'
    return ''.join(ch.encode('unicode_escape').decode('ascii')
                   if unicodedata.category(ch)[0] == 'C' or ch in '\u2028\u2029' else ch
                   for ch in text)


def _html(text):
    """Escape text for an HTML-like label. dot expands '\\N' there too, so backslashes double;
    its parser also refuses some labels with a bare ']' (a label of just ']', or ']]')."""
    text = _visible(text).replace('\\', '\\\\').replace('&', '&amp;')
    return (text.replace('<', '&lt;').replace('>', '&gt;').replace('"', '&quot;')
            .replace(']', '&#93;'))


def _number(x):
    x = float(x)
    if math.isfinite(x) and x != 0 and not 1e-3 <= abs(x) < 1e5:
        return f'{x:.3e}'                     # 1.234e-07, not 0.0000
    return f'{x:.4f}'                         # micrograd's format; also 'nan', 'inf', '-inf'


def grad_range(grads):
    """(lowest, highest) log10 |grad| over the finite, non-zero gradients; (0, 0) if none."""
    logs = [math.log10(abs(g)) for g in grads if math.isfinite(g) and g != 0]
    return (min(logs), max(logs)) if logs else (0.0, 0.0)


def grad_fill(grad, low, high):
    """The fill for one gradient: its log10 |grad| placed on the ramp, special values apart."""
    if math.isnan(grad):
        return GRAD_NAN
    if math.isinf(grad):
        return GRAD_INF
    if grad == 0:
        return GRAD_ZERO
    share = (math.log10(abs(grad)) - low) / (high - low) if high > low else 0.5
    return GRAD_RAMP[min(int(share * len(GRAD_RAMP)), len(GRAD_RAMP) - 1)]


# ---- DOT statements --------------------------------------------------------------------------
def _table(cells, kind, fill=None):
    """An HTML-like table, one row of cells, styled by kind; `fill` replaces the kind's fill."""
    border, kind_fill = STYLES[kind]
    font = 'white' if fill in DARK_FILLS else 'grey30' if kind == 'constant' else None
    if font:
        cells = [f'<FONT COLOR="{font}">{cell}</FONT>' for cell in cells]
    row = ''.join(f'<TD>{cell}</TD>' for cell in cells)
    return (f'<TABLE {border} BGCOLOR="{fill or kind_fill}" CELLBORDER="0" CELLSPACING="0" '
            f'CELLPADDING="4" COLUMNS="*">'
            f'<TR>{row}</TR></TABLE>')


def _cells(node):
    label = _label(node)
    cells = [f'<B>{_html(label)}</B>'] if label else []
    return cells + [f'data {_number(node.data)}', f'grad {_number(node.grad)}']


def _legend(kinds, grad_scale):
    """A key: one sample box per kind shown, and the gradient colours when they are used."""
    blank = None if grad_scale is None else 'white'    # with grad colours, kinds are borders
    rows = [_table([kind], kind, blank) for kind in STYLES if kind in kinds]
    if grad_scale is not None:
        low, high, fills_used = grad_scale
        rows += [_table([f'|grad| {_number(10 ** low)}'], 'computed', GRAD_RAMP[0]),
                 _table([f'|grad| {_number(10 ** high)}'], 'computed', GRAD_RAMP[-1])]
        rows += [_table([text], 'computed', fill) for text, fill in (
            ('grad 0', GRAD_ZERO), ('grad nan', GRAD_NAN), ('grad inf', GRAD_INF))
            if fill in fills_used]
    cells = ''.join(f'<TR><TD>{row}</TD></TR>' for row in rows)
    return f'legend [label=<<TABLE BORDER="0" CELLSPACING="2">{cells}</TABLE>>]'


def _too_big(size, max_nodes):
    return ValueError(
        f'draw_dot: this graph has {size}, over the limit max_nodes={max_nodes}; '
        'dot would take minutes to lay it out. Draw a part of it (pass an intermediate Value as '
        'root), draw each neuron of a micrograd.nn network as one box with collapse=True (and '
        f'frame layers with cluster=True), or raise the limit, e.g. max_nodes={2 * max_nodes}.')


def to_dot(root, rankdir='LR', *, params=(), inputs=(), constants=(), grad_colors=False,
           cluster=False, collapse=False, legend=None, max_nodes=MAX_NODES):
    """DOT text for the graph behind `root` (a Value or a list of them); see the module doc."""
    roots = list(root) if isinstance(root, (list, tuple)) else [root]
    if rankdir not in ('LR', 'TB', 'RL', 'BT'):
        raise ValueError(f"rankdir must be 'LR', 'TB', 'RL' or 'BT', not {rankdir!r}")
    if max_nodes is not None and not collapse and count_nodes(roots, max_nodes) > max_nodes:
        raise _too_big(f'more than {max_nodes} values', max_nodes)
    order = topo_order(roots)
    kinds = leaf_kinds(order, params, inputs, constants)
    owners = neuron_owners(order) if cluster or collapse else {}
    stands_for, regions = _collapse(order, owners) if collapse else ({}, {})
    drawn = [node for node in order if stands_for.get(node, node) is node]
    if max_nodes is not None and len(drawn) > max_nodes:
        raise _too_big(f'{len(drawn)} boxes even with its neurons collapsed', max_nodes)
    for node in regions:
        kinds[node] = 'neuron'

    ids = {node: f'v{i}' for i, node in enumerate(order)}
    low, high = grad_range([node.grad for node in drawn])
    fills = [grad_fill(node.grad, low, high) if grad_colors else None for node in drawn]
    groups, edges = {}, []           # node statements per neuron label (None: no frame); edges
    for node, fill in zip(drawn, fills):
        if node in regions:
            statements, feeds = _neuron(node, ids[node], regions[node], owners, fill)
        else:
            statements, feeds = _value(node, ids[node], kinds[node], fill)
        groups.setdefault(owners.get(node) if cluster else None, []).extend(statements)
        edges += [f'{ids[stands_for.get(child, child)]} -> {head}' for child, head in feeds]

    ordering = ' ordering=out' if collapse else ''   # keeps neurons N0, N1, ... in order
    newrank = ' newrank=true' if cluster and not collapse else ''   # see _layers_left_to_right
    lines = [f'graph [rankdir={rankdir}{ordering}{newrank} fontname="Helvetica" fontsize=12]',
             'node [shape=plain fontname="Helvetica" fontsize=11]',
             'edge [arrowsize=0.6 fontname="Helvetica" labelfontsize=10 labeldistance=1.8 '
             'labelfontcolor=grey35]']
    lines += groups.pop(None, [])
    lines += _clusters(groups, frame_neurons=not collapse)
    if cluster and not collapse:
        lines += _layers_left_to_right(drawn, owners, kinds, ids)
    lines += edges
    kinds_shown = {kinds[node] for node in drawn}
    if legend or (legend is None and (grad_colors or len(kinds_shown - {'computed'}) > 1)):
        lines.append(_legend(kinds_shown, (low, high, set(fills)) if grad_colors else None))
    return 'digraph {\n' + ''.join(f'\t{line}\n' for line in lines) + '}\n'


def _value(node, node_id, kind, fill):
    """A value box and, if an op made it, the op's ellipse; plus (child, edge head) to draw."""
    box = f'{node_id} [label=<{_table(_cells(node), kind, fill)}>]'
    if not node._op:                 # a leaf, or a hand-made node without an op: no ellipse
        return [box], [(child, node_id) for child in node._args]
    op_id = node_id + 'op'           # micrograd's picture: children -> op ellipse -> result box
    op = f'{op_id} [label=<{_html(node._op)}> shape=ellipse height=0.3 margin="0.05,0.02"]'
    heads = [op_id] * len(node._args)
    if len(node._args) > 1 and node._op not in ('+', '*'):   # a - b is not b - a: number them
        op = op[:-1] + ' ordering=in]'                        # and draw operand 1 first
        heads = [f'{op_id} [headlabel={i}]' for i in range(1, len(node._args) + 1)]
    return [box, op, f'{op_id} -> {node_id}'], list(zip(node._args, heads))


def _neuron(output, node_id, region, owners, fill):
    """One box for a whole neuron, fed by whatever its region reads from outside it."""
    name = _label(output)
    outputs = [v for v in region if _label(v) == name]
    activation = 'linear' if output._op == '+' else output._op   # a linear neuron ends in its sum
    cells = [f'<B>{_html(name)}</B>', _html(activation)]
    if len(outputs) == 1:
        cells += [f'data {_number(output.data)}', f'grad {_number(output.grad)}']
    else:                            # one neuron used on several samples or image patches
        cells.append(f'{len(outputs)} calls')
    sources = [child for v in region for child in v._args if owners.get(child) != name]
    return [f'{node_id} [label=<{_table(cells, "neuron", fill)}>]'], \
        [(child, node_id) for child in dict.fromkeys(sources)]


def _collapse(order, owners):
    """Which drawn node stands for each node, and the region (in order) of each neuron box."""
    first, regions = {}, {}
    for node in order:
        name = owners.get(node)
        if name is not None and _label(node) == name:
            first.setdefault(name, node)      # the neuron's first output stands for it all
    for node in order:
        name = owners.get(node)
        if name in first:
            regions.setdefault(first[name], []).append(node)
    stands_for = {node: first[owners[node]] for node in order if owners.get(node) in first}
    return stands_for, regions


def _clusters(groups, frame_neurons):
    """Subgraphs: a frame per layer ('L0'), holding a frame per neuron unless collapsed."""
    layers = {}
    for name, statements in groups.items():
        layers.setdefault(NEURON_OUTPUT.fullmatch(name).group(1), []).append((name, statements))
    lines = []
    for i, (layer, neurons) in enumerate(layers.items()):
        inner = []
        for j, (name, statements) in enumerate(neurons):
            if frame_neurons:
                inner += [f'subgraph cluster_{i}_{j} {{', f'label=<{_html(name)}> style=dashed',
                          *statements, '}']
            else:
                inner += statements
        if layer is None:            # neurons outside any layer: no layer frame
            lines += inner
        else:
            lines += [f'subgraph cluster_{i} {{', f'label=<layer {layer}> style=rounded '
                      'color=grey60', *inner, '}']
    return lines


def _layers_left_to_right(drawn, owners, kinds, ids):
    """Invisible edges from each layer's neuron outputs to the next layer's parameters.

    A parameter is a leaf, so dot may rank it as early as the previous layer's outputs; then
    the two layer frames share a rank, cannot sit side by side and are stacked into a
    staircase (MLP(2, [4, 4, 1]) measured 6900 x 2000 px). With these edges each layer's frame
    starts after the previous one ends (with newrank=true, which ranks across frames), and
    their pull keeps the layers level: measured 7500 x 2200 px, layers side by side."""
    outputs, params = {}, {}
    for node in drawn:
        name = owners.get(node)
        layer = NEURON_OUTPUT.fullmatch(name).group(1) if name else None
        if layer is None:
            continue
        if _label(node) == name:
            outputs.setdefault(int(layer), []).append(ids[node])
        elif kinds[node] == 'parameter':
            params.setdefault(int(layer), []).append(ids[node])
    return [f'{tail} -> {head} [style=invis]'
            for layer in sorted(outputs) for tail in outputs[layer]
            for head in params.get(layer + 1, [])]


# ---- rendering with the graphviz package -----------------------------------------------------
def draw_dot(root, format='svg', rankdir='LR', **options):
    """micrograd's draw_dot: a graphviz.Digraph of `root`'s graph (options: see to_dot)."""
    text = to_dot(root, rankdir, **options)
    try:
        import graphviz              # imported here: the engine and to_dot need no packages
    except ImportError:
        raise ImportError(MISSING_PACKAGE) from None
    digraph = _digraph_class(graphviz)(format=format)
    digraph.body.extend(text.splitlines(keepends=True)[1:-1])   # statements between { and }
    return digraph


@functools.lru_cache(maxsize=None)
def _digraph_class(graphviz):
    """graphviz.Digraph whose render/pipe/Jupyter display say how to install a missing `dot`."""
    class DotNotFound(graphviz.ExecutableNotFound):
        def __init__(self):
            RuntimeError.__init__(self, MISSING_DOT)

    def explain_missing_dot(method):
        @functools.wraps(method)
        def wrapper(*args, **kwargs):
            try:
                return method(*args, **kwargs)
            except DotNotFound:
                raise
            except graphviz.ExecutableNotFound:
                raise DotNotFound() from None
        return wrapper

    class Digraph(graphviz.Digraph):
        render = explain_missing_dot(graphviz.Digraph.render)
        pipe = explain_missing_dot(graphviz.Digraph.pipe)
    return Digraph


# ---- command line: python -m micrograd.viz readme -o out/readme.svg ------------------------
def readme_graph():
    """micrograd's README expression after backward(), its inputs named a and b as there.
    Draw it with **example_options('readme', g): alone, a label 'b' reads as a bias."""
    a, b = Value(-4.0, label='a'), Value(2.0, label='b')
    c = a + b
    d = a * b + b**3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g += 10.0 / f
    g.label = 'g'
    g.backward()
    return g


def neuron_graph():
    """Karpathy's 2-input tanh neuron (lecture 1): o = tanh(x1*w1 + x2*w2 + b), after backward."""
    x1, x2 = Value(2.0, label='x1'), Value(0.0, label='x2')
    w1, w2 = Value(-3.0, label='w1'), Value(1.0, label='w2')
    b = Value(6.8813735870195432, label='b')
    n = x1 * w1 + x2 * w2 + b
    n.label = 'n'
    o = n.tanh()
    o.label = 'o'
    o.backward()
    return o


def mlp_graph():
    """A squared-error loss of micrograd.nn's MLP(2, [4, 4, 1]) on one sample, after backward."""
    import random
    from micrograd.nn import MLP          # here, so the other pictures work without nn
    model = MLP(2, [4, 4, 1], rng=random.Random(0))     # the same picture every time
    loss = (model([Value(2.0, label='x0'), Value(-1.0, label='x1')]) - 1.0) ** 2
    loss.label = 'loss'
    loss.backward()
    return loss


GRAPHS = {'readme': readme_graph, 'neuron': neuron_graph, 'mlp': mlp_graph}


def example_options(name, root):
    """What the picture of example graph `name` must be told: the README's a and b are
    inputs, though a leaf labelled 'b' is taken for a bias (a parameter) by default."""
    if name != 'readme':
        return {}
    return {'inputs': [v for v in topo_order([root]) if not v._args and v.label in ('a', 'b')]}


def steps(root, **options):
    """The backward pass, step by step, as a web page: see micrograd/stepper.py."""
    from micrograd.stepper import Steps    # here: stepper imports this module
    return Steps(root, **options)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ['steps']:             # python -m micrograd.viz steps readme -o page.html
        from micrograd.stepper import main as steps_main
        return steps_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog='python -m micrograd.viz', description='Draw an example graph with Graphviz; '
        "'python -m micrograd.viz steps GRAPH -o page.html' writes the backward-pass stepper.")
    parser.add_argument('graph', choices=sorted(GRAPHS))
    parser.add_argument('-o', '--output', type=pathlib.Path,
                        help='picture file; the suffix picks the format (.svg .png .pdf); '
                             '.dot or no file writes DOT text, which needs no Graphviz')
    parser.add_argument('--rankdir', default='LR', choices=['LR', 'TB', 'RL', 'BT'])
    parser.add_argument('--grad-colors', action='store_true', help='fill boxes by |grad|')
    parser.add_argument('--cluster', action='store_true', help='frame layers and neurons')
    parser.add_argument('--collapse', action='store_true', help='one box per neuron')
    parser.add_argument('--max-nodes', type=int, default=MAX_NODES)
    args = parser.parse_args(argv)
    options = dict(grad_colors=args.grad_colors, cluster=args.cluster,
                   collapse=args.collapse, max_nodes=args.max_nodes)
    as_text = args.output is None or args.output.suffix in ('.dot', '.gv')
    try:
        root = GRAPHS[args.graph]()
        options.update(example_options(args.graph, root))
        if as_text:                       # DOT text needs neither Graphviz nor its package
            content = to_dot(root, args.rankdir, **options).encode('utf-8')
        else:                             # the suffix names the format: .svg, .png, .pdf, ...
            content = draw_dot(root, args.output.suffix[1:], args.rankdir, **options).pipe()
    except (ImportError, RuntimeError, ValueError) as error:
        sys.exit(f'python -m micrograd.viz: {error}')
    if args.output is None:
        sys.stdout.write(content.decode('utf-8'))
        return
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(content)
    print(f'wrote {args.output}')


if __name__ == '__main__':
    main()
