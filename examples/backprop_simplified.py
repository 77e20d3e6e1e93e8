"""Backpropagation simplified: a sigmoid output, binary cross-entropy, batch gradient descent.

The tutorials' vectorised recipe for a network with one hidden layer (2 inputs, 4 tanh units,
1 sigmoid output) over a batch of m examples:

    forward    Z1 = W1 X + b1,  A1 = tanh(Z1),  Z2 = W2 A1 + b2,  A2 = sigmoid(Z2)
    cost       J = -(1/m) sum(Y log A2 + (1 - Y) log(1 - A2))
    backward   dZ2 = A2 - Y               dW2 = (1/m) dZ2 A1^T    db2 = (1/m) sum(dZ2)
               dZ1 = W2^T dZ2 * (1 - A1^2)  dW1 = (1/m) dZ1 X^T   db1 = (1/m) sum(dZ1)
    update     W = W - lr dW,  b = b - lr db   (once per pass over the whole batch)
    predict    1 if A2 > 0.5 else 0

The engine builds the same network (an MLP) and computes the same gradients with backward().
Stage by stage this prints the tutorial's quantities for the first examples, the gradients by
the recipe next to the engine's (and their largest difference), the cost as training goes,
and the accuracy on the training set and on held-out examples.

Data: 200 points of two interleaving moons (noise 0.2), 150 to train on, 50 held out.
Run: python examples/backprop_simplified.py [--iterations N]
"""
import argparse
import math
import random

from micrograd.datasets import make_moons
from micrograd.losses import binary_cross_entropy
from micrograd.nn import MLP
from micrograd.optim import SGD

N_TRAIN, N_HELD_OUT, HIDDEN = 150, 50, 4
LEARNING_RATE = 1.2
SHOWN = 3  # examples whose quantities are printed


def load():
    X, y = make_moons(n_samples=N_TRAIN + N_HELD_OUT, noise=0.2, rng=random.Random(3))
    return (X[:N_TRAIN], y[:N_TRAIN]), (X[N_TRAIN:], y[N_TRAIN:])


def build():
    return MLP(2, [HIDDEN, 1], activation='tanh', output_activation='sigmoid',
               rng=random.Random(1))


def weights(model):
    """W1 (HIDDEN x 2), b1, W2 (1 x HIDDEN), b2 as plain floats."""
    hidden, output = model.layers
    W1 = [[w.data for w in n.w] for n in hidden.neurons]
    b1 = [n.b.data for n in hidden.neurons]
    W2 = [[w.data for w in n.w] for n in output.neurons]
    b2 = [n.b.data for n in output.neurons]
    return W1, b1, W2, b2


def forward_by_hand(model, X):
    """The recipe's forward pass with plain floats: Z1, A1, Z2, A2, one column per example."""
    W1, b1, W2, b2 = weights(model)
    Z1 = [[b1[j] + sum(w * x for w, x in zip(W1[j], xs)) for j in range(HIDDEN)] for xs in X]
    A1 = [[math.tanh(z) for z in zs] for zs in Z1]
    Z2 = [b2[0] + sum(w * a for w, a in zip(W2[0], a1)) for a1 in A1]
    A2 = [1.0 / (1.0 + math.exp(-z)) for z in Z2]
    return Z1, A1, Z2, A2


def backward_by_hand(model, X, Y, A1, A2):
    """dW1, db1, dW2, db2 by the recipe."""
    W2 = weights(model)[2]
    m = len(X)
    dZ2 = [a - y for a, y in zip(A2, Y)]
    dW2 = [sum(dz * a1[j] for dz, a1 in zip(dZ2, A1)) / m for j in range(HIDDEN)]
    db2 = sum(dZ2) / m
    dZ1 = [[W2[0][j] * dz * (1.0 - a1[j] ** 2) for j in range(HIDDEN)] for dz, a1 in zip(dZ2, A1)]
    dW1 = [[sum(dz1[j] * xs[i] for dz1, xs in zip(dZ1, X)) / m for i in range(2)]
           for j in range(HIDDEN)]
    db1 = [sum(dz1[j] for dz1 in dZ1) / m for j in range(HIDDEN)]
    return dZ2, dZ1, dW1, db1, dW2, db2


