"""micrograd's demo notebook: a binary classifier for two moons, trained through the engine.

100 two-moons points (noise 0.1, drawn without scikit-learn), labels -1/+1, MLP(2, [16, 16, 1]),
max-margin loss + 1e-4 * L2, 100 full-batch SGD steps with learning rate 1.0 - 0.9*k/100.
random.seed(1337) before building the model, as the notebook, so the network starts from the
notebook's weights; the points differ from the notebook's (its points come from numpy).

Prints `step k loss L, accuracy A%` like the notebook. `--steps N` stops early (the schedule
stays that of 100 steps, so the lines printed are the first N of the full run).
`--boundary FILE` saves the decision boundary: FILE.txt as text, anything else as an image
(needs matplotlib).
"""
import argparse
import random

from micrograd.datasets import make_moons
from micrograd.engine import Value
from micrograd.losses import l2_penalty, max_margin_loss
from micrograd.nn import MLP
from micrograd.optim import SGD

STEPS = 100
DATA_SEED = 1337


def loss_and_accuracy(model, X, y):
    inputs = [[Value(x1), Value(x2)] for x1, x2 in X]
    scores = [model(x) for x in inputs]
    total_loss = max_margin_loss(scores, y) + l2_penalty(model.parameters(), alpha=1e-4)
    hits = [(yi > 0) == (score.data > 0) for yi, score in zip(y, scores)]
    return total_loss, sum(hits) / len(hits)


def train(model, X, y, steps):
    optimizer = SGD(model.parameters(), lr=1.0)
    for k in range(steps):
        total_loss, acc = loss_and_accuracy(model, X, y)
        optimizer.zero_grad()
        total_loss.backward()
        optimizer.lr = 1.0 - 0.9 * k / STEPS
        optimizer.step()
        print(f'step {k} loss {total_loss.data}, accuracy {acc * 100}%')


def boundary_grid(model, X, size=40):
    """Class +1/-1 of the model on a size x size grid around the data, rows from the top."""
    xs, ys = [x for x, _ in X], [y for _, y in X]
    x0, x1, y0, y1 = min(xs) - 1, max(xs) + 1, min(ys) - 1, max(ys) + 1
    return [[1 if model([x0 + (x1 - x0) * c / (size - 1), y1 - (y1 - y0) * r / (size - 1)]).data
             > 0 else -1 for c in range(size)] for r in range(size)], (x0, x1, y0, y1)


def save_boundary(model, X, y, path):
    grid, (x0, x1, y0, y1) = boundary_grid(model, X)
    if path.endswith('.txt'):
        with open(path, 'w') as f:
            f.write('\n'.join(''.join('#' if v > 0 else '.' for v in row) for row in grid) + '\n')
        return
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit('saving an image needs matplotlib (pip install matplotlib); '
                         'or give a .txt file for a text picture')
    plt.imshow(grid, extent=(x0, x1, y0, y1), cmap='Spectral', alpha=0.8)
    plt.scatter([p[0] for p in X], [p[1] for p in X], c=y, s=20, cmap='jet')
    plt.savefig(path)


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=STEPS)
    parser.add_argument('--boundary', metavar='FILE')
    args = parser.parse_args()
    X, labels = make_moons(n_samples=100, noise=0.1, rng=random.Random(DATA_SEED))
    y = [2 * label - 1 for label in labels]  # 0/1 -> -1/+1
    random.seed(1337)
    model = MLP(2, [16, 16, 1])
    print(model)
    print('number of parameters', len(model.parameters()))
    train(model, X, y, args.steps)
    if args.boundary:
        save_boundary(model, X, y, args.boundary)
