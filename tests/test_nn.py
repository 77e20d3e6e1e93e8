"""micrograd.nn's Neuron, Layer, MLP and Perceptron: micrograd 0.1.0 compatibility, activations,
labels for the graph renderer, initialisation, and setting, saving and loading parameters."""
import json
import math
import os
import pathlib
import random
import subprocess
import sys

import pytest
from hypothesis import given, strategies as st

import reference_micrograd
from micrograd.engine import Value, topo_order
from micrograd.gradcheck import gradcheck
from micrograd.losses import perceptron_loss
from micrograd.nn import MLP, Layer, Module, Neuron, Perceptron
from micrograd.optim import SGD

ROOT = pathlib.Path(__file__).parent.parent

finite = st.floats(-10, 10, allow_nan=False, allow_infinity=False)


# ---- drop-in compatibility with micrograd 0.1.0 ----------------------------------------------

def test_reprs_are_micrographs():
    assert repr(Neuron(3)) == 'ReLUNeuron(3)'
    assert repr(Neuron(3, nonlin=False)) == 'LinearNeuron(3)'
    assert repr(Layer(2, 2)) == 'Layer of [ReLUNeuron(2), ReLUNeuron(2)]'
    assert repr(MLP(2, [2, 1])) == ('MLP of [Layer of [ReLUNeuron(2), ReLUNeuron(2)], '
                                    'Layer of [LinearNeuron(2)]]')


def test_parameter_order_is_weights_then_bias_per_neuron():
    layer = Layer(2, 2)
    n0, n1 = layer.neurons
    assert layer.parameters() == n0.w + [n0.b] + n1.w + [n1.b]


def test_parameter_count_of_the_demo_network():
    assert len(MLP(2, [16, 16, 1]).parameters()) == 2 * 16 + 16 + 16 * 16 + 16 + 16 + 1 == 337


def test_a_layer_with_one_output_returns_a_bare_value():
    assert isinstance(Layer(3, 1)([1.0, 2.0, 3.0]), Value)
    assert isinstance(MLP(3, [4, 1])([1.0, 2.0, 3.0]), Value)
    assert len(Layer(3, 2)([1.0, 2.0, 3.0])) == 2


def test_zero_grad_resets_every_parameter():
    model = MLP(2, [3, 1])
    model([1.0, -2.0]).backward()
    assert any(p.grad != 0 for p in model.parameters())
    model.zero_grad()
    assert all(p.grad == 0.0 for p in model.parameters())


def test_default_initialisation_draws_like_micrograd():
    """Per neuron: one random.uniform(-1, 1) per weight from the global generator, bias 0."""
    random.seed(1337)
    model = MLP(3, [4, 2])
    random.seed(1337)
    expected = []
    for nin, nout in [(3, 4), (4, 2)]:
        for _ in range(nout):
            expected += [random.uniform(-1, 1) for _ in range(nin)] + [0.0]
    assert model.parameter_values() == expected


def test_neuron_computes_bias_plus_weighted_sum_then_activation():
    neuron = Neuron(2)
    neuron.set_parameter_values([2.0, -3.0, 0.5])
    assert neuron([1.0, 1.0]).data == 0.0              # relu(0.5 + 2 - 3) = relu(-0.5)
    assert neuron([1.0, 0.0]).data == 2.5


def _run_compat_script(pythonpath, tmp_path):
    """Run COMPAT_SCRIPT with `pythonpath`'s micrograd; return what it printed, as JSON."""
    env = dict(os.environ, PYTHONPATH=str(pythonpath))
    out = subprocess.run([sys.executable, '-c', COMPAT_SCRIPT], capture_output=True, text=True,
                         env=env, cwd=tmp_path, check=True)
    return json.loads(out.stdout)


