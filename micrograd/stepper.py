"""Watch backprop happen: a graph's forward and backward pass, one node per step, in a web page.

`Steps(root)` (also `micrograd.viz.steps(root)`) replays the engine on `root`'s graph: forward in
`topo_order`, then backward in reverse, calling each node's own `_backward()` exactly as
`Value.backward()` does, and records after every step the numbers it changed. `.html()` is one
self-contained page (the SVG from Graphviz's `dot` embedded, no network) with keys left/right,
a slider and a step counter; `.save(path)` writes it; Jupyter shows the object inline.

Each backward step shows the chain rule with the node's numbers, e.g.
    a.grad += b.data * c.grad = 2.0 * -0.5 = -1.0
The formula `b.data` is not written per op here: it is what the op table's `grad` rule
(micrograd/ops.py) returns when it is called on symbols instead of floats, the same trick
codegen uses to emit the backward pass as code. The numbers are `Value._partials()`, the floats
the engine multiplies. Every number in the side table is Python's repr of the float, so it
reads back bit for bit.

Run: python -m micrograd.viz steps readme|neuron|mlp [--cluster|--collapse] -o page.html
"""
import argparse
import html
import json
import pathlib
import re
import sys

from micrograd import ops, viz
from micrograd.engine import topo_order
from micrograd.stepper_page import PAGE


# ---- formulas: an op-table rule called on symbols gives its text -----------------------------
class Formula(ops.Node):
    """A piece of formula text; arithmetic and table ops on it build longer text."""
    __slots__ = ('text', 'compound')

    def __init__(self, text, compound=False):
        self.text, self.compound = text, compound

    def _record(self, op, args, p=None):      # called by ops.Op.__call__, as for a Value
        return Formula(*apply_text(op.symbol, op.arity, [_operand(a) for a in args], p))

    def __add__(self, other): return ops.ADD(self, other)
    def __radd__(self, other): return ops.ADD(other, self)
    def __sub__(self, other): return ops.SUB(self, other)
    def __rsub__(self, other): return ops.SUB(other, self)
    def __mul__(self, other): return ops.MUL(self, other)
    def __rmul__(self, other): return ops.MUL(other, self)
    def __neg__(self): return ops.NEG(self)


def _operand(x):
    """Text of an operand (a Formula or a float), bracketed if it is an infix expression."""
    if isinstance(x, Formula):
        return f'({x.text})' if x.compound else x.text
    return _result(x)


def apply_text(symbol, arity, operands, p=None):
    """(text, compound) of an op applied to operand texts: 'a * b', 'tanh(a)', 'a**2'.

    Generic over the table: an op whose symbol is a word is a call, a two-operand symbol is
    infix, and a symbol with an exponent in it ('**{p}') follows its operand."""
    if '{p}' in symbol:
        return operands[0] + symbol.format(p=f'{p:g}'), True
    if arity == 2 and not symbol.isalnum():
        return f'{operands[0]} {symbol} {operands[1]}', True
    return f'{symbol}({", ".join(operands)})', False


def _result(number):
    """A float as Python prints it: the shortest text that reads back to the same bits."""
    return repr(float(number))


# ---- the steps -------------------------------------------------------------------------------
def node_names(order):
    """A name per node for the formulas: its label, else '#i' (i: its position in topo_order).
    A label that several nodes share gets '#i' added, so every name points at one box."""
    labels = [viz._label(node) for node in order]
    counts = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    names = []
    for i, label in enumerate(labels):
        if not label:
            names.append(f'#{i}')
        elif counts[label] > 1:
            names.append(f'{label}#{i}')
        else:
            names.append(label)
    return names


def forward_text(node, name, names_of_args):
    """'c = a + b = -4.0 + 2.0 = -2.0', or what a leaf is."""
    if not node._args:
        return f'{name} = {_result(node.data)}   (a leaf: given, not computed)'
    if node._rule is None:              # a hand-made node or a micrograd-style custom op
        symbol, arity, p = node._op or 'op', len(node._args), None
    else:
        symbol, arity, p = node._rule.symbol, node._rule.arity, node._param
    formula, _ = apply_text(symbol, arity, names_of_args, p)
    numbers, _ = apply_text(symbol, arity, [_result(a.data) for a in node._args], p)
    return f'{name} = {formula} = {numbers} = {_result(node.data)}'


