"""The main demo (`make demo`): micrograd's moons model trained three ways, and what it makes.

1. micrograd's README example, which prints 24.7041, 138.8338, 645.5773.
2. MLP(2, [16, 16, 1]) on 100 two-moons points, max-margin loss + 1e-4 L2, 100 SGD steps, trained
   by the engine (a new graph every step), by generated Python and by generated C; a table of
   time per step, speed-ups and final accuracy; the three loss curves must agree.
3. Into the output folder: graph pictures (one neuron; the model with each neuron collapsed; a
   small MLP clustered by layer and neuron), the decision boundary (with matplotlib), and the
   standalone generated Python and C for one training sample.

Without a C compiler the generated-C row is skipped, saying why, and everything else is done.

Run: python examples/demo.py [--steps N] [--out DIR]
"""
import argparse
import gc
import math
import pathlib
import random
import runpy
import time

import codegen
from codegen.build import CompilerNotFound, find_compiler
from codegen.train import Trainer
from micrograd import viz
from micrograd.datasets import make_moons
from micrograd.engine import Value
from micrograd.losses import l2_penalty, max_margin_loss
from micrograd.nn import MLP, Neuron

HERE = pathlib.Path(__file__).parent


def moons_model():
    random.seed(1337)  # the notebook's seed: the same initial weights every run
    return MLP(2, [16, 16, 1])


def sample_loss(model, x, y):
    """One sample's max-margin loss, as in micrograd's demo notebook."""
    return (1 + -y * model(x)).relu()


def l2(parameters):
    return l2_penalty(parameters, 1e-4)


def train_engine(X, y, steps):
    """The notebook's loop: a new graph over the whole batch every step."""
    model, losses, start = moons_model(), [], time.perf_counter()
    for k in range(steps):
        scores = [model([Value(a), Value(b)]) for a, b in X]
        loss = max_margin_loss(scores, y) + l2(model.parameters())
        model.zero_grad()
        loss.backward()
        for p in model.parameters():
            p.data -= (1.0 - 0.9 * k / 100) * p.grad
        losses.append(loss.data)
    return model, losses, 0.0, time.perf_counter() - start


def train_compiled(X, y, steps, backend):
    """Trace, generate and build once (the set-up), then run every step in generated code."""
    model, start = moons_model(), time.perf_counter()
    trainer = Trainer(model, sample_loss, 2, batch_loss=l2, backend=backend)
    batch = trainer.rows([x + [t] for x, t in zip(X, y)])
    ready = time.perf_counter()
    losses = [trainer.step(batch, 1.0 - 0.9 * k / 100) for k in range(steps)]
    return trainer.write_back(), losses, ready - start, time.perf_counter() - ready


def accuracy(model, X, y):
    return sum((model([Value(a), Value(b)]).data > 0) == (t > 0) for (a, b), t in zip(X, y)) / len(y)


def agree(a, b, rel=1e-9):
    return all(math.isclose(x, z, rel_tol=rel, abs_tol=1e-12) for x, z in zip(a, b))


def c_compiler_missing():
    """Why the C backend cannot run here (None if it can)."""
    try:
        find_compiler()
    except CompilerNotFound as error:
        return str(error)
    return None


