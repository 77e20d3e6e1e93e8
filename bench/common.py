"""What every benchmark peer shares: the workloads' arithmetic, the step timing loop and the
child-process protocol. Standard library only: the micrograd 0.1.0 peer imports this file from
its own venv, where the project's packages are not installed.

A peer runs as a child process: `python bench/peers_X.py SPEC.json RESULT.json`. The spec holds
the workload (layer sizes, data rows, labels -1/+1, initial parameters in micrograd's order:
per layer, per neuron, weights then bias), the learning rates of each step and how to time; the
result holds the per-step times, the loss of every step of the first trajectory and the final
parameters, or `skipped` (not installed) or `error`.
"""
import json
import sys
import time
import traceback

REG = 1e-4  # the L2 weight of micrograd's demo


def learning_rate(k, steps=100):
    """micrograd's demo schedule: 1.0 at step 0, down to 0.109 at step 99."""
    return 1.0 - 0.9 * k / steps


def layer_shapes(sizes, n_in=2):
    """(nin, nout) of each layer of MLP(n_in, sizes)."""
    dims = [n_in] + list(sizes)
    return list(zip(dims[:-1], dims[1:]))


def split_layers(flat, sizes, n_in=2):
    """Flat parameters in micrograd's order -> [(W as nout rows of nin, b as nout), ...]."""
    layers, k = [], 0
    for nin, nout in layer_shapes(sizes, n_in):
        W, b = [], []
        for _ in range(nout):
            W.append(list(flat[k:k + nin]))
            b.append(flat[k + nin])
            k += nin + 1
        layers.append((W, b))
    if k != len(flat):
        raise ValueError(f'{len(flat)} parameters for an MLP that has {k}')
    return layers


def join_layers(layers):
    """The inverse of split_layers."""
    flat = []
    for W, b in layers:
        for row, bias in zip(W, b):
            flat.extend(float(v) for v in row)
            flat.append(float(bias))
    return flat


def measure(spec, fresh_state, step, final_params):
    """Time `step(state, lr) -> loss` over the spec's trajectory.

    spec['warmup'] steps run first on a throwaway state (JIT compilation, caches); then the
    trajectory of spec['steps'] steps from the initial parameters runs `repeats` times (more
    while the time budget lasts), each from a fresh state. The first spec['skip'] timings of
    each trajectory are left out (the warm-up of slow peers, which get no throwaway run).
    Returns a result dict: times (s), losses of the first trajectory, its final parameters,
    and whether the repeats reproduced the same losses bit for bit.
    """
    lrs, steps = spec['lrs'], spec['steps']
    state = fresh_state()
    for k in range(spec.get('warmup', 0)):
        step(state, lrs[k % len(lrs)])
    times, first, final, same = [], None, None, True
    budget, max_repeats = spec.get('budget', 0.0), spec.get('max_repeats', 1)
    started = time.perf_counter()
    repeats = 0
    while True:
        state = fresh_state()
        losses = []
        for k in range(steps):
            t0 = time.perf_counter()
            loss = step(state, lrs[k])
            t1 = time.perf_counter()
            if k >= spec.get('skip', 0):
                times.append(t1 - t0)
            losses.append(loss)
        losses = [float(v) for v in losses]
        repeats += 1
        if first is None:
            first, final = losses, final_params(state)
        elif losses != first:
            same = False
        if repeats >= max_repeats or time.perf_counter() - started >= budget:
            break
    return {'times': times, 'losses': first, 'final_params': final, 'repeats': repeats,
            'reproducible': same}


def child_main(run):
    """Entry point of a peer process: read the spec, call run(spec), write the result."""
    spec_path, result_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as f:
        spec = json.load(f)
    try:
        result = run(spec)
    except ImportError as e:
        result = {'skipped': f'not installed ({e})'}
    except Exception:  # reported by the parent, with the traceback
        result = {'error': traceback.format_exc()}
    with open(result_path, 'w') as f:
        json.dump(result, f)
