"""micrograd 0.1.0 from PyPI, in its own venv (bench/.venv-micrograd): its package is also named
`micrograd`, so it cannot share a process with this project.

The child part runs micrograd's demo step (the same code as the engine peer) with micrograd
0.1.0's own Value and MLP; the parameters are then set from the spec, so every peer starts from
the same numbers. `ensure_venv()` is used by bench/run.py to create the venv on first use.
"""
import os
import subprocess
import sys

from common import REG, child_main, measure

HERE = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.join(HERE, '.venv-micrograd')
REQUIREMENT = 'micrograd==0.1.0'


def venv_python(venv=VENV):
    return os.path.join(venv, 'Scripts' if os.name == 'nt' else 'bin', 'python')


def _has_micrograd(python):
    probe = ('import micrograd.engine, micrograd.nn, os, sys; '
             'sys.exit(0 if not hasattr(micrograd.engine, "topo_order") else 1)')
    return os.path.exists(python) and subprocess.run(
        [python, '-c', probe], cwd=HERE, env=clean_env(), capture_output=True).returncode == 0


def clean_env():
    """The environment without PYTHONPATH, so the child never sees this project's micrograd."""
    env = dict(os.environ)
    env.pop('PYTHONPATH', None)
    return env


def ensure_venv(venv=VENV, log=print):
    """Path of a python that imports micrograd 0.1.0, creating the venv if needed, with
    bench/engine_step.py's helper (the same venv) when it is there; raises if that fails (no
    network, say)."""
    try:
        from engine_step import VENV as shared, micrograd_python
    except ImportError:
        shared = None
    if shared == venv:
        return micrograd_python()
    python = venv_python(venv)
    if _has_micrograd(python):
        return python
    log(f'creating {os.path.relpath(venv)} with {REQUIREMENT} (first run only)...')
    steps = [[sys.executable, '-m', 'venv', venv],
             [python, '-m', 'pip', 'install', '-q', '--disable-pip-version-check', REQUIREMENT]]
    for command in steps:
        if command[0] == sys.executable and os.path.exists(python):
            continue
        done = subprocess.run(command, capture_output=True, text=True, env=clean_env())
        if done.returncode:
            raise RuntimeError(f'{" ".join(command)} failed:\n{done.stderr.strip()[-1500:]}')
    if not _has_micrograd(python):
        raise RuntimeError(f'{python} cannot import micrograd 0.1.0 after installing it')
    return python


def run(spec):
    import micrograd
    from micrograd.engine import Value
    from micrograd.nn import MLP
    here = os.path.dirname(os.path.abspath(micrograd.__file__))
    if os.path.exists(os.path.join(here, 'ops.py')):
        raise RuntimeError(f'{here} is this project\'s micrograd, not micrograd 0.1.0')
    model = MLP(2, spec['sizes'])
    params = model.parameters()
    X, Y = spec['X'], spec['y']

    def fresh():
        for p, v in zip(params, spec['params0']):
            p.data = v
        return model

    def step(model, lr):  # micrograd's demo.ipynb, line for line
        inputs = [list(map(Value, row)) for row in X]
        scores = list(map(model, inputs))
        losses = [(1 + -yi * si).relu() for yi, si in zip(Y, scores)]
        data_loss = sum(losses) * (1.0 / len(losses))
        reg_loss = REG * sum((p * p for p in params))
        total = data_loss + reg_loss
        model.zero_grad()
        total.backward()
        for p in params:
            p.data -= lr * p.grad
        return total.data

    result = measure(spec, fresh, step, lambda m: [p.data for p in params])
    result['info'] = f'micrograd 0.1.0 from {here}'
    return result


if __name__ == '__main__':
    child_main(run)
