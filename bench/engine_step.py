"""One training step of micrograd's moons demo: this engine against micrograd 0.1.0 (issue 2).

    python3 bench/engine_step.py [--steps 7]

Not a test: it prints a table. The workload is micrograd's demo: MLP(2, [16, 16, 1]) on 100
two-moons points, max-margin loss averaged over the batch + 1e-4 L2, one SGD update. The model
is written below against the plain Value API (no micrograd.nn), so both engines run the very
same model code, from the same data and the same initial weights (drawn here, in the parent).

Both engines import as `micrograd`, so each runs in its own child process: this project's with
PYTHONPATH set to the repository, micrograd 0.1.0 from its own venv, bench/.venv-micrograd,
created on first use (`python3 -m venv` + `pip install micrograd==0.1.0`).

Also measured, in each child: bytes per op node with tracemalloc (a chain v = v * w of 20,000
nodes after backward(), and the whole graph of one training step), and the time to build and
backpropagate a chain of 1,000,000 nodes (micrograd's recursive topological sort cannot).
"""
import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import time
import tracemalloc

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENV = os.path.join(HERE, '.venv-micrograd')
REQUIREMENT = 'micrograd==0.1.0'


# ---- the workload, made once in the parent ---------------------------------------------------

def make_moons(n=100, noise=0.1, seed=0):
    """Two interleaving half circles, labels +1 and -1 (sklearn's make_moons, without sklearn)."""
    rng = random.Random(seed)
    half = n // 2
    X, y = [], []
    for i in range(n):
        t = math.pi * (i % half) / (half - 1)
        if i < half:
            x0, x1, label = math.cos(t), math.sin(t), 1.0
        else:
            x0, x1, label = 1.0 - math.cos(t), 0.5 - math.sin(t), -1.0
        X.append([x0 + rng.gauss(0.0, noise), x1 + rng.gauss(0.0, noise)])
        y.append(label)
    return X, y


def initial_parameters(sizes, n_in=2, seed=1337):
    """Per layer, per neuron: weights uniform in [-1, 1], bias 0 (micrograd.nn's Neuron)."""
    rng = random.Random(seed)
    layers, dims = [], [n_in] + sizes
    for nin, nout in zip(dims[:-1], dims[1:]):
        layers.append([([rng.uniform(-1.0, 1.0) for _ in range(nin)], 0.0) for _ in range(nout)])
    return layers


# ---- the child: runs with whichever `micrograd` its interpreter imports ----------------------

class MLP:
    """micrograd.nn's MLP in a few lines: ReLU on every layer but the last."""

    def __init__(self, Value, layers):
        self.layers = [[([Value(w) for w in ws], Value(b)) for ws, b in layer] for layer in layers]

    def __call__(self, x):
        for k, layer in enumerate(self.layers):
            last = k == len(self.layers) - 1
            x = [self.neuron(ws, b, x, relu=not last) for ws, b in layer]
        return x[0]

    @staticmethod
    def neuron(ws, b, x, relu):
        act = sum((wi * xi for wi, xi in zip(ws, x)), b)
        return act.relu() if relu else act

    def parameters(self):
        return [p for layer in self.layers for ws, b in layer for p in ws + [b]]


def loss(Value, model, X, y):
    """micrograd's demo loss: mean max-margin loss + 1e-4 L2."""
    inputs = [list(map(Value, row)) for row in X]
    scores = list(map(model, inputs))
    losses = [(1 + -yi * si).relu() for yi, si in zip(y, scores)]
    data_loss = sum(losses) * (1.0 / len(losses))
    reg_loss = 1e-4 * sum(p * p for p in model.parameters())
    return data_loss + reg_loss


def train_step(Value, model, X, y, k):
    total = loss(Value, model, X, y)
    for p in model.parameters():
        p.grad = 0.0
    total.backward()
    learning_rate = 1.0 - 0.9 * k / 100
    for p in model.parameters():
        p.data -= learning_rate * p.grad
    return total


def count_op_nodes(root):
    """Nodes with children, found through micrograd's `_prev` (both engines have it)."""
    seen, stack, ops = {root}, [root], 0
    while stack:
        node = stack.pop()
        children = node._prev
        ops += bool(children)
        for child in children:
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return ops