# The same code runs against micrograd 0.1.0 and against this project: micrograd code unchanged.
COMPAT_SCRIPT = '''
import json, random
from micrograd.engine import Value
from micrograd.nn import Neuron, Layer, MLP
import micrograd.nn
random.seed(1337)
models = [(Neuron(3), 3), (Neuron(3, nonlin=False), 3), (Layer(3, 2), 3), (Layer(3, 1), 3),
          (MLP(3, [4, 4, 1]), 3), (MLP(2, [16, 16, 1]), 2)]
report = {'file': micrograd.nn.__file__, 'models': []}
for model, nin in models:
    for x in ([0.5, -1.5, 2.0][:nin], [-0.25, 0.75, 1.0][:nin]):
        xs = [Value(v) for v in x]
        out = model(xs)
        outs = out if isinstance(out, list) else [out]
        model.zero_grad()
        loss = sum(o * o for o in outs)
        loss.backward()
        report['models'].append({
            'repr': repr(model),
            'params': [p.data for p in model.parameters()],
            'outputs': [o.data for o in outs],
            'grads': [p.grad for p in model.parameters()],
            'input_grads': [v.grad for v in xs]})
print(json.dumps(report))
'''


def _close(a, b):
    return a == b or abs(a - b) <= 1e-12 * max(abs(a), abs(b)) + 1e-15


@pytest.fixture(scope='module')
def reference_root():
    """A directory holding micrograd 0.1.0's package, shared with tests/test_compat.py."""
    try:
        return reference_micrograd.package_root()
    except OSError as error:
        reference_micrograd.unavailable(error)


def test_same_weights_outputs_and_gradients_as_micrograd_0_1_0(reference_root, tmp_path):
    theirs = _run_compat_script(reference_root, tmp_path)
    ours = _run_compat_script(ROOT, tmp_path)
    assert theirs['file'].startswith(str(reference_root))  # really two different implementations
    assert ours['file'].startswith(str(ROOT))
    assert len(ours['models']) == len(theirs['models']) == 12
    for mine, ref in zip(ours['models'], theirs['models']):
        assert mine['repr'] == ref['repr']
        assert mine['params'] == ref['params']  # the very same random draws
        for key in ('outputs', 'grads', 'input_grads'):
            assert len(mine[key]) == len(ref[key])
            assert all(_close(a, b) for a, b in zip(mine[key], ref[key])), (key, mine['repr'])


# ---- activations -----------------------------------------------------------------------------

@pytest.mark.parametrize('name, f', [
    ('relu', lambda z: max(z, 0.0)),
    ('tanh', math.tanh),
    ('sigmoid', lambda z: 1.0 / (1.0 + math.exp(-z))),
    ('linear', lambda z: z),
    ('identity', lambda z: z),
])
@given(x=st.lists(finite, min_size=3, max_size=3))
def test_each_activation_applies_its_function_to_the_weighted_sum(name, f, x):
    neuron = Neuron(3, activation=name, rng=random.Random(0))
    z = neuron.b.data + sum(w.data * xi for w, xi in zip(neuron.w, x))
    assert math.isclose(neuron(x).data, f(z), rel_tol=1e-12, abs_tol=1e-12)


def test_activation_names_appear_in_reprs():
    assert repr(Layer(1, 2, activation='tanh')) == 'Layer of [TanhNeuron(1), TanhNeuron(1)]'
    assert repr(Neuron(1, activation='sigmoid')) == 'SigmoidNeuron(1)'


def test_mlp_takes_one_activation_per_layer():
    model = MLP(2, [3, 3, 1], activation=['tanh', 'sigmoid'], output_activation='relu')
    kinds = [layer.neurons[0].activation for layer in model.layers]
    assert kinds == ['tanh', 'sigmoid', 'relu']


def test_mlp_default_is_relu_hidden_and_linear_output():
    model = MLP(2, [3, 3, 1])
    assert [layer.neurons[0].activation for layer in model.layers] == ['relu', 'relu', 'linear']


@pytest.mark.parametrize('bad', ['gelu', 'ReLU', '', None, 3])
def test_an_unknown_activation_is_refused_with_the_valid_names(bad):
    with pytest.raises(ValueError, match="'relu', 'tanh', 'sigmoid', 'linear', 'identity'"):
        Neuron(2, activation=bad if bad is not None else 'none')


def test_mlp_with_the_wrong_number_of_hidden_activations_is_refused():
    with pytest.raises(ValueError, match='needs 2 hidden activations, got 1'):
        MLP(2, [3, 3, 1], activation=['tanh'])


@given(x=st.lists(finite, min_size=2, max_size=2))
def test_mlp_gradients_match_central_differences(x):
    model = MLP(2, [3, 1], activation='tanh', rng=random.Random(3))
    assert gradcheck(lambda a, b: model([a, b]), x)


