"""Each nn example runs as `python examples/NAME.py` and prints what its tutorial prints.

The examples start together (they run in parallel subprocesses), and each test then checks one
example's output against an independent plain-Python computation of the same tutorial.
Some examples run shortened here, because the scalar engine needs minutes for the full runs:
moons.py with --steps 50 (the first 50 lines of its 100-step run), wheat_seeds.py with
--epochs 10 (the full 500 epochs print a mean accuracy of 93.333%), backprop_simplified.py with
60 iterations, and lenet5_digits.py with one step on two images (about 5 s an image).
"""
import ast
import importlib.util
import math
import os
import pathlib
import random
import re
import subprocess
import sys

import pytest

from micrograd.datasets import (TOY_DATASET, cross_validation_split, load_classification_csv,
                                make_moons, minmax_normalise)
from micrograd.engine import topo_order

ROOT = pathlib.Path(__file__).parent.parent
EXAMPLES = ROOT / 'examples'
MOONS_STEPS = 50
WHEAT_EPOCHS = 10
SIMPLIFIED_ITERATIONS = 60


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """{example name: (its output directory, its stdout)}, all examples started at once."""
    out_dir = tmp_path_factory.mktemp('examples')
    arguments = {
        'perceptron': [],
        'backprop_mlp': [],
        'batchnorm_backward': [],
        'vanishing_gradients': ['--plot', str(out_dir / 'gradients.png')],
        'moons': ['--steps', str(MOONS_STEPS), '--boundary', str(out_dir / 'boundary.txt')],
        'wheat_seeds': ['--epochs', str(WHEAT_EPOCHS)],
        'vgg_memory': [],
        'backprop_simplified': ['--iterations', str(SIMPLIFIED_ITERATIONS), '--every', '20'],
        'lenet5_digits': ['--steps', '1', '--batch-size', '2', '--test-images', '2'],
    }
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    processes = {name: subprocess.Popen([sys.executable, str(EXAMPLES / f'{name}.py'), *args],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env=env, cwd=out_dir)
                 for name, args in arguments.items()}
    results = {}
    for name, process in processes.items():
        stdout, stderr = process.communicate(timeout=900)
        results[name] = (process.returncode, stdout, stderr)
    return out_dir, results


def output_of(runs, name):
    _, results = runs
    returncode, stdout, stderr = results[name]
    assert returncode == 0, f'examples/{name}.py failed:\n{stderr}'
    return stdout.splitlines()


# ---- 1. perceptron ---------------------------------------------------------------------------

def tutorial_perceptron(rows, l_rate, n_epoch):
    """The perceptron tutorial's train_weights, with plain floats."""
    weights = [0.0 for _ in range(len(rows[0]))]
    lines = []
    for epoch in range(n_epoch):
        sum_error = 0.0
        for row in rows:
            activation = weights[0]
            for i in range(len(row) - 1):
                activation += weights[i + 1] * row[i]
            prediction = 1.0 if activation >= 0.0 else 0.0
            error = row[-1] - prediction
            sum_error += error ** 2
            weights[0] = weights[0] + l_rate * error
            for i in range(len(row) - 1):
                weights[i + 1] = weights[i + 1] + l_rate * error * row[i]
        lines.append('>epoch=%d, lrate=%.3f, error=%.3f' % (epoch, l_rate, sum_error))
    return lines, weights


def test_perceptron_prints_the_tutorials_errors_and_weights_exactly(runs):
    lines, weights = tutorial_perceptron(TOY_DATASET, 0.1, 5)
    assert output_of(runs, 'perceptron')[10:] == lines + [repr(weights)]
    assert lines[-1] == '>epoch=4, lrate=0.100, error=0.000'  # it has converged


def test_perceptron_first_predicts_with_the_tutorials_hand_chosen_weights(runs):
    bias, w1, w2 = -0.1, 0.20653640140000007, -0.23418117710000003  # the tutorial's weights
    expected = ['Expected=%d, Predicted=%d' % (label, 1 if bias + w1 * x1 + w2 * x2 >= 0 else 0)
                for x1, x2, label in TOY_DATASET]
    assert output_of(runs, 'perceptron')[:10] == expected
    # the tutorial's point: every prediction is right
    assert expected == ['Expected=%d, Predicted=%d' % (label, label) for *_, label in TOY_DATASET]


