"""The backprop tutorial's real-data experiment: wheat seeds, 5-fold cross-validation.

examples/data/wheat-seeds.csv (210 kernels, 7 features, 3 varieties; see data/README.md), every
feature min-max normalised to [0, 1]. A network with one hidden layer of 5 sigmoid neurons and
3 sigmoid outputs (one-hot targets), trained by online SGD with learning rate 0.3 on
0.5 * the sum of squared errors for 500 epochs, once per fold. As in the tutorial, random.seed(1)
fixes the folds and the initial weights (random.random(), in parameter order).

Prints each fold's accuracy and their mean. `--epochs N` trains for fewer epochs (the tests do:
500 epochs x 5 folds on the scalar engine take minutes).
"""
import argparse
import pathlib
import random

from micrograd.datasets import cross_validation_split, load_classification_csv, minmax_normalise
from micrograd.losses import accuracy, sum_squared_error
from micrograd.nn import MLP
from micrograd.optim import SGD

DATA = pathlib.Path(__file__).parent / 'data' / 'wheat-seeds.csv'
N_FOLDS, N_HIDDEN, LEARNING_RATE, EPOCHS = 5, 5, 0.3, 500


def build_network(n_inputs, n_hidden, n_outputs):
    # Built with a private generator, then every weight drawn from the global one in
    # parameter order, exactly as the tutorial's initialize_network draws them.
    model = MLP(n_inputs, [n_hidden, n_outputs], activation='sigmoid',
                output_activation='sigmoid', rng=random.Random(0))
    model.set_parameter_values([random.random() for _ in model.parameters()])
    return model


def train(model, rows, n_outputs, lr, epochs):
    optimizer = SGD(model.parameters(), lr=lr)
    for _ in range(epochs):
        for *x, label in rows:
            expected = [1.0 if k == label else 0.0 for k in range(n_outputs)]
            optimizer.zero_grad()
            (0.5 * sum_squared_error(model(x), expected)).backward()
            optimizer.step()


def predict(model, x):
    scores = [out.data for out in model(x)]
    return scores.index(max(scores))


def evaluate(rows, epochs):
    """Accuracy in percent on each fold, training on the other folds."""
    folds = cross_validation_split(rows, N_FOLDS)
    scores = []
    for i, test_rows in enumerate(folds):
        train_rows = [row for j, fold in enumerate(folds) if j != i for row in fold]
        n_outputs = len({row[-1] for row in train_rows})
        model = build_network(len(rows[0]) - 1, N_HIDDEN, n_outputs)
        train(model, train_rows, n_outputs, LEARNING_RATE, epochs)
        predicted = [predict(model, row[:-1]) for row in test_rows]
        scores.append(accuracy(predicted, [row[-1] for row in test_rows]) * 100.0)
    return scores


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--epochs', type=int, default=EPOCHS)
    args = parser.parse_args()
    random.seed(1)
    rows = minmax_normalise(load_classification_csv(DATA))
    scores = evaluate(rows, args.epochs)
    print(f'Scores: {scores}')
    print(f'Mean Accuracy: {sum(scores) / len(scores):.3f}%')
