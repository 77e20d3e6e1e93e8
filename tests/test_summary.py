"""summary(model, input_shape): shapes, parameter counts and Value-node counts computed from
shapes alone, each checked against what running the model actually builds."""
import inspect
import random

import pytest

from micrograd import nn
from micrograd.engine import Value, topo_order
from micrograd.nn import (MLP, Activation, AdaptiveAvgPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d,
                          Concat, Conv2d, Dropout, Flatten, GlobalAvgPool2d, Layer, MaxPool2d,
                          Module, Neuron, Perceptron, Residual, Sequential, nested_shape)
from micrograd.summary import summary


def random_input(shape, rng):
    """Nested lists of Values of `shape`."""
    if not shape:
        return Value(rng.uniform(-1, 1))
    return [random_input(shape[1:], rng) for _ in range(shape[0])]


def leaves(nested):
    if isinstance(nested, (list, tuple)):
        return [v for item in nested for v in leaves(item)]
    return [nested]


def recorded_nodes(model, x, call=None):
    """The nodes model(x) (or call(x)) records: the graph minus its inputs and parameters."""
    out = (call or model)(x)
    known = {id(v) for v in leaves(x)} | {id(p) for p in model.parameters()}
    return out, sum(1 for v in topo_order(leaves(out)) if id(v) not in known)


def modules():
    rng = random.Random(0)
    return [
        (Conv2d(2, 3, 3, rng=rng), (2, 5, 6)),
        (Conv2d(2, 3, 3, stride=2, padding=1, activation='relu', rng=rng), (2, 5, 6)),
        (Conv2d(1, 2, 2, stride=3, padding=1, activation='tanh', rng=rng), (1, 7, 4)),
        (Layer(4, 3, activation='sigmoid', rng=rng), (4,)),
        (Layer(4, 1, rng=rng), (4,)),
        (Neuron(3, rng=rng), (3,)),
        (Perceptron(3, rng=rng), (3,)),
        (MLP(3, [4, 2], rng=rng), (3,)),
        (MaxPool2d(2), (2, 5, 4)),
        (MaxPool2d(3, stride=2, padding=1), (1, 6, 5)),
        (MaxPool2d(3, stride=2, ceil_mode=True), (1, 6, 6)),
        (AvgPool2d(2, stride=1), (2, 3, 4)),
        (AvgPool2d(3, stride=2, padding=1, ceil_mode=True), (1, 6, 5)),
        (Flatten(), (2, 3, 2)),
        (Residual(Conv2d(2, 2, 3, padding=1, rng=rng)), (2, 4, 4)),
        (Residual(Layer(3, 3, rng=rng)), (3,)),
        (Sequential(Conv2d(1, 2, 3, padding=1, activation='relu', rng=rng), MaxPool2d(2),
                    Flatten(), Layer(8, 3, rng=rng), Layer(3, 1, rng=rng)), (1, 4, 4)),
        (Conv2d(2, 3, 3, padding=1, bias=False, rng=rng), (2, 4, 3)),
        (BatchNorm2d(2), (2, 3, 2)),
        (BatchNorm2d(2).eval(), (2, 3, 2)),
        (Activation('tanh'), (2, 3, 2)),
        (Activation('linear'), (4,)),
        (Dropout(0.5, rng=rng), (2, 3, 3)),
        (Dropout(0.5, rng=rng).eval(), (2, 3, 3)),
        (AdaptiveAvgPool2d(3), (2, 5, 4)),
        (AdaptiveAvgPool2d(3), (1, 2, 2)),    # smaller than the output: pixels repeat
        (GlobalAvgPool2d(), (3, 3, 2)),
        (Concat(Conv2d(2, 1, 1, rng=rng),
                Sequential(MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                           Conv2d(2, 2, 1, rng=rng))), (2, 3, 4)),
        (Residual(Sequential(Conv2d(2, 4, 3, stride=2, padding=1, bias=False, rng=rng),
                             BatchNorm2d(4)),
                  shortcut=Sequential(Conv2d(2, 4, 1, stride=2, bias=False, rng=rng),
                                      BatchNorm2d(4))), (2, 5, 5)),
    ]


@pytest.mark.parametrize('model, input_shape', modules(), ids=lambda m: repr(m)[:40])
def test_summary_shapes_counts_and_nodes_are_what_running_the_model_builds(model, input_shape):
    table = summary(model, input_shape)
    out, nodes = recorded_nodes(model, random_input(input_shape, random.Random(1)))
    assert table.output_shape == nested_shape(out)
    assert table.parameters == model.parameter_count() == len(model.parameters())
    assert table.value_nodes == nodes