def train_three_ways(steps, skip_c):
    X, labels = make_moons(100, 0.1, random.Random(1337))  # examples/moons.py's data
    y = [2 * t - 1 for t in labels]  # the notebook's labels are -1 and +1
    results = {}
    ways = [('engine', lambda: train_engine(X, y, steps)),
            ('generated Python', lambda: train_compiled(X, y, steps, 'python')),
            ('generated C', lambda: train_compiled(X, y, steps, 'c'))]
    # An engine graph has no reference cycles, so reference counting frees it; Python's cycle
    # collector would only rescan its 130,000 nodes again and again (about a third of the
    # engine's time here). It is paused while training, for all three alike.
    gc.disable()
    try:
        for name, run in ways[:2] if skip_c else ways:
            results[name] = run()
    finally:
        gc.enable()
    print(f'\n{"trained by":<18} {"set-up s":>9} {"ms/step":>9} {"speed-up":>9} '
          f'{"final loss":>12} {"accuracy":>9}')
    engine_seconds = results['engine'][3]
    for name, (model, losses, setup, seconds) in results.items():
        print(f'{name:<18} {setup:>9.2f} {1000 * seconds / steps:>9.3f} '
              f'{engine_seconds / seconds:>8.0f}x {losses[-1]:>12.6f} '
              f'{100 * accuracy(model, X, y):>8.0f}%')
    if skip_c:
        print(f'{"generated C":<18} skipped: {skip_c}')
    print('(set-up: trace, generate and compile once; a second run finds the C in the cache;'
          ' the cycle collector was paused while training)')
    for name in list(results)[1:]:
        if not agree(results['engine'][1], results[name][1]):
            raise SystemExit(f'BUG: {name} and the engine disagree on the loss curve')
    print(f'loss curves: {", ".join(results)} agree to 1e-9 at every step')
    return X, y, results[list(results)[-1]][0]


def draw_pictures(model, out):
    random.seed(0)
    x = [Value(1.0, label='x0'), Value(-2.0, label='x1')]
    neuron = Neuron(2, activation='tanh')
    result = neuron(x)
    result.backward()
    paths = [viz.draw_dot(viz.readme_graph(), format='svg').render(out / 'readme',
                                                                   cleanup=True),
             viz.draw_dot(result, format='svg').render(out / 'neuron', cleanup=True)]
    score = model([Value(0.5, label='x0'), Value(0.25, label='x1')])
    paths.append(viz.draw_dot(score, format='svg', collapse=True)
                 .render(out / 'model_collapsed', cleanup=True))
    random.seed(1)
    small = MLP(2, [4, 4, 1])
    paths.append(viz.draw_dot(small([Value(0.5, label='x0'), Value(0.25, label='x1')]),
                              format='svg', cluster=True).render(out / 'mlp_clustered',
                                                                cleanup=True))
    return paths


def draw_boundary(model, X, y, path, backend):
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return 'skipped the decision boundary (pip install matplotlib)'
    trainer = Trainer(model, sample_loss, 2, backend=backend)
    grid = [(-1.5 + 3.5 * i / 59, -1.25 + 2.75 * j / 59) for j in range(60) for i in range(60)]
    scores = [s[0] for s in trainer.predict(grid)]
    z = [[scores[60 * j + i] > 0 for i in range(60)] for j in range(60)]
    plt.figure(figsize=(5, 4))
    plt.contourf([g[0] for g in grid[:60]], [grid[60 * j][1] for j in range(60)], z,
                 cmap=plt.cm.Spectral, alpha=0.8)
    plt.scatter([a for a, _ in X], [b for _, b in X], c=y, s=20, cmap=plt.cm.Spectral)
    plt.title(f'moons: decision boundary of the MLP trained in generated '
              f'{"C" if backend == "c" else "Python"}')
    plt.savefig(path, dpi=100)
    return str(path)


def write_generated_code(out):
    # Only the traced programs are needed, not a compiled step: writing C needs no compiler.
    trainer = Trainer(moons_model(), sample_loss, 2, batch_loss=l2, backend='python')
    return [codegen.save(trainer.sample, str(out / 'moons_sample.py')),
            codegen.save(trainer.sample, str(out / 'moons_sample.c'), n_params=trainer.n_params)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=100)
    parser.add_argument('--out', type=pathlib.Path, default=pathlib.Path('out/demo'))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print('== micrograd README example (expect 24.7041, 138.8338, 645.5773)')
    runpy.run_path(str(HERE / 'readme_example.py'))
    print(f'\n== moons: MLP(2, [16, 16, 1]), 100 points, {args.steps} SGD steps')
    skip_c = c_compiler_missing()
    X, y, model = train_three_ways(args.steps, skip_c)
    boundary = draw_boundary(model, X, y, args.out / 'decision_boundary.png',
                             'python' if skip_c else 'c')
    print(f'\n== written to {args.out}/')
    for path in draw_pictures(model, args.out) + [boundary] + write_generated_code(args.out):
        print('  ', path)


if __name__ == '__main__':
    main()
