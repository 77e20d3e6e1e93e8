"""The main demo (`make demo`): micrograd's moons model trained three ways, and what it makes.

1. micrograd's README example, which prints 24.7041, 138.8338, 645.5773.
2. MLP(2, [16, 16, 1]) on 100 two-moons points, max-margin loss + 1e-4 L2, 100 SGD steps, trained
   by the engine (a new graph every step), by generated Python and by generated C; a table of
   time per step, speed-ups and final accuracy; the three loss curves must agree.
3. Into the output folder: graph pictures after backward() (micrograd's README expression with
   its inputs a and b; one neuron; the trained model with each neuron collapsed; a small MLP
   framed by layer and neuron, left to right), the backward-pass stepper page for the README
   expression (open it in a browser, step with the arrow keys), the decision boundary (with
   matplotlib), and the standalone generated Python and C for one training sample
   (moons_sample.py, moons_sample.c and its header moons_sample.h).

Without a C compiler the generated-C row is skipped, saying why, and everything else is done.

Run: python examples/demo.py [--steps N] [--out DIR]
"""
import argparse
import dataclasses
import gc
import math
import pathlib
import random
import runpy
import sys
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
        show_progress(k + 1, steps, loss.data, start)
    return model, losses, 0.0, time.perf_counter() - start


def show_progress(done, steps, loss, start):
    """The engine takes a while (about 30 s for 100 steps), so say how far it is: on a
    terminal one line rewritten in place, in a log a line every quarter."""
    on_terminal = sys.stdout.isatty()
    if done == steps or done % (5 if on_terminal else max(steps // 4, 1)) == 0:
        line = f'  engine: step {done}/{steps}, loss {loss:.6f}, ' \
               f'{time.perf_counter() - start:.1f} s'
        print('\r' + line if on_terminal else line, flush=True,
              end='' if on_terminal and done < steps else '\n')


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
    """Each picture after backward(), so every box shows a real gradient."""
    random.seed(0)
    neuron = Neuron(2, activation='tanh')
    result = neuron([Value(1.0, label='x0'), Value(-2.0, label='x1')])
    result.label = 'out'
    result.backward()
    random.seed(1)
    readme = viz.readme_graph()                             # backward() already called
    pictures = {'readme': (readme, viz.example_options('readme', readme)),
                'neuron': (result, {}),
                'model_collapsed': (scored(model), {'collapse': True}),
                'mlp_clustered': (scored(MLP(2, [4, 4, 1])), {'cluster': True})}
    # render() writes the DOT source next to the picture; cleanup=True deletes it again
    return [viz.draw_dot(root, format='svg', **options).render(out / name, cleanup=True)
            for name, (root, options) in pictures.items()]


def scored(model):
    """The model's score for one point, after backward(): d score / d each parameter.
    (Not relabelled: its label, e.g. 'L2.N0', is how the picture finds the last neuron.)"""
    score = model([Value(0.5, label='x0'), Value(0.25, label='x1')])
    score.backward()
    return score


def write_stepper(out):
    """The backward pass of micrograd's README expression, one node per step, as a page."""
    readme = viz.readme_graph()
    return viz.steps(readme, **viz.example_options('readme', readme)) \
        .save(out / 'readme_steps.html')


def draw_boundary(model, X, y, path, backend):
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return 'skipped the decision boundary (pip install matplotlib)'
    trainer = Trainer(model, sample_loss, 2, backend=backend)
    xs, ys = grid_axis([a for a, _ in X]), grid_axis([b for _, b in X])
    scores = [s[0] for s in trainer.predict([(a, b) for b in ys for a in xs])]
    z = [[scores[len(xs) * j + i] > 0 for i in range(len(xs))] for j in range(len(ys))]
    plt.figure(figsize=(5, 4))
    plt.contourf(xs, ys, z, cmap=plt.cm.Spectral, alpha=0.8)
    plt.scatter([a for a, _ in X], [b for _, b in X], c=y, s=20, cmap=plt.cm.Spectral)
    plt.title(f'moons: decision boundary of the MLP trained in generated '
              f'{"C" if backend == "c" else "Python"}')
    plt.savefig(path, dpi=100)
    return str(path)


def grid_axis(values, points=60, margin=0.25):
    """Evenly spaced points from below the smallest value to above the largest, so the
    decision boundary covers every data point with room to spare."""
    low, high = min(values) - margin, max(values) + margin
    return [low + (high - low) * i / (points - 1) for i in range(points)]


def write_generated_code(out):
    # Only the traced programs are needed, not a compiled step: writing C needs no compiler.
    trainer = Trainer(moons_model(), sample_loss, 2, batch_loss=l2, backend='python')
    # named after its files, so the C functions and the header's comment say moons_sample
    sample = dataclasses.replace(trainer.sample, name='moons_sample')
    c_file = codegen.save(sample, str(out / 'moons_sample.c'), n_params=trainer.n_params)
    return [codegen.save(sample, str(out / 'moons_sample.py')), c_file,
            c_file[:-2] + '.h']   # save() writes the header next to the .c file


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
    written = draw_pictures(model, args.out) + [write_stepper(args.out), boundary] \
        + write_generated_code(args.out)
    for path in written:
        print('  ', path)


if __name__ == '__main__':
    main()
