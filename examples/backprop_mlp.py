"""The classic backprop-from-scratch network, trained through the engine.

2 inputs, 2 sigmoid hidden neurons, 2 sigmoid outputs (one-hot targets: class 0 -> [1, 0],
class 1 -> [0, 1]) on the 10-row toy set. random.seed(1) and weights drawn with random.random()
in the tutorial's order: each hidden neuron's weights then its bias, then each output neuron's
weights then its bias, which is exactly the order of MLP.parameters(). Online SGD, learning rate
0.5, on 0.5 * the sum of squared errors, 20 epochs.

The tutorial derives each neuron's delta by hand; here backward() does it. Prints the epoch's
sum of squared errors (from the forward pass before each row's update), then every final
weight, per neuron, as [weights..., bias] like the tutorial's network.
"""
import random

from micrograd.datasets import TOY_DATASET
from micrograd.losses import sum_squared_error
from micrograd.nn import MLP
from micrograd.optim import SGD

LEARNING_RATE = 0.5
EPOCHS = 20


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
    network = build_network()
    train(network, TOY_DATASET, LEARNING_RATE, EPOCHS)
    for layer in network.layers:
        for neuron in layer.neurons:
            print(neuron.b.label[:-2], [w.data for w in neuron.w] + [neuron.b.data])