def chain_rule_texts(node, name, names_of_args):
    """One line per operand: child.grad += (d node / d child) * node.grad, with the numbers.

    Call before the node's `_backward()`: the increments use the gradient it is about to pass."""
    if not node._args:
        return [f'{name} is a leaf: nothing to pass back; its gradient is final, '
                f'{name}.grad = {_result(node.grad)}']
    if node._custom_backward is not None or node._rule is None:
        return [f'{name}: a hand-written _backward() passes the gradient on (no op-table row, '
                'so no formula); the table shows what it added']
    args = [Formula(f'{child}.data') for child in names_of_args]
    out = Formula(f'{name}.data')
    rule = node._rule
    formulas = rule.grad(*args, out) if node._param is None else \
        rule.grad(*args, out, node._param)
    lines = []
    for child, formula, partial in zip(names_of_args, formulas, node._partials()):
        if partial is None:
            lines.append(f'{child}.grad: no gradient flows back through {rule.name}')
            continue
        lines.append(f'{child}.grad += {_operand(formula)} * {name}.grad = {_result(partial)} * '
                     f'{_result(node.grad)} = {_result(partial * node.grad)}')
    return lines


def record_steps(root, order, names):
    """Replay the engine on the graph: a list of steps, each {phase, node, lines, changes}.

    `changes` are the numbers the step sets: [node index, 'data' or 'grad', repr, as drawn].
    Gradients are zeroed for the replay and restored afterwards: the graph is left as found."""
    index = {node: i for i, node in enumerate(order)}
    saved = [node.grad for node in order]

    def change(node, field):
        number = getattr(node, field)
        return [index[node], field, _result(number), viz._number(number)]

    steps = [{'phase': 'start', 'node': None, 'lines': [
        'The recorded graph. Forward: each value from its operands, in topo_order. '
        'Backward: the chain rule, node by node, in reverse.'], 'changes': []}]
    for node in order:
        arg_names = [names[index[a]] for a in node._args]
        steps.append({'phase': 'forward', 'node': index[node], 'changes': [change(node, 'data')],
                      'lines': [forward_text(node, names[index[node]], arg_names)]})
    try:
        for node in order:
            node.grad = 0.0
        root.grad = 1.0                                  # as Value.backward(): seed, then walk
        for node in reversed(order):
            name, arg_names = names[index[node]], [names[index[a]] for a in node._args]
            lines = [f'{name}.grad = 1.0   (the seed: d {name} / d {name})'] \
                if node is root else []
            lines += chain_rule_texts(node, name, arg_names)
            node._backward()                             # the engine's own step, not a copy
            children = list(dict.fromkeys(node._args))
            if children:                                 # += : what each gradient adds up to
                lines.append('now ' + ', '.join(f'{names[index[child]]}.grad = '
                                                f'{_result(child.grad)}' for child in children))
            changed = ([root] if node is root else []) + children
            steps.append({'phase': 'backward', 'node': index[node], 'lines': lines,
                          'changes': [change(child, 'grad') for child in changed]})
        final = [node.grad for node in order]
    finally:
        for node, grad in zip(order, saved):
            node.grad = grad
    return steps, final


def drawn_ids(order, collapse):
    """The SVG id of the box that shows each node: its own, or its collapsed neuron's."""
    stands_for = viz._collapse(order, viz.neuron_owners(order))[0] if collapse else {}
    index = {node: i for i, node in enumerate(order)}
    return [f'v{index[stands_for.get(node, node)]}' for node in order]


