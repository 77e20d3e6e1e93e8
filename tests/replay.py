"""Replay a Recipe (tests/strategies.py): on floats with the op table, or on Values.

`on_values` builds the graph through the engine's public API (operators and methods), so the
sugar in engine.py is tested along with the table. It takes the Value class as a parameter, so
the same recipe can be replayed on micrograd 0.1.0's Value for the differential test.
"""
from micrograd.engine import Value
from micrograd.ops import OPS

# How a user writes each op. An op missing here ('sign', used only inside abs's rule) has no
# method: calling its table row on a Value records it, which is public API too.
SUGAR = {
    'add': lambda a, b: a + b,
    'sub': lambda a, b: a - b,
    'mul': lambda a, b: a * b,
    'div': lambda a, b: a / b,
    'neg': lambda a: -a,
    'pow': lambda a, p: a ** p,
    'powv': lambda a, b: a ** b,
    'exp': lambda a: a.exp(),
    'log': lambda a: a.log(),
    'tanh': lambda a: a.tanh(),
    'sigmoid': lambda a: a.sigmoid(),
    'relu': lambda a: a.relu(),
    'abs': lambda a: abs(a),
    'step': lambda a: a.step(),
}


def _operands(args, slots):
    return [slots[a] if isinstance(a, int) else a[1] for a in args]


def slot_values(recipe, xs):
    """The float value of every slot (inputs first), computed with each row's `fwd`."""
    slots = [float(x) for x in xs]
    for name, args, p in recipe.steps:
        fwd = OPS[name].fwd
        operands = _operands(args, slots)
        slots.append(fwd(*operands) if p is None else fwd(*operands, p))
    return slots


def on_floats(recipe, xs):
    """The recipe's output on floats."""
    return slot_values(recipe, xs)[-1]


def gradients_on_floats(recipe, xs):
    """(output, [d output / d input]) by reverse mode over the recipe's slots, on floats: a
    second implementation of backward(), written from its documented rule, not from engine.py.

    Every gradient starts at 0.0 and the output's at 1.0; slots are visited in reverse of a
    depth-first order over the arguments (children before parents, first argument first), and
    each adds `partial * its gradient` to its arguments' gradients in argument order.
    """
    values = slot_values(recipe, xs)
    n_inputs = len(xs)
    grads = [0.0] * len(values)
    grads[-1] = 1.0
    for slot in reversed(_depth_first(recipe, len(values) - 1)):
        if slot < n_inputs:
            continue
        name, args, p = recipe.steps[slot - n_inputs]
        rule, operands = OPS[name].grad, _operands(args, values)
        partials = rule(*operands, values[slot]) if p is None else \
            rule(*operands, values[slot], p)
        for arg, partial in zip(args, partials):
            if isinstance(arg, int) and partial is not None:
                grads[arg] += partial * grads[slot]
    return values[-1], grads[:n_inputs]


def _depth_first(recipe, root):
    """Slots reachable from `root`, children before parents, first argument first."""
    def children(slot):
        if slot < recipe.n_inputs:
            return iter(())
        return (a for a in recipe.steps[slot - recipe.n_inputs][1] if isinstance(a, int))
    order, seen, stack = [], {root}, [(root, children(root))]
    while stack:
        slot, pending = stack[-1]
        for child in pending:
            if child not in seen:
                seen.add(child)
                stack.append((child, children(child)))
                break
        else:
            stack.pop()
            order.append(slot)
    return order


def build(recipe, leaves):
    """The recipe's output node, built on the given leaf nodes with operators and methods."""
    slots = list(leaves)
    for name, args, p in recipe.steps:
        operands = _operands(args, slots)
        if p is not None:
            operands.append(p)
        apply = SUGAR.get(name) or OPS[name]
        slots.append(apply(*operands))
    return slots[-1]


def on_values(recipe, xs, value=Value):
    """(input Values, output Value): the recipe built with `value`'s operators and methods."""
    inputs = [value(x) for x in xs]
    return inputs, build(recipe, inputs)


def gradients(recipe, xs, value=Value):
    """(output data, [d output / d input]) by building the recipe on `value` and backward()."""
    inputs, out = on_values(recipe, xs, value)
    out.backward()
    return out.data, [x.grad for x in inputs]


def readme_expression(value):
    """micrograd's README example, verbatim, on any Value class: returns a, b and g."""
    a = value(-4.0)
    b = value(2.0)
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
    return a, b, g