# ---- labels for the graph renderer -----------------------------------------------------------

def test_mlp_labels_every_parameter_by_layer_and_neuron():
    model = MLP(2, [3, 1])
    labels = [p.label for p in model.parameters()]
    assert labels[:3] == ['L0.N0.w0', 'L0.N0.w1', 'L0.N0.b']
    assert labels[-4:] == ['L1.N0.w0', 'L1.N0.w1', 'L1.N0.w2', 'L1.N0.b']
    assert len(set(labels)) == len(labels)


def test_mlp_labels_each_neurons_output():
    model = MLP(2, [3, 2])
    outs = model([1.0, 2.0])
    assert [o.label for o in outs] == ['L1.N0', 'L1.N1']
    parameters = set(model.parameters())
    output_labels = {node.label for node in topo_order(outs)
                     if node.label and node not in parameters}
    assert output_labels == {'L0.N0', 'L0.N1', 'L0.N2', 'L1.N0', 'L1.N1'}


def test_standalone_layer_and_neuron_labels_have_no_layer_part():
    layer = Layer(2, 2)
    assert [p.label for p in layer.parameters()] == ['N0.w0', 'N0.w1', 'N0.b',
                                                     'N1.w0', 'N1.w1', 'N1.b']
    assert [o.label for o in layer([1.0, 2.0])] == ['N0', 'N1']
    neuron = Neuron(2)
    assert [p.label for p in neuron.parameters()] == ['w0', 'w1', 'b']
    assert neuron([1.0, 2.0]).label == 'out'


def test_the_output_label_sits_on_the_activation_not_the_sum():
    out = Neuron(2, activation='tanh')([1.0, 2.0])
    assert out._op == 'tanh' and out.label == 'out'
    assert out._args[0].label == ''


# ---- initialisation --------------------------------------------------------------------------

def test_an_rng_makes_initialisation_reproducible_and_leaves_random_alone():
    random.seed(5)
    before = random.getstate()
    a = MLP(3, [4, 1], rng=random.Random(42))
    b = MLP(3, [4, 1], rng=random.Random(42))
    assert random.getstate() == before
    assert a.parameter_values() == b.parameter_values()
    assert a.parameter_values() != MLP(3, [4, 1], rng=random.Random(43)).parameter_values()


@given(values=st.lists(finite, min_size=9, max_size=9))
def test_set_parameter_values_sets_every_parameter_in_order(values):
    model = MLP(2, [2, 1])
    model.set_parameter_values(values)
    assert model.parameter_values() == values
    assert [p.data for p in model.parameters()] == values


@pytest.mark.parametrize('values, error', [
    ([0.0] * 8, ValueError), ([0.0] * 10, ValueError), ([0.0] * 8 + ['1'], TypeError),
    ([0.0] * 8 + [None], TypeError), ([0.0] * 8 + [True], TypeError)])
def test_set_parameter_values_refuses_wrong_values_and_changes_nothing(values, error):
    model = MLP(2, [2, 1])
    before = model.parameter_values()
    with pytest.raises(error):
        model.set_parameter_values(values)
    assert model.parameter_values() == before


# ---- save and load ---------------------------------------------------------------------------

@given(values=st.lists(st.floats(allow_nan=False), min_size=9, max_size=9))
def test_save_then_load_restores_every_value_exactly(tmp_path_factory, values):
    path = tmp_path_factory.mktemp('params') / 'model.json'
    model = MLP(2, [2, 1])
    model.set_parameter_values(values)
    model.save(path)
    fresh = MLP(2, [2, 1])
    fresh.load(path)
    assert fresh.parameter_values() == values
    assert os.listdir(path.parent) == ['model.json']  # no temporary file left behind


def test_the_file_says_what_it_holds(tmp_path):
    model = MLP(2, [1])
    model.save(tmp_path / 'p.json')
    state = json.loads((tmp_path / 'p.json').read_text())
    assert state['labels'] == ['L0.N0.w0', 'L0.N0.w1', 'L0.N0.b']
    assert state['values'] == model.parameter_values()
    assert state['model'] == repr(model)


