"""The classic backprop-from-scratch network, trained through the engine.

2 inputs, 2 sigmoid hidden neurons, 2 sigmoid outputs (one-hot targets: class 0 -> [1, 0],
class 1 -> [0, 1]) on the 10-row toy set. random.seed(1) and weights drawn with random.random()
in the tutorial's order: each hidden neuron's weights then its bias, then each output neuron's
weights then its bias, which is exactly the order of MLP.parameters(). Online SGD, learning rate
0.5, on 0.5 * the sum of squared errors, 20 epochs.

First the tutorial's forward-propagation example: a network of 2 inputs, 1 sigmoid hidden neuron
and 2 sigmoid outputs with its weights (the first draws of random.seed(1)), on the row [1, 0];
the tutorial prints [0.6629970129852887, 0.7253160725279748].

The tutorial derives each neuron's delta by hand; here backward() does it. Prints the epoch's
sum of squared errors (from the forward pass before each row's update), then every final
weight, per neuron, as [weights..., bias] like the tutorial's network.
"""
import random

from micrograd.datasets import TOY_DATASET
from micrograd.losses import sum_squared_error
from micrograd.nn import MLP, Layer
from micrograd.optim import SGD

LEARNING_RATE = 0.5
EPOCHS = 20
# the tutorial's forward-propagation example: each neuron's weights, then its bias
HIDDEN_WEIGHTS = [[0.13436424411240122, 0.8474337369372327, 0.763774618976614]]
OUTPUT_WEIGHTS = [[0.2550690257394217, 0.49543508709194095],
                  [0.4494910647887381, 0.651592972722763]]


def forward_propagation_example():
    """The tutorial's 2-input, 1-hidden, 2-output network on the row [1, 0]. Two Layers, not
    an MLP: a one-neuron layer returns a bare Value, so its output is put in a list."""
    hidden = Layer(2, 1, activation='sigmoid')
    output = Layer(1, 2, activation='sigmoid')
    hidden.set_parameter_values([w for neuron in HIDDEN_WEIGHTS for w in neuron])
    output.set_parameter_values([w for neuron in OUTPUT_WEIGHTS for w in neuron])
    outputs = output([hidden([1.0, 0.0])])
    print('forward propagation example:', [o.data for o in outputs])


def build_network():
    model = MLP(2, [2, 2], activation='sigmoid', output_activation='sigmoid')
    random.seed(1)  # after building: MLP's own uniform(-1, 1) draws are replaced right here
    model.set_parameter_values([random.random() for _ in model.parameters()])
    return model


def train(model, rows, lr, epochs):
    optimizer = SGD(model.parameters(), lr=lr)
    for epoch in range(epochs):
        sum_error = 0.0
        for x1, x2, label in rows:
            outputs = model([x1, x2])
            expected = [1.0 if k == label else 0.0 for k in range(2)]
            squared_error = sum_squared_error(outputs, expected)
            sum_error += squared_error.data
            optimizer.zero_grad()
            (0.5 * squared_error).backward()
            optimizer.step()
        print(f'>epoch={epoch}, lrate={lr:.3f}, error={sum_error:.3f}')


if __name__ == '__main__':
    forward_propagation_example()
    network = build_network()
    train(network, TOY_DATASET, LEARNING_RATE, EPOCHS)
    for layer in network.layers:
        for neuron in layer.neurons:
            print(neuron.b.label[:-2], [w.data for w in neuron.w] + [neuron.b.data])