# ---- 2. backprop MLP -------------------------------------------------------------------------

def tutorial_backprop(rows, l_rate, n_epoch, n_hidden, seed, n_outputs=None):
    """The backprop-from-scratch tutorial's network and training loop, with plain floats:
    each neuron's delta derived by hand. Returns (printed epoch lines, network)."""
    rng = random.Random(seed)
    n_inputs = len(rows[0]) - 1
    n_outputs = n_outputs or len({row[-1] for row in rows})
    network = [[{'weights': [rng.random() for _ in range(n_inputs + 1)]} for _ in range(n_hidden)],
               [{'weights': [rng.random() for _ in range(n_hidden + 1)]} for _ in range(n_outputs)]]
    lines = []
    for epoch in range(n_epoch):
        sum_error = 0.0
        for row in rows:
            outputs = forward(network, row)
            expected = [0.0] * n_outputs
            expected[row[-1]] = 1.0
            sum_error += sum((expected[i] - outputs[i]) ** 2 for i in range(n_outputs))
            backward(network, expected)
            update(network, row, l_rate)
        lines.append('>epoch=%d, lrate=%.3f, error=%.3f' % (epoch, l_rate, sum_error))
    return lines, network


def forward(network, row):
    inputs = row
    for layer in network:
        new_inputs = []
        for neuron in layer:
            activation = neuron['weights'][-1]
            for i in range(len(neuron['weights']) - 1):
                activation += neuron['weights'][i] * inputs[i]
            neuron['output'] = 1.0 / (1.0 + math.exp(-activation))
            new_inputs.append(neuron['output'])
        inputs = new_inputs
    return inputs


def backward(network, expected):
    for i in reversed(range(len(network))):
        layer = network[i]
        if i == len(network) - 1:
            errors = [neuron['output'] - expected[j] for j, neuron in enumerate(layer)]
        else:
            errors = [sum(n['weights'][j] * n['delta'] for n in network[i + 1])
                      for j in range(len(layer))]
        for neuron, error in zip(layer, errors):
            neuron['delta'] = error * neuron['output'] * (1.0 - neuron['output'])


def update(network, row, l_rate):
    for i, layer in enumerate(network):
        inputs = row[:-1] if i == 0 else [neuron['output'] for neuron in network[i - 1]]
        for neuron in layer:
            for j in range(len(inputs)):
                neuron['weights'][j] -= l_rate * neuron['delta'] * inputs[j]
            neuron['weights'][-1] -= l_rate * neuron['delta']


def test_backprop_mlp_prints_the_tutorials_errors_and_weights(runs):
    lines, network = tutorial_backprop(TOY_DATASET, 0.5, 20, n_hidden=2, seed=1)
    printed = output_of(runs, 'backprop_mlp')[1:]
    assert printed[:20] == lines
    expected = [(f'L{i}.N{j}', neuron['weights']) for i, layer in enumerate(network)
                for j, neuron in enumerate(layer)]
    assert len(printed) == 20 + len(expected)
    for line, (label, weights) in zip(printed[20:], expected):
        name, values = line.split(' ', 1)
        assert name == label
        got = ast.literal_eval(values)
        assert len(got) == len(weights)
        # The engine sums the hidden deltas in another order: allow a few ulps of drift.
        assert all(math.isclose(a, b, rel_tol=1e-12) for a, b in zip(got, weights)), line


def test_backprop_mlp_first_prints_the_tutorials_forward_propagation_example(runs):
    # The tutorial's network, printed by its forward_propagate, and its published output
    network = [[{'weights': [0.13436424411240122, 0.8474337369372327, 0.763774618976614]}],
               [{'weights': [0.2550690257394217, 0.49543508709194095]},
                {'weights': [0.4494910647887381, 0.651592972722763]}]]
    published = [0.6629970129852887, 0.7253160725279748]
    assert forward(network, [1, 0, None]) == published
    assert output_of(runs, 'backprop_mlp')[0] == f'forward propagation example: {published}'