class Steps:
    """The forward and backward pass of `root`'s graph, step by step (see the module doc)."""

    def __init__(self, root, *, cluster=False, collapse=False, max_nodes=viz.MAX_NODES,
                 params=(), inputs=(), constants=(), title=None):
        if isinstance(root, (list, tuple)):
            raise TypeError('steps() walks the backward pass of one output Value, not a list')
        # draw_dot's size guard first, before any work that grows with the graph
        viz.to_dot(root, cluster=cluster, collapse=collapse, max_nodes=max_nodes)
        self.root, self.order = root, topo_order([root])
        self.names = node_names(self.order)
        self.kinds = viz.leaf_kinds(self.order, params, inputs, constants)
        self.svg = _svg(self._picture(cluster=cluster, collapse=collapse, max_nodes=max_nodes))
        self.steps, self.final_grads = record_steps(root, self.order, self.names)
        self.title = title or f'Backprop, step by step: {self.names[-1]}'
        self.box_ids = drawn_ids(self.order, collapse)

    def _picture(self, **options):
        """draw_dot's picture, with every unlabelled value showing its name ('#7') too, so
        the formulas can be found in it. The names are set for the drawing only, and each
        leaf keeps the kind (parameter, input, constant) its own label gives it."""
        by_kind = {kind: [node for node in self.order if self.kinds[node] == kind]
                   for kind in ('parameter', 'input', 'constant')}
        unlabelled = [(node, name, node.label) for node, name in zip(self.order, self.names)
                      if not viz._label(node)]
        try:
            for node, name, _ in unlabelled:
                node.label = name
            return viz.draw_dot(self.root, legend=False, params=by_kind['parameter'],
                                inputs=by_kind['input'], constants=by_kind['constant'],
                                **options)
        finally:
            for node, _, label in unlabelled:
                node.label = label

    def data(self):
        """What the page's script reads: nodes, steps and, per node, its box and edges."""
        index = {node: i for i, node in enumerate(self.order)}
        nodes = []
        for i, node in enumerate(self.order):
            box = self.box_ids[i]
            head = f'v{i}op' if box == f'v{i}' and node._op else box
            edges = [f'{self.box_ids[index[c]]}->{head}' for c in node._args
                     if self.box_ids[index[c]] != box]
            if head != box:
                edges.append(f'{head}->{box}')
            nodes.append({'name': self.names[i], 'box': box, 'op': head if head != box else None,
                          'args': [index[c] for c in node._args], 'edges': edges})
        return {'title': self.title, 'nodes': nodes, 'steps': self.steps}

    def html(self):
        """The whole page as one string: no file or network is needed to show it."""
        parts = {'title': html.escape(self.title), 'svg': self.svg,
                 'data': json.dumps(self.data()).replace('<', '\\u003c')}  # can't end the script
        # one pass, so a label that reads '{{data}}' inside the picture stays text
        return re.sub(r'\{\{(title|svg|data)\}\}', lambda m: parts[m.group(1)], PAGE)

    def save(self, path):
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.html(), encoding='utf-8')
        return str(path)

    def _repr_html_(self):
        """Jupyter: the page in an iframe, so its keys and styles stay inside its own frame."""
        return (f'<iframe srcdoc="{html.escape(self.html(), quote=True)}" '
                'style="width:100%;height:640px;border:1px solid #ccc"></iframe>')

    def __len__(self):
        return len(self.steps)


def _svg(digraph):
    """The picture as inline SVG: dot's output without its XML prolog and DOCTYPE."""
    text = digraph.pipe(format='svg').decode('utf-8')
    return text[text.index('<svg'):]


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m micrograd.viz steps',
        description='Write a page that walks the forward and backward pass one node at a time.')
    parser.add_argument('graph', choices=sorted(viz.GRAPHS))
    parser.add_argument('-o', '--output', type=pathlib.Path, required=True,
                        help='the HTML file to write')
    parser.add_argument('--cluster', action='store_true', help='frame layers and neurons')
    parser.add_argument('--collapse', action='store_true', help='one box per neuron')
    parser.add_argument('--max-nodes', type=int, default=viz.MAX_NODES)
    args = parser.parse_args(argv)
    try:
        root = viz.GRAPHS[args.graph]()
        stepper = Steps(root, cluster=args.cluster, collapse=args.collapse,
                        max_nodes=args.max_nodes, **viz.example_options(args.graph, root))
    except (ImportError, RuntimeError, ValueError) as error:
        sys.exit(f'python -m micrograd.viz steps: {error}')
    print(f'wrote {stepper.save(args.output)} ({len(stepper)} steps)')