def engine_gradients(model):
    hidden, output = model.layers
    return ([[w.grad for w in n.w] for n in hidden.neurons], [n.b.grad for n in hidden.neurons],
            [w.grad for w in output.neurons[0].w], output.neurons[0].b.grad)


def cost(model, X, Y):
    return binary_cross_entropy([model(xs) for xs in X], Y)


def predict(model, X):
    return [1 if model(xs).data > 0.5 else 0 for xs in X]


def accuracy(model, X, Y):
    return 100.0 * sum(p == y for p, y in zip(predict(model, X), Y)) / len(Y)


def numbers(values):
    return '[' + ', '.join(f'{v:.6f}' for v in values) + ']'


def flat(nested):
    return [v for item in nested for v in flat(item)] if isinstance(nested, list) else [nested]


def show_first_pass(model, X, Y):
    """Stages 1 and 2 on the initial weights: forward, cost, backward, by the recipe and by
    the engine."""
    Z1, A1, Z2, A2 = forward_by_hand(model, X)
    print(f'stage 1, forward pass (the first {SHOWN} of m = {len(X)} examples):')
    for i in range(SHOWN):
        print(f'  x = {numbers(X[i])}  y = {Y[i]}')
        print(f'    Z1 = {numbers(Z1[i])}  A1 = tanh(Z1) = {numbers(A1[i])}')
        print(f'    Z2 = {Z2[i]:.6f}  A2 = sigmoid(Z2) = {A2[i]:.6f}')
    loss = cost(model, X, Y)
    by_hand = -sum(y * math.log(a) + (1 - y) * math.log(1 - a) for a, y in zip(A2, Y)) / len(Y)
    print(f'  cost J = {loss.data:.6f} (engine), {by_hand:.6f} (recipe)')

    model.zero_grad()
    loss.backward()
    dZ2, dZ1, dW1, db1, dW2, db2 = backward_by_hand(model, X, Y, A1, A2)
    print('stage 2, backward pass:')
    print(f'  dZ2 = A2 - Y, first examples: {numbers(dZ2[:SHOWN])}')
    print(f'  dZ1 = W2^T dZ2 * (1 - A1^2), first example: {numbers(dZ1[0])}')
    engine = engine_gradients(model)
    worst = 0.0
    for name, recipe, got in zip(('dW1', 'db1', 'dW2', 'db2'), (dW1, db1, dW2, db2), engine):
        worst = max(worst, max(abs(a - b) for a, b in zip(flat(recipe), flat(got))))
        print(f'  {name} recipe {numbers(flat(recipe))}')
        print(f'  {"":3} engine {numbers(flat(got))}')
    print(f'  largest difference, engine vs recipe: {worst:.3g}')


def train(model, X, Y, iterations, every):
    """Stage 3: batch gradient descent, one update per pass over all m examples."""
    optimizer = SGD(model.parameters(), lr=LEARNING_RATE)
    print(f'stage 3, batch gradient descent, learning rate {LEARNING_RATE}:')
    for i in range(iterations):
        loss = cost(model, X, Y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if i % every == 0 or i == iterations - 1:
            print(f'  iteration {i}: cost {loss.data:.6f}')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--iterations', type=int, default=300)
    parser.add_argument('--every', type=int, default=50, help='print the cost this often')
    args = parser.parse_args()
    (X, Y), (X_held_out, Y_held_out) = load()
    model = build()
    show_first_pass(model, X, Y)
    train(model, X, Y, args.iterations, args.every)
    print('stage 4, predict 1 where A2 > 0.5:')
    print(f'  first held-out predictions {predict(model, X_held_out[:10])}, '
          f'labels {Y_held_out[:10]}')
    print(f'  training accuracy: {accuracy(model, X, Y):.1f}% of {len(Y)}')
    print(f'  held-out accuracy: {accuracy(model, X_held_out, Y_held_out):.1f}% of '
          f'{len(Y_held_out)}')


if __name__ == '__main__':
    main()