# ---- 3. batch norm backward ------------------------------------------------------------------

def test_batchnorm_backward_walks_nine_steps_and_agrees_with_the_closed_form(runs):
    printed = output_of(runs, 'batchnorm_backward')
    steps = [int(m.group(1)) for line in printed for m in [re.match(r'step (\d): ', line)] if m]
    assert steps == [9, 8, 7, 6, 5, 4, 3, 2, 1]
    differences = [float(line.rsplit(': ', 1)[1]) for line in printed
                   if line.startswith('largest difference')]
    assert len(differences) == 3
    assert all(d < 1e-12 for d in differences)
    # the closed form, feature by feature, for the example's 4 x 3 batch
    x = [[1.0, -2.0, 0.5], [2.5, 0.0, 0.25], [-0.5, 3.0, -1.0], [4.0, 1.0, 2.0]]
    dout = [[0.3, -0.4, 1.0], [-1.2, 0.8, 0.2], [0.7, 0.1, -0.6], [0.1, -0.9, 0.5]]
    gamma, eps = [1.5, 0.5, -2.0], 1e-5
    dx = [[0.0] * 3 for _ in range(4)]
    for j in range(3):
        col, dcol = [row[j] for row in x], [row[j] for row in dout]
        mean = sum(col) / 4
        ivar = 1 / math.sqrt(sum((v - mean) ** 2 for v in col) / 4 + eps)
        xhat = [(v - mean) * ivar for v in col]
        for i in range(4):
            dx[i][j] = gamma[j] * ivar / 4 * (4 * dcol[i] - sum(dcol)
                                              - xhat[i] * sum(a * b for a, b in zip(dcol, xhat)))
    [line] = [line for line in printed if line.startswith('BatchNorm1d dx = ')]
    printed_dx = ast.literal_eval(line.split(' = ')[1])
    assert len(printed_dx) == 4 and all(len(row) == 3 for row in printed_dx)
    assert all(abs(a - b) < 1e-6 for got, want in zip(printed_dx, dx) for a, b in zip(got, want))


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_batchnorm_backward_labels_every_steps_nodes_over_an_n_by_d_batch():
    graph = load_example('batchnorm_backward').engine_graph()
    n, d = len(graph['x']), len(graph['x'][0])
    assert (n, d) == (4, 3)
    for name in ('x', 'xmu', 'sq', 'xhat', 'gammax', 'out'):   # one node per row and feature
        assert [[v.label for v in row] for row in graph[name]] == \
            [[f'{name}[{i}][{j}]' for j in range(d)] for i in range(n)]
    for name in ('gamma', 'beta', 'mu', 'var', 'sqrtvar', 'ivar'):   # one node per feature
        assert [v.label for v in graph[name]] == [f'{name}[{j}]' for j in range(d)]
    # and they are the nodes the output was computed from
    labels = {v.label for v in topo_order([v for row in graph['out'] for v in row])}
    assert {'mu[2]', 'xmu[3][2]', 'sq[0][1]', 'var[1]', 'sqrtvar[0]', 'ivar[2]'} <= labels


# ---- 4. vanishing and exploding gradients ----------------------------------------------------