def test_every_module_of_nn_is_in_the_list_above():
    """A new module must declare its shape and node count, and be added to modules()."""
    public = {cls for _, cls in inspect.getmembers(nn, inspect.isclass)
              if issubclass(cls, Module) and cls is not Module and not cls.__name__.startswith('_')}
    listed = {type(model) for model, _ in modules()}
    listed |= {type(m) for model, _ in modules() for m in walk(model)}
    assert public - listed == {BatchNorm1d}  # a batch layer: tested on its own below


def walk(model):
    stack = [model]
    while stack:
        module = stack.pop()
        yield module
        stack.extend(module.children())


def test_summary_counts_batchnorm1d_per_row_in_eval_mode():
    layer = BatchNorm1d(3).eval()  # the layer takes a batch: here one row
    out, nodes = recorded_nodes(layer, [random_input((3,), random.Random(1))])
    assert summary(layer, (3,)).value_nodes == nodes


def test_summary_rows_open_containers_and_total_the_activations():
    rng = random.Random(0)
    model = Sequential(Conv2d(1, 2, 3, padding=1, rng=rng), MaxPool2d(2), Flatten(),
                       Residual(Layer(8, 8, rng=rng)), Layer(8, 3, rng=rng))
    table = summary(model, (1, 4, 4))
    assert [(r.name, r.output_shape, r.parameters, r.activations) for r in table.rows] == [
        ('input', (1, 4, 4), 0, 16),
        ('L0', (2, 4, 4), 2 * (9 + 1), 32),
        ('L1', (2, 2, 2), 0, 8),
        ('L2', (8,), 0, 0),                # a flatten stores nothing new
        ('L3', (8,), 8 * 9, 8),            # the residual block's layer ...
        ('L3.add', (8,), 0, 8),            # ... and the sum x + block(x)
        ('L4', (3,), 3 * 9, 3)]
    assert table.activations == 16 + 32 + 8 + 8 + 8 + 3
    assert table.forward_bytes(4) == 4 * table.activations
    assert table.training_bytes(8) == 2 * 8 * table.activations
    text = str(table)
    assert text.splitlines()[0].split()[:4] == ['layer', 'type', 'output', 'shape']
    assert 'parameters: 119 ' in text and 'activations per image: 75 ' in text


def test_summary_of_a_user_module_that_declares_its_shape():
    class Block(Module):
        def __init__(self):
            self.conv = Conv2d(1, 2, 3, padding=1, rng=random.Random(0))

        def __call__(self, image):
            return self.conv(image)

        def children(self):
            return [self.conv]

        def output_shape(self, input_shape):
            return self.conv.output_shape(input_shape)

    table = summary(Sequential(Block(), Flatten()), (1, 3, 3))
    assert [(r.name, r.output_shape, r.parameters) for r in table.rows[1:]] == [
        ('L0', (2, 3, 3), 20), ('L1', (18,), 0)]
    assert table.value_nodes is None  # the engine's count of a user module is unknown
    assert '?' in str(table)


def test_summary_refuses_a_module_without_a_declared_shape():
    class Opaque(Module):
        def __call__(self, x):
            return x

    with pytest.raises(TypeError, match='does not declare its output shape: give Opaque an '
                                        r'output_shape\(input_shape\) method'):
        summary(Sequential(Layer(2, 2), Opaque()), (2,))


@pytest.mark.parametrize('model, shape, message', [
    (Conv2d(3, 4, 3), (1, 8, 8), 'expects 3 input channels, got 1'),
    (Conv2d(1, 4, 3), (1, 2, 8), 'smaller than the 3x3 kernel'),
    (Conv2d(1, 4, 3), (8, 8), r'expects input shape \(1, height, width\)'),
    (Layer(3, 2), (4,), 'expects 3 inputs'),
    (MaxPool2d(2), (1, 1, 4), 'smaller than the window'),
    (Residual(Conv2d(1, 1, 3)), (1, 4, 4), r'maps shape \(1, 4, 4\) to \(1, 2, 2\)'),
])
def test_summary_refuses_shapes_the_model_would_refuse(model, shape, message):
    with pytest.raises(ValueError, match=message):
        summary(model, shape)


def test_module_summary_prints_the_table(capsys):
    table = Layer(2, 3).summary((2,))
    assert capsys.readouterr().out == str(table) + '\n'