@pytest.mark.parametrize('other', [MLP(2, [3, 1]), MLP(3, [2, 1]), MLP(2, [2, 2])])
def test_loading_into_a_model_of_another_shape_is_refused_and_changes_nothing(tmp_path, other):
    MLP(2, [2, 1]).save(tmp_path / 'p.json')
    before = other.parameter_values()
    with pytest.raises(ValueError, match='p.json'):
        other.load(tmp_path / 'p.json')
    assert other.parameter_values() == before


@pytest.mark.parametrize('text', [
    '', '{', '[]', '{"format": "something else"}', 'null',
    '{"format": "micrograd.nn parameters", "labels": ["L0.N0.w0"], "values": []}',
    '{"format": "micrograd.nn parameters", "labels": ["L0.N0.w0", "L0.N0.b"], '
    '"values": [1.0, "x"]}',
])
def test_a_corrupt_file_is_refused_and_changes_nothing(tmp_path, text):
    path = tmp_path / 'p.json'
    path.write_text(text)
    model = MLP(1, [1])
    before = model.parameter_values()
    with pytest.raises((ValueError, TypeError), match='p.json'):
        model.load(path)
    assert model.parameter_values() == before


def test_a_failed_save_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / 'p.json'
    old = MLP(2, [1], rng=random.Random(1))
    old.save(path)
    old_text = path.read_text()

    def crash(*args):
        raise OSError('disk full')
    monkeypatch.setattr(os, 'replace', crash)
    with pytest.raises(OSError, match='disk full'):
        MLP(2, [1], rng=random.Random(2)).save(path)
    assert path.read_text() == old_text
    assert os.listdir(tmp_path) == ['p.json']


# ---- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize('make, x, error, message', [
    (lambda: Neuron(3), [1.0, 2.0], ValueError, r'ReLUNeuron\(3\) expects 3 inputs, got 2'),
    (lambda: Layer(3, 4), [1.0] * 4, ValueError, r'Layer\(3, 4\) expects 3 inputs, got 4'),
    (lambda: MLP(2, [16, 1]), [1.0], ValueError, r'MLP\(2, \[16, 1\]\) expects 2 inputs, got 1'),
    (lambda: MLP(2, [16, 1]), 5.0, TypeError, 'expects a list of 2 numbers or Values'),
    (lambda: Neuron(2), ['a', 'b'], TypeError, 'real number'),
])
def test_wrong_input_is_refused_with_what_was_expected(make, x, error, message):
    with pytest.raises(error, match=message):
        make()(x)


@pytest.mark.parametrize('make', [
    lambda: Neuron(0), lambda: Layer(2, 0), lambda: MLP(2, []), lambda: MLP(2, [3, -1]),
    lambda: Neuron(2.5), lambda: Neuron(True)])
def test_sizes_must_be_positive_integers(make):
    with pytest.raises(ValueError):
        make()


# ---- the perceptron --------------------------------------------------------------------------

def test_perceptron_starts_at_zero_and_predicts_1_at_activation_exactly_0():
    p = Perceptron(2)
    assert p.parameter_values() == [0.0, 0.0, 0.0]
    assert p([3.0, -4.0]).data == 0.0
    assert p.predict([3.0, -4.0]) == 1.0  # activation >= 0, unlike the engine's step(0) = 0


def test_perceptron_predicts_0_below_zero():
    p = Perceptron(1)
    p.set_parameter_values([1.0, -0.5])
    assert p.predict([0.25]) == 0.0 and p.predict([0.5]) == 1.0


@given(w=st.lists(finite, min_size=3, max_size=3), x=st.lists(finite, min_size=2, max_size=2),
       expected=st.sampled_from([0.0, 1.0]), lr=st.floats(0.001, 1.0))
def test_one_sgd_step_on_the_perceptron_loss_is_the_perceptron_rule(w, x, expected, lr):
    p = Perceptron(2)
    p.set_parameter_values(w)
    activation = p(x)
    predicted = p.threshold(activation)
    perceptron_loss(activation, expected, predicted).backward()
    SGD(p.parameters(), lr=lr).step()
    error = expected - predicted
    rule = [w[0] + lr * error * x[0], w[1] + lr * error * x[1], w[2] + lr * error]
    assert p.parameter_values() == rule  # bit for bit: error is -1, 0 or 1


def test_perceptron_repr():
    assert repr(Perceptron(2)) == 'Perceptron(2)'


def test_a_plain_module_has_no_parameters():
    assert Module().parameters() == []