def test_vanishing_gradients_table_shows_each_columns_claim(runs):
    printed = output_of(runs, 'vanishing_gradients')
    header = printed.index('layer           sigmoid              tanh              relu  '
                           'residual sigmoid')
    rows = [[float(v) for v in line.split()[1:]] for line in printed[header + 1:header + 12]]
    columns = {name: [r[i] for r in rows]
               for i, name in enumerate(['sigmoid', 'tanh', 'relu', 'residual'])}
    [factor_line] = [line for line in printed if line.startswith('shrink per layer')]
    printed_factors = [float(v.rstrip('x')) for v in factor_line.split(':')[1].split()]
    hidden = 10  # layers 0..9 are hidden, layer 10 is the output layer
    factors = {name: (col[hidden - 1] / col[0]) ** (1 / (hidden - 1))
               for name, col in columns.items()}
    for got, (name, factor) in zip(printed_factors, factors.items()):
        assert math.isclose(got, factor, rel_tol=0.01, abs_tol=0.006), name
    # sigmoid: shrinks at every layer, about 4x per layer (sigmoid' <= 1/4), not tenfold
    sigmoid = columns['sigmoid']
    assert all(a < b for a, b in zip(sigmoid, sigmoid[1:]))
    assert 3.0 < factors['sigmoid'] < 5.0
    assert sigmoid[0] < 1e-4 * sigmoid[-1]
    # tanh, relu and the residual sigmoid blocks do not vanish: no hidden layer's gradient is
    # below a tenth of the last hidden layer's (tanh's grows towards the input, ~25x measured)
    for name in ('tanh', 'relu', 'residual'):
        col = columns[name]
        assert all(col[hidden - 1] / 10 < g < col[hidden - 1] * 30 for g in col[:hidden]), name
        assert factors[name] < 1.5, name
    assert factors['tanh'] < 1.0
    assert columns['residual'][0] > 1000 * sigmoid[0]


def test_exploding_gradients_overflow_without_clipping_and_train_with_it(runs):
    printed = output_of(runs, 'vanishing_gradients')
    start = next(i for i, line in enumerate(printed) if line.startswith('deep linear network'))
    rows = [re.findall(r'(\S+) \((\S+)\)', line) for line in printed[start + 2:start + 14]]
    losses = {name: [float(row[i][0]) for row in rows]
              for i, name in enumerate(['plain', 'norm', 'value'])}
    assert math.isnan(losses['plain'][-1])
    for name in ('norm', 'value'):
        assert all(math.isfinite(v) for v in losses[name])
        assert losses[name][-1] < losses[name][0] / 100


def test_vanishing_gradients_saves_a_plot_when_matplotlib_is_installed(runs):
    printed = output_of(runs, 'vanishing_gradients')
    out_dir, _ = runs
    if importlib.util.find_spec('matplotlib'):
        assert printed[-1] == f'plot saved to {out_dir / "gradients.png"}'
        assert (out_dir / 'gradients.png').stat().st_size > 0
    else:
        assert printed[-1].startswith('matplotlib is not installed')


# ---- 5. moons --------------------------------------------------------------------------------

def plain_moons_loss(parameters, X, y):
    """The notebook's loss for MLP(2, [16, 16, 1]), with plain floats from its parameters."""
    params = iter(parameters)

    def layer(x, nout, relu):
        out = []
        for _ in range(nout):
            w = [next(params) for _ in x]
            act = next(params) + sum(wi * xi for wi, xi in zip(w, x))
            out.append(max(act, 0.0) if relu else act)
        return out
    scores = []
    for x in X:
        params = iter(parameters)
        scores.append(layer(layer(layer(x, 16, True), 16, True), 1, False)[0])
    data_loss = sum(max(0.0, 1 - yi * s) for yi, s in zip(y, scores)) / len(y)
    return data_loss + 1e-4 * sum(p * p for p in parameters)


def test_moons_prints_the_notebooks_lines_and_reaches_100_percent(runs):
    printed = output_of(runs, 'moons')
    assert printed[0].startswith('MLP of [Layer of [ReLUNeuron(2), ')
    assert printed[1] == 'number of parameters 337'
    steps = [re.fullmatch(r'step (\d+) loss (\S+), accuracy (\S+)%', line) for line in printed[2:]]
    assert all(steps) and [int(m.group(1)) for m in steps] == list(range(MOONS_STEPS))
    losses = [float(m.group(2)) for m in steps]
    accuracies = [float(m.group(3)) for m in steps]
    assert 100.0 in accuracies
    assert min(accuracies[-5:]) >= 99.0
    assert losses[-1] < losses[0] / 10

    # Step 0's loss, recomputed with floats from the same data and the same initial weights
    X, labels = make_moons(n_samples=100, noise=0.1, rng=random.Random(1337))
    random.seed(1337)
    initial = []
    for nin, nout in [(2, 16), (16, 16), (16, 1)]:
        for _ in range(nout):
            initial += [random.uniform(-1, 1) for _ in range(nin)] + [0.0]
    expected = plain_moons_loss(initial, X, [2 * label - 1 for label in labels])
    assert math.isclose(losses[0], expected, rel_tol=1e-12)