def traced_bytes(build):
    """(result of build(), bytes it allocated and still holds) by tracemalloc."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = build()
        return result, tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def chain(Value, n, op):
    """A chain of n op nodes v = op(v, w) from leaves x and w; returns (x, w, v)."""
    x, w = Value(0.5), Value(1.0)
    v = x
    for _ in range(n):
        v = op(v, w)
    return x, w, v


def bytes_per_chain_node(Value, n=20_000):
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 3 * n))  # for micrograd's backward

    def build():
        x, w, v = chain(Value, n, lambda v, w: v * w)
        v.backward()
        return v
    return traced_bytes(build)[1] / n


def bytes_per_step_node(Value, workload):
    model = MLP(Value, workload['layers'])
    total, size = traced_bytes(lambda: train_step(Value, model, workload['X'], workload['y'], 0))
    return size / count_op_nodes(total)


def million_chain(Value, n=1_000_000):
    """Seconds to build and to backpropagate a chain of n nodes, or why it cannot."""
    started = time.perf_counter()
    x, w, v = chain(Value, n, lambda v, w: v + w)
    built = time.perf_counter()
    try:
        v.backward()
    except RecursionError:
        return {'error': f'RecursionError in backward() of a {n:,}-node chain'}
    done = time.perf_counter()
    assert w.grad == n, 'wrong gradient on the chain'
    return {'build': built - started, 'backward': done - built}


def child(workload):
    from micrograd.engine import Value
    import micrograd.engine
    result = {'engine': micrograd.engine.__file__}
    model = MLP(Value, workload['layers'])
    times, losses = [], []
    for k in range(workload['steps'] + 1):  # step 0 warms up and is not timed
        started = time.perf_counter()
        total = train_step(Value, model, workload['X'], workload['y'], k)
        times.append(time.perf_counter() - started)
        losses.append(total.data)
    del total
    result.update(step=statistics.median(times[1:]), losses=losses,
                  chain_bytes=bytes_per_chain_node(Value),
                  step_bytes=bytes_per_step_node(Value, workload))
    if workload['million']:
        result['million'] = million_chain(Value)
    else:  # micrograd: show where its recursive backward() stops instead of building 1e6 nodes
        sys.setrecursionlimit(1000)
        result['million'] = million_chain(Value, n=2000)
    json.dump(result, sys.stdout)


# ---- the parent ------------------------------------------------------------------------------

def clean_env():
    """The environment without PYTHONPATH, so micrograd's venv never sees this project."""
    env = dict(os.environ)
    env.pop('PYTHONPATH', None)
    return env


def venv_python():
    return os.path.join(VENV, 'Scripts' if os.name == 'nt' else 'bin', 'python')


def micrograd_python():
    """A python that imports micrograd 0.1.0 (not this project), creating the venv if needed."""
    python = venv_python()
    probe = 'import micrograd.engine as e, sys; sys.exit(hasattr(e, "topo_order"))'
    if os.path.exists(python) and subprocess.run(
            [python, '-c', probe], cwd=HERE, env=clean_env(), capture_output=True).returncode == 0:
        return python
    print(f'creating {os.path.relpath(VENV)} with {REQUIREMENT} (first run only)...',
          file=sys.stderr)
    if not os.path.exists(python):
        subprocess.run([sys.executable, '-m', 'venv', VENV], check=True, env=clean_env())
    if subprocess.run([python, '-m', 'pip', '--version'], capture_output=True).returncode:
        subprocess.run([python, '-m', 'ensurepip', '-q'], check=True, env=clean_env())
    subprocess.run([python, '-m', 'pip', 'install', '-q', '--disable-pip-version-check',
                    REQUIREMENT], check=True, env=clean_env())
    return python


def run_child(python, env, workload):
    done = subprocess.run([python, os.path.abspath(__file__), '--child'], cwd=HERE, env=env,
                          input=json.dumps(workload), capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f'{python} failed:\n{done.stderr}')
    return json.loads(done.stdout)


def describe_million(m):
    if 'error' in m:
        return m['error']
    return f"{m['build']:.2f} s build + {m['backward']:.2f} s backward"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=7, help='timed steps per engine (median)')
    parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(json.load(sys.stdin))

    X, y = make_moons()
    workload = {'X': X, 'y': y, 'layers': initial_parameters([16, 16, 1]), 'steps': args.steps}
    ours = run_child(sys.executable, dict(os.environ, PYTHONPATH=ROOT),
                     dict(workload, million=True))
    try:
        theirs = run_child(micrograd_python(), clean_env(), dict(workload, million=False))
    except (subprocess.CalledProcessError, RuntimeError, OSError) as error:
        print(f'micrograd 0.1.0 unavailable, timing this engine only: {error}', file=sys.stderr)
        theirs = None

    rows = [('this engine', ours)] + ([('micrograd 0.1.0', theirs)] if theirs else [])
    print(f'One training step of MLP(2, [16, 16, 1]) on 100 moons points, median of '
          f'{args.steps} steps after one warm-up; Python {sys.version.split()[0]}\n')
    print(f"{'engine':<17}{'s/step':>8}{'B/node chain':>14}{'B/node step':>13}  "
          f"1,000,000-node chain")
    for name, r in rows:
        print(f"{name:<17}{r['step']:>8.3f}{r['chain_bytes']:>14.0f}{r['step_bytes']:>13.0f}  "
              f"{describe_million(r['million'])}")
    if theirs:
        print(f"\nmicrograd 0.1.0 / this engine, time per step: "
              f"{theirs['step'] / ours['step']:.2f}x")
        drift = max(abs(a - b) / abs(b) for a, b in zip(ours['losses'], theirs['losses']))
        print(f"loss of step 0 equal bit for bit: {ours['losses'][0] == theirs['losses'][0]} "
              f"({ours['losses'][0]!r}); largest relative difference over the "
              f"{len(ours['losses'])} steps: {drift:.1e} (gradients sum in another order)")
    print('\nB/node chain: v = v * w, 20,000 nodes, after backward(); B/node step: all memory '
          'one training step holds (graph, floats, gradients) per op node.')


if __name__ == '__main__':
    main()
