"""Small data sets for the examples, with no dependencies: the classic 10-row toy set, the two
moons of micrograd's demo, and CSV loading, normalisation and k-fold splitting as in the classic
backprop-from-scratch tutorial.
"""
import csv
import math
import random

# (x1, x2, class): the toy data set of the perceptron and backprop-from-scratch tutorials.
TOY_DATASET = (
    (2.7810836, 2.550537003, 0),
    (1.465489372, 2.362125076, 0),
    (3.396561688, 4.400293529, 0),
    (1.38807019, 1.850220317, 0),
    (3.06407232, 3.005305973, 0),
    (7.627531214, 2.759262235, 1),
    (5.332441248, 2.088626775, 1),
    (6.922596716, 1.77106367, 1),
    (8.675418651, -0.242068655, 1),
    (7.673756466, 3.508563011, 1),
)


def make_moons(n_samples=100, noise=0.1, rng=None):
    """Two interleaving half circles, as scikit-learn's make_moons draws them.

    Returns (X, y): X a list of [x1, x2], y a list of 0 (upper moon) and 1 (lower moon), in a
    shuffled order. Gaussian noise of standard deviation `noise` is added to every coordinate.
    The numbers differ from scikit-learn's, whose random source is numpy.
    """
    if not isinstance(n_samples, int) or n_samples < 2:
        raise ValueError(f'n_samples must be an int >= 2, got {n_samples!r}')
    rng = rng or random
    n_upper = n_samples // 2
    n_lower = n_samples - n_upper
    points = []
    for i in range(n_upper):
        angle = math.pi * i / (n_upper - 1) if n_upper > 1 else 0.0
        points.append(([math.cos(angle), math.sin(angle)], 0))
    for i in range(n_lower):
        angle = math.pi * i / (n_lower - 1) if n_lower > 1 else 0.0
        points.append(([1.0 - math.cos(angle), 0.5 - math.sin(angle)], 1))
    rng.shuffle(points)
    X = [[x1 + rng.gauss(0.0, noise), x2 + rng.gauss(0.0, noise)] for (x1, x2), _ in points]
    y = [label for _, label in points]
    return X, y


def load_classification_csv(path):
    """Rows of float features followed by an int class index.

    The class column may hold any labels; they are numbered 0, 1, ... in sorted order (the
    tutorial numbered them in set() order, which changes from run to run).
    """
    with open(path, newline='') as f:
        rows = [row for row in csv.reader(f) if row]
    if not rows:
        raise ValueError(f'{path}: no rows')
    labels = sorted({row[-1].strip() for row in rows})
    index = {label: i for i, label in enumerate(labels)}
    try:
        return [[float(v) for v in row[:-1]] + [index[row[-1].strip()]] for row in rows]
    except ValueError as e:
        raise ValueError(f'{path}: a feature is not a number ({e})') from None


def minmax_normalise(rows):
    """Rescale every feature column (all but the last, the class) to [0, 1], in place."""
    for j in range(len(rows[0]) - 1):
        column = [row[j] for row in rows]
        low, high = min(column), max(column)
        for row in rows:
            row[j] = (row[j] - low) / (high - low)
    return rows


def cross_validation_split(rows, n_folds, rng=None):
    """n_folds folds of len(rows) // n_folds rows each, drawn without replacement exactly as
    the tutorial does (randrange, then pop), so the same seed gives the same folds."""
    rng = rng or random
    remaining = list(rows)
    fold_size = len(rows) // n_folds
    if fold_size < 1:
        raise ValueError(f'cannot split {len(rows)} rows into {n_folds} folds')
    folds = []
    for _ in range(n_folds):
        folds.append([remaining.pop(rng.randrange(len(remaining))) for _ in range(fold_size)])
    return folds