def test_moons_saves_the_decision_boundary(runs):
    output_of(runs, 'moons')
    out_dir, _ = runs
    picture = (out_dir / 'boundary.txt').read_text().splitlines()
    assert len(picture) == 40 and all(len(row) == 40 for row in picture)
    assert set(''.join(picture)) == {'#', '.'}


# ---- 6. wheat seeds --------------------------------------------------------------------------

def tutorial_wheat_scores(epochs):
    """The tutorial's evaluate_algorithm(back_propagation) on the same data, plain floats."""
    random.seed(1)
    rows = minmax_normalise(load_classification_csv(EXAMPLES / 'data' / 'wheat-seeds.csv'))
    folds = cross_validation_split(rows, 5)
    scores = []
    for i, test_rows in enumerate(folds):
        train_rows = [row for j, fold in enumerate(folds) if j != i for row in fold]
        network = [[{'weights': [random.random() for _ in range(8)]} for _ in range(5)],
                   [{'weights': [random.random() for _ in range(6)]} for _ in range(3)]]
        for _ in range(epochs):
            for row in train_rows:
                forward(network, row)
                backward(network, [1.0 if k == row[-1] else 0.0 for k in range(3)])
                update(network, row, 0.3)
        correct = 0
        for row in test_rows:
            outputs = forward(network, row)
            correct += outputs.index(max(outputs)) == row[-1]
        scores.append(correct / len(test_rows) * 100.0)
    return scores


def test_wheat_seeds_prints_the_tutorials_fold_scores(runs):
    printed = output_of(runs, 'wheat_seeds')
    assert len(printed) == 2 and printed[0].startswith('Scores: ')
    scores = ast.literal_eval(printed[0][len('Scores: '):])
    assert scores == tutorial_wheat_scores(WHEAT_EPOCHS)
    mean = sum(scores) / len(scores)
    assert printed[1] == f'Mean Accuracy: {mean:.3f}%'
    # measured: 84.762% after 10 epochs; 93.333% after the full 500; chance is 33%
    assert 75.0 <= mean <= 100.0


# ---- 7. VGG-16's memory ----------------------------------------------------------------------

def vgg16_layers():
    """(kind, channels in, channels out, image size) of each VGG-16 layer at 224x224."""
    layers, channels, size = [], 3, 224
    for convs, out in zip((2, 2, 3, 3, 3), (64, 128, 256, 512, 512)):
        for _ in range(convs):
            layers.append(('conv', channels, out, size))
            channels = out
        layers.append(('pool', channels, channels, size))
        size //= 2
    return layers


