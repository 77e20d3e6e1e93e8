"""LeNet-5 on scikit-learn's handwritten digits, upscaled from 8x8 to 32x32.

LeNet-5 (micrograd.architectures.lenet5: the common modern variant, 61,706 parameters) reads
32x32 images; scikit-learn's digits are 8x8 with values 0 to 16, so each pixel becomes a 4x4
block, scaled to [0, 1]. 1,437 images train, 360 are held out (a seeded shuffle).

On the engine one image's forward and backward pass records about 850,000 Value nodes and
takes seconds, so the engine runs only a few steps of mini-batch SGD and reports the accuracy
on a few held-out images before and after: a few steps cannot train it (expect about chance,
10%); they show that it runs, and what a step costs. Full training is for the fast path:
`--fast` hands the same model and loss to codegen.train.Trainer, which traces one sample
once, lifts its convolutions and layers into loop nests (codegen/lift.py) and runs every epoch
in C: building takes about 25 s, then about 5,000 images/s; one epoch reaches about 88%
held-out accuracy. (The tests check a half-width LeNet-5 on 16x16 images bit for bit.)

Needs scikit-learn for the data (`pip install scikit-learn`; load_digits ships with it).
Run: python examples/lenet5_digits.py [--steps N] [--batch-size N] [--test-images N]
     python examples/lenet5_digits.py --fast [--epochs N]
"""
import argparse
import gc
import random
import time

from micrograd.architectures import lenet5
from micrograd.nn import maximum, total
from micrograd.optim import SGD

N_CLASSES, SCALE = 10, 4  # 8x8 digits, each pixel a 4x4 block: 32x32


def load(seed):
    """(training rows, held-out rows), each row (32x32 image as image[0][row][col], label)."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    rows = [(upscale(pixels), int(label))
            for pixels, label in zip(digits.data.tolist(), digits.target.tolist())]
    random.Random(seed).shuffle(rows)
    cut = int(0.8 * len(rows))
    return rows[:cut], rows[cut:]


def upscale(pixels):
    """64 values 0..16 (8x8, row-major) to one 32x32 channel in [0, 1], each pixel repeated
    as a SCALE x SCALE block."""
    rows = [[pixels[8 * (r // SCALE) + c // SCALE] / 16.0 for c in range(8 * SCALE)]
            for r in range(8 * SCALE)]
    return [rows]


def cross_entropy(logits, one_hot):
    """-log softmax(logits)[target] = logsumexp(z) - sum_j y_j z_j, shifted by the largest
    logit, found with graph ops (`maximum`) so a traced program shifts by each sample's own."""
    shift = logits[0]
    for z in logits[1:]:
        shift = maximum(z, shift)
    log_norm = total([(z - shift).exp() for z in logits]).log()
    return log_norm - total([y * (z - shift) for y, z in zip(one_hot, logits)])


def one_hot(label):
    return [1.0 if k == label else 0.0 for k in range(N_CLASSES)]


def predicted_class(logits):
    return max(range(N_CLASSES), key=lambda k: logits[k].data)


def engine_accuracy(model, rows):
    return sum(predicted_class(model(image)) == label for image, label in rows) / len(rows)


def train_on_the_engine(model, train, test, steps, batch_size, lr):
    print(f'held-out accuracy before training: {100 * engine_accuracy(model, test):.1f}% '
          f'on {len(test)} images')
    optimizer = SGD(model.parameters(), lr=lr, momentum=0.9)
    for step in range(steps):
        batch = train[step * batch_size:(step + 1) * batch_size]
        start = time.perf_counter()
        loss = total([cross_entropy(model(image), one_hot(label)) for image, label in batch])
        loss = loss / len(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        print(f'step {step}: loss {loss.data:.4f} on {len(batch)} images, '
              f'{time.perf_counter() - start:.1f} s')
    print(f'held-out accuracy after {steps} steps: {100 * engine_accuracy(model, test):.1f}% '
          f'on {len(test)} images')


class FlatInput:
    """The model as codegen's Trainer sees it: 1,024 pixel Values in, 10 logits out."""

    def __init__(self, model):
        self.model = model

    def __call__(self, pixels):
        size = 8 * SCALE
        return self.model([[pixels[size * r:size * (r + 1)] for r in range(size)]])

    def parameters(self):
        return self.model.parameters()


def train_on_the_fast_path(model, train, test, epochs, lr, seed):
    """The hook for full training: the per-sample loss traced once, every epoch in C."""
    from codegen.train import Trainer  # only here: the engine path needs no code generator
    flat = FlatInput(model)
    n_pixels = (8 * SCALE) ** 2
    start = time.perf_counter()
    trainer = Trainer(flat, lambda m, x, y: cross_entropy(m(x), y), n_pixels,
                      n_targets=N_CLASSES)
    print(f'compiled the training step in {time.perf_counter() - start:.1f} s')
    rows = [sum(image[0], []) + one_hot(label) for image, label in train]
    trainer.fit(rows, epochs=epochs, lr=lr, batch_size=32, shuffle=seed, momentum=0.9)
    scores = trainer.predict([sum(image[0], []) for image, _ in test])
    correct = sum(max(range(N_CLASSES), key=s.__getitem__) == label
                  for s, (_, label) in zip(scores, test))
    print(f'held-out accuracy after {epochs} epochs: {100 * correct / len(test):.1f}% '
          f'on {len(test)} images')
    trainer.write_back()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=3, help='engine SGD steps')
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--test-images', type=int, default=20,
                        help='held-out images the engine scores (all 360 with --fast)')
    parser.add_argument('--lr', type=float, default=0.01)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--fast', action='store_true', help='full training with codegen')
    parser.add_argument('--epochs', type=int, default=10, help='epochs on the fast path')
    args = parser.parse_args()
    train, test = load(args.seed)
    model = lenet5(num_classes=N_CLASSES, rng=random.Random(args.seed))
    print(f'LeNet-5: {model.parameter_count():,} parameters; {len(train)} training and '
          f'{len(test)} held-out digits, upscaled to 32x32')
    gc.disable()  # the engine's graphs have no cycles; the collector would only slow it down
    if args.fast:
        train_on_the_fast_path(model, train, test, args.epochs, args.lr, args.seed)
    else:
        train_on_the_engine(model, train, test[:args.test_images], args.steps,
                            args.batch_size, args.lr)


if __name__ == '__main__':
    main()
