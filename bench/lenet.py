"""LeNet-5 training steps: this project's generated C against PyTorch eager, float64, one run.

Both train the same LeNet-5 (micrograd.architectures.lenet5: conv 6@5x5, 2x2 average pool,
conv 16@5x5, 2x2 average pool, 120, 84, 10; relu; 61,706 parameters) from the same initial
parameters on the same batches of 32 random 32x32 images, with softmax cross-entropy and SGD
(lr 0.01, momentum 0.9), and report images per second (median step). The losses of the first
steps must agree to a relative 1e-9 (PyTorch rounds differently in the last bits), or the run
fails. Also reported: the cold `Trainer()` build (trace, lift, C compiler).

    python bench/lenet.py [--steps N]

One run on this project's 2-core machine: 7,683 against 4,062 images/s (1.89x), cold build 9.0 s.
"""
import argparse
import os
import random
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

BATCH, CLASSES, SIZE, LR, MOMENTUM = 32, 10, 32, 0.01, 0.9


def batches(n, seed=0):
    """n batches of (32 rows of 1,024 pixels in [0, 1] then a one-hot target, labels)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        labels = [rng.randrange(CLASSES) for _ in range(BATCH)]
        rows = [[rng.random() for _ in range(SIZE * SIZE)] +
                [1.0 if k == label else 0.0 for k in range(CLASSES)] for label in labels]
        out.append((rows, labels))
    return out


def example():
    """examples/lenet5_digits.py, whose model wrapper and loss the generated C trains."""
    import importlib.util
    path = os.path.join(os.path.dirname(HERE), 'examples', 'lenet5_digits.py')
    spec = importlib.util.spec_from_file_location('lenet5_digits', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ours(model, data, steps):
    from codegen.train import Trainer
    lenet = example()
    FlatInput, cross_entropy = lenet.FlatInput, lenet.cross_entropy
    os.environ['MICROGRAD_CACHE'] = tempfile.mkdtemp(prefix='lenet-bench-')  # a cold build
    start = time.perf_counter()
    trainer = Trainer(FlatInput(model), lambda m, x, y: cross_entropy(m(x), y), SIZE * SIZE,
                      n_targets=CLASSES)
    build = time.perf_counter() - start
    prepared = [trainer.rows(rows) for rows, _ in data]
    losses, times = [], []
    for k in range(steps):
        t0 = time.perf_counter()
        losses.append(trainer.step(prepared[k % len(prepared)], LR, momentum=MOMENTUM))
        times.append(time.perf_counter() - t0)
    return losses, times, build


def torch_peer(model, data, steps):
    import torch
    torch.set_num_threads(1)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 5), torch.nn.ReLU(), torch.nn.AvgPool2d(2),
        torch.nn.Conv2d(6, 16, 5), torch.nn.ReLU(), torch.nn.AvgPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(400, 120), torch.nn.ReLU(), torch.nn.Linear(120, 84), torch.nn.ReLU(),
        torch.nn.Linear(84, CLASSES)).double()
    copy_parameters(model, net, torch)
    optimizer = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
    loss_fn = torch.nn.CrossEntropyLoss()
    tensors = [(torch.tensor([row[:SIZE * SIZE] for row in rows], dtype=torch.float64)
                .reshape(BATCH, 1, SIZE, SIZE), torch.tensor(labels)) for rows, labels in data]
    losses, times = [], []
    for k in range(steps):
        x, y = tensors[k % len(tensors)]
        t0 = time.perf_counter()
        optimizer.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - t0)
        losses.append(loss.item())
    return losses, times, torch.__version__


def copy_parameters(model, net, torch):
    """Our layers' parameters into PyTorch's: a Conv2d kernel's weights are listed channel,
    row, column (PyTorch's [out, in, kh, kw] flattened), a layer's neurons are rows."""
    ours_layers = [m for m in model.modules if hasattr(m, 'kernels') or hasattr(m, 'neurons')]
    theirs = [m for m in net if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        for mine, layer in zip(ours_layers, theirs):
            neurons = getattr(mine, 'kernels', None) or mine.neurons
            weights = [[w.data for w in n.w] for n in neurons]
            layer.weight.copy_(torch.tensor(weights, dtype=torch.float64).reshape(
                layer.weight.shape))
            layer.bias.copy_(torch.tensor([n.b.data for n in neurons], dtype=torch.float64))


def median(times):
    return sorted(times)[len(times) // 2]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=60)
    args = parser.parse_args(argv)
    from micrograd.architectures import lenet5
    data = batches(8)
    model = lenet5(num_classes=CLASSES, rng=random.Random(0))
    print(f'LeNet-5, {model.parameter_count():,} parameters, batches of {BATCH}, '
          f'{args.steps} SGD steps each, one run; load average {os.getloadavg()[0]:.1f}')
    try:
        their_losses, their_times, version = torch_peer(model, data, args.steps)
    except ImportError:
        their_losses = None
        print('PyTorch: not installed (pip install torch)')
    losses, times, build = ours(model, data, args.steps)
    mine = BATCH / median(times[5:])
    print(f'generated C (default build): {mine:,.0f} images/s; cold Trainer() {build:.1f} s '
          '(target < 10 s: ' + ('MET' if build < 10 else f'MISSED, {build / 10:.1f}x') + ')')
    if their_losses is None:
        return 0
    theirs = BATCH / median(their_times[5:])
    print(f'PyTorch {version} eager, float64, 1 thread: {theirs:,.0f} images/s')
    ratio = mine / theirs
    print(f'generated C / PyTorch images/s: {ratio:.2f} (target >= 1: '
          f'{"MET" if ratio >= 1 else "MISSED"})')
    worst = max(abs(a - b) / abs(b) for a, b in zip(losses[:10], their_losses[:10]))
    print(f'first 10 losses agree to a relative {worst:.1e}')
    if worst > 1e-9:
        print('FAILED: the two do not train the same model the same way')
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