def test_vgg_memory_adds_up_the_tutorials_rows_and_counts_the_engines_nodes(runs):
    printed = output_of(runs, 'vgg_memory')
    layers = vgg16_layers()
    # CS231n's rows: the input, each convolution's output, each pool's output, the three FCs
    listed = 224 * 224 * 3 + sum(out * size * size for kind, _, out, size in layers
                                 if kind == 'conv') \
        + sum(c * (size // 2) ** 2 for kind, c, _, size in layers if kind == 'pool') \
        + 4096 + 4096 + 1000
    assert listed == 15_237_608
    assert f'  the listed rows add up to {listed:,} numbers = {listed * 4 / 1e6:.1f} MB ' \
        f'forward, x2 = {2 * listed * 4 / 1e6:.1f} MB with backward' in printed
    assert 'parameters: 138,357,544 (553.4 MB float32, 1,106.9 MB float64)' in printed
    # The engine's nodes, from how it records each op: a convolution output is nin products,
    # nin sums and a relu, plus one constant per tap on the zero padding; a 2x2 max pool
    # output 3 maximums of 7 nodes; torchvision's 7x7 average pool on a 7x7 image one sum of
    # one pixel (0 nodes) and a division by the constant 1 (2 nodes); dropout in training mode
    # a constant and a product per number; a fully connected unit 2 * nin + 1 (none: the
    # last layer's activation).
    nodes = 0
    for kind, cin, out, size in layers:
        if kind == 'conv':
            padding_taps = 9 * size * size - (3 * size - 2) ** 2
            nodes += out * (size * size * (2 * 9 * cin + 1) + cin * padding_taps)
        else:
            nodes += cin * (size // 2) ** 2 * 3 * 7
    nodes += 2 * 512 * 7 * 7
    nodes += 4096 * (2 * 25088 + 1) + 2 * 4096 + 4096 * (2 * 4096 + 1) + 2 * 4096 + 1000 * 2 * 4096
    [line] = [line for line in printed if line.startswith('VGG-16, one 224x224 image: ')]
    assert line.startswith(f'VGG-16, one 224x224 image: {nodes:,} Value nodes')
    [measured] = [line for line in printed if line.startswith('this engine, measured')]
    after_forward, backward_peak = re.findall(r'(\d+) bytes per node after forward, (\d+) at',
                                              measured)[0]
    assert 100 < int(after_forward) < int(backward_peak) < 400


# ---- 8. backpropagation simplified -----------------------------------------------------------

def recipe_training(iterations, lr=1.2):
    """The example's network and batch gradient descent with plain floats and the recipe's
    gradients. Returns the cost before each update and the final predict function."""
    X, Y = make_moons(n_samples=200, noise=0.2, rng=random.Random(3))
    X, Y, X_held, Y_held = X[:150], Y[:150], X[150:], Y[150:]
    rng = random.Random(1)   # MLP(2, [4, 1]) draws: each neuron's weights, bias 0
    W1 = [[rng.uniform(-1, 1) for _ in range(2)] for _ in range(4)]
    b1 = [0.0] * 4
    W2 = [rng.uniform(-1, 1) for _ in range(4)]
    b2 = 0.0

    def forward_pass(X):
        A1 = [[math.tanh(b1[j] + W1[j][0] * x[0] + W1[j][1] * x[1]) for j in range(4)] for x in X]
        A2 = [1 / (1 + math.exp(-(b2 + sum(w * a for w, a in zip(W2, a1))))) for a1 in A1]
        return A1, A2
    costs, m = [], len(X)
    for _ in range(iterations):
        A1, A2 = forward_pass(X)
        costs.append(-sum(y * math.log(a) + (1 - y) * math.log(1 - a) for a, y in zip(A2, Y)) / m)
        dZ2 = [a - y for a, y in zip(A2, Y)]
        dZ1 = [[W2[j] * dz * (1 - a1[j] ** 2) for j in range(4)] for dz, a1 in zip(dZ2, A1)]
        dW2 = [sum(dz * a1[j] for dz, a1 in zip(dZ2, A1)) / m for j in range(4)]
        dW1 = [[sum(d[j] * x[i] for d, x in zip(dZ1, X)) / m for i in range(2)] for j in range(4)]
        db1 = [sum(d[j] for d in dZ1) / m for j in range(4)]
        b2 -= lr * sum(dZ2) / m
        W2 = [w - lr * g for w, g in zip(W2, dW2)]
        W1 = [[w - lr * g for w, g in zip(row, grow)] for row, grow in zip(W1, dW1)]
        b1 = [b - lr * g for b, g in zip(b1, db1)]

    def accuracy(X, Y):
        return 100 * sum((a > 0.5) == y for a, y in zip(forward_pass(X)[1], Y)) / len(Y)
    return costs, accuracy(X, Y), accuracy(X_held, Y_held)


def test_backprop_simplified_prints_each_stage_and_trains_as_the_recipe(runs):
    printed = output_of(runs, 'backprop_simplified')
    stages = [line.split(',')[0] for line in printed if line.startswith('stage ')]
    assert stages == ['stage 1', 'stage 2', 'stage 3', 'stage 4']
    [difference] = [line for line in printed if 'largest difference, engine vs recipe' in line]
    assert float(difference.rsplit(': ', 1)[1]) < 1e-12
    costs, train_accuracy, held_out_accuracy = recipe_training(SIMPLIFIED_ITERATIONS)
    logged = {int(m.group(1)): float(m.group(2)) for line in printed
              for m in [re.fullmatch(r'  iteration (\d+): cost (\S+)', line)] if m}
    assert sorted(logged) == [0, 20, 40, SIMPLIFIED_ITERATIONS - 1]
    for i, cost in logged.items():
        assert abs(cost - costs[i]) < 1e-6   # printed to 6 decimals
    assert costs[-1] < 0.6 * costs[0]
    assert f'  training accuracy: {train_accuracy:.1f}% of 150' in printed
    assert f'  held-out accuracy: {held_out_accuracy:.1f}% of 50' in printed
    assert held_out_accuracy >= 80.0  # measured: 90% after 60 iterations and after 300


# ---- 9. LeNet-5 on the digits ----------------------------------------------------------------

def plain_lenet5_logits(parameters, image):
    """LeNet-5's forward pass with plain floats, from its parameters in model order (per
    neuron: weights, then bias): conv 6@5x5 relu, 2x2 mean, conv 16@5x5 relu, 2x2 mean,
    120 relu, 84 relu, 10."""
    params = iter(parameters)

    def neuron(inputs, relu):
        z = sum(next(params) * x for x in inputs)
        z = next(params) + z
        return max(z, 0.0) if relu else z

    def conv(channels, n_out):
        size = len(channels[0]) - 4
        kernels = []
        for _ in range(n_out):
            weights = [next(params) for _ in range(len(channels) * 25)]
            bias = next(params)
            kernels.append((weights, bias))
        return [[[max(0.0, b + sum(w * x for w, x in zip(weights, [
            ch[r + dr][c + dc] for ch in channels for dr in range(5) for dc in range(5)])))
            for c in range(size)] for r in range(size)] for weights, b in kernels]

    def pool(channels):
        return [[[(ch[2 * r][2 * c] + ch[2 * r][2 * c + 1] + ch[2 * r + 1][2 * c]
                   + ch[2 * r + 1][2 * c + 1]) / 4 for c in range(len(ch) // 2)]
                 for r in range(len(ch) // 2)] for ch in channels]
    x = pool(conv(pool(conv(image, 6)), 16))
    x = [v for ch in x for row in ch for v in row]
    x = [neuron(x, True) for _ in range(120)]
    x = [neuron(x, True) for _ in range(84)]
    return [neuron(x, False) for _ in range(10)]


def test_lenet5_digits_runs_an_engine_step_on_the_upscaled_digits(runs):
    sklearn = pytest.importorskip('sklearn.datasets', reason='the digits ship with scikit-learn')
    from micrograd.architectures import lenet5
    printed = output_of(runs, 'lenet5_digits')
    assert printed[0] == ('LeNet-5: 61,706 parameters; 1437 training and 360 held-out digits, '
                          'upscaled to 32x32')
    # the first training batch, upscaled here independently: each pixel a 4x4 block, / 16
    digits = sklearn.load_digits()
    rows = list(zip(digits.data.tolist(), digits.target.tolist()))
    random.Random(0).shuffle(rows)
    images = [[[[pixels[8 * (r // 4) + c // 4] / 16 for c in range(32)] for r in range(32)]]
              for pixels, _ in rows[:2]]
    parameters = lenet5(num_classes=10, rng=random.Random(0)).parameter_values()
    losses = []
    for image, (_, label) in zip(images, rows[:2]):
        logits = plain_lenet5_logits(parameters, image)
        top = max(logits)
        losses.append(math.log(sum(math.exp(z - top) for z in logits)) - (logits[int(label)] - top))
    [step] = [line for line in printed if line.startswith('step 0: ')]
    assert step.startswith(f'step 0: loss {sum(losses) / 2:.4f} on 2 images')
    accuracies = [line for line in printed if line.startswith('held-out accuracy')]
    assert len(accuracies) == 2 and all(line.endswith('% on 2 images') for line in accuracies)
