"""A small LeNet-style CNN on scikit-learn's 8x8 handwritten digits, trained in generated C.

Conv2d(1 -> 8, 3x3, relu) -> MaxPool2d(2) -> Flatten -> 72 -> 32 (relu) -> 10 logits, softmax
cross-entropy against a one-hot target. The network is a micrograd.nn model; codegen traces one
sample's loss once, and every epoch of mini-batch SGD then runs in C. On the engine alone one
epoch would take minutes; here it takes a fraction of a second.

Needs scikit-learn for the data (`pip install scikit-learn`; load_digits ships with it).
Run: python examples/digits_cnn.py [--epochs N]
"""
import argparse
import functools
import math
import random
import time

from codegen.train import Trainer
from micrograd.engine import Value
from micrograd.nn import Conv2d, Flatten, Layer, MaxPool2d, Sequential
from micrograd.ops import MAX

N_CLASSES = 10


def lenet(rng):
    return Sequential(Conv2d(1, 8, 3, activation='relu', rng=rng), MaxPool2d(2), Flatten(),
                      Layer(72, 32, activation='relu', rng=rng),
                      Layer(32, N_CLASSES, activation='linear', rng=rng))


def scale_initial_weights(net):
    """He initialisation: micrograd draws weights from uniform(-1, 1) whatever the fan-in; with
    36 inputs that saturates the next layer. Rescale to variance 2 / fan-in."""
    for module in net.modules:
        for neuron in getattr(module, 'kernels', []) + getattr(module, 'neurons', []):
            for w in neuron.w:
                w.data *= math.sqrt(6.0 / len(neuron.w))


class Digits:
    """The model seen by the trainer: 64 pixel Values in, 10 logits out."""

    def __init__(self, rng):
        self.net = lenet(rng)
        scale_initial_weights(self.net)

    def __call__(self, pixels):
        return self.net([[pixels[8 * r:8 * r + 8] for r in range(8)]])

    def parameters(self):
        return self.net.parameters()


def cross_entropy(model, pixels, one_hot):
    """-log softmax(logits)[target] = logsumexp(logits) - sum_j y_j z_j, shifted by the largest
    logit so exp never overflows (the shift cancels in value and, up to rounding, in gradient).
    The largest logit is the op table's `max`, part of the graph: the compiled loss computes it
    for every sample (reading `.data` here would freeze the one seen while tracing)."""
    logits = model(pixels)
    shift = functools.reduce(MAX, logits)
    log_norm = sum((z - shift).exp() for z in logits).log()
    return log_norm - sum(y * (z - shift) for y, z in zip(one_hot, logits))


def load(seed):
    from sklearn.datasets import load_digits
    digits = load_digits()
    rows = [([v / 16.0 for v in image], int(label))
            for image, label in zip(digits.data.tolist(), digits.target.tolist())]
    random.Random(seed).shuffle(rows)
    cut = int(0.8 * len(rows))
    return rows[:cut], rows[cut:]


def accuracy(trainer, rows):
    scores = trainer.predict([pixels for pixels, _ in rows])
    return sum(max(range(N_CLASSES), key=s.__getitem__) == label
               for s, (_, label) in zip(scores, rows)) / len(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--epochs', type=int, default=30)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--lr', type=float, default=0.02)
    parser.add_argument('--momentum', type=float, default=0.9)
    args = parser.parse_args()
    train, test = load(args.seed)
    model = Digits(random.Random(args.seed))
    start = time.perf_counter()
    trainer = Trainer(model, cross_entropy, 64, n_targets=N_CLASSES)
    print(f'compiled {len(trainer.sample.instrs)} instructions per sample for '
          f'{trainer.n_params} parameters in {time.perf_counter() - start:.1f} s')
    rows = [pixels + [float(label == k) for k in range(N_CLASSES)] for pixels, label in train]

    def test_accuracy(trainer, _):
        return accuracy(trainer, test)

    start = time.perf_counter()
    trainer.fit(rows, epochs=args.epochs, lr=args.lr, batch_size=32, shuffle=args.seed,
                momentum=args.momentum,
                metric=test_accuracy)
    seconds = time.perf_counter() - start
    print(f'trained {args.epochs} epochs on {len(train)} images in {seconds:.1f} s')
    print(f'test accuracy: {100 * accuracy(trainer, test):.1f}% on {len(test)} images')
    trainer.write_back()
    first = Value(0.0)  # the trained micrograd model still works on its own
    print(f'engine check: logits of a blank image computed by micrograd: '
          f'{[round(z.data, 3) for z in model([first] * 64)][:3]}...')


if __name__ == '__main__':
    main()
