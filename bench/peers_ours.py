"""This project's peers, each run as a child process by bench/run.py:

  engine   the micrograd.engine Value graph, built each step, backward, SGD (micrograd's demo)
  python   generated Python: Trainer(backend='python'), i.e. codegen.build(..., 'python') on the
           per-sample program, Compiled.sum over the rows, the update in Python
  c        generated C, default flags (bit-equal build): codegen.train.Trainer
  c-fast   generated C, Trainer(fast=True): the loop level on both cores (OpenMP)

and two measurements of the build itself:

  compile    Trainer() in a fresh process with a cold cache: code generation + compiler time
  cache-hit  Trainer() in a fresh process with the cache warm (must not run the compiler)
"""
import os
import random
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from common import REG, child_main, measure  # noqa: E402

FLOP_OPS = ('add', 'sub', 'mul', 'div')


def sample_loss(model, x, y):
    """micrograd's demo: the max-margin loss of one row, relu(1 - y * score)."""
    return (1 + -y * model(x)).relu()


def l2(parameters):
    return REG * sum(p * p for p in parameters)


def make_model(spec):
    from micrograd.nn import MLP
    random.seed(1337)
    model = MLP(2, spec['sizes'])
    model.set_parameter_values(spec['params0'])
    return model


def count_flops(trainer, n_rows):
    """Floating-point operations of one step, counted from the optimized programs: the
    add/sub/mul/div of one row times the rows, the batch term once, and the update
    (scale sums by 1/n, add the batch term's gradient, p -= lr * g: 4 per parameter)."""
    def count(program):
        return sum(1 for i in program.instrs if i.op.name in FLOP_OPS)
    per_row = count(trainer.sample)
    P = trainer.n_params
    return {'per_row': per_row, 'instrs_per_row': len(trainer.sample.instrs),
            'extra': count(trainer.extra), 'update': 4 * P + 2,
            'per_step': per_row * n_rows + count(trainer.extra) + 4 * P + 2}


def run_engine(spec):
    from micrograd.engine import Value
    model = make_model(spec)
    params = model.parameters()
    X, Y = spec['X'], spec['y']

    def fresh():
        model.set_parameter_values(spec['params0'])
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

    return measure(spec, fresh, step, lambda m: m.parameter_values())


def run_python(spec):
    from codegen.train import Trainer
    model = make_model(spec)
    start = time.perf_counter()
    trainer = Trainer(model, sample_loss, 2, batch_loss=l2, backend='python')
    setup = time.perf_counter() - start
    rows = [list(x) + [t] for x, t in zip(spec['X'], spec['y'])]

    def fresh():
        model.set_parameter_values(spec['params0'])
        return trainer

    result = measure(spec, fresh, lambda tr, lr: tr.step(rows, lr),
                     lambda tr: model.parameter_values())
    result['setup_seconds'] = setup
    return result


def run_c(spec, fast):
    from codegen.train import Trainer
    model = make_model(spec)
    start = time.perf_counter()
    try:
        trainer = Trainer(model, sample_loss, 2, batch_loss=l2, fast=True) if fast else \
            Trainer(model, sample_loss, 2, batch_loss=l2)
    except TypeError as e:
        if fast and 'fast' in str(e):
            return {'na': 'n/a (not built yet)'}
        raise
    setup = time.perf_counter() - start
    batch = trainer.rows([list(x) + [t] for x, t in zip(spec['X'], spec['y'])])
    P = trainer.n_params

    def fresh():
        trainer.params[:P] = spec['params0']
        trainer.velocity[:P] = [0.0] * P
        return trainer

    result = measure(spec, fresh, lambda tr, lr: tr.step(batch, lr),
                     lambda tr: list(tr.params[:P]))
    result['setup_seconds'] = setup
    result['flops'] = count_flops(trainer, len(spec['X']))
    result['info'] = (f"lanes {getattr(trainer, 'lanes', 1)}, threads "
                      f"{getattr(trainer, 'threads', 1)}")
    return result


# ---- build cost ------------------------------------------------------------------------------

class CompilerWatch:
    """Counts every child process started (a cache hit must start none) and how long at least
    one of them was running (wall time: codegen.build compiles one translation unit while it
    generates the next, so compiler and code generation overlap)."""

    def __init__(self):
        self.started, self.spans, self.running = [], [], {}
        original_init, original_wait = subprocess.Popen.__init__, subprocess.Popen.wait
        watch = self

        def init(self, args, *rest, **kwargs):
            watch.started.append(os.path.basename(str(args[0] if isinstance(args, (list, tuple))
                                                      else args).split()[0]))
            watch.running[id(self)] = time.perf_counter()
            return original_init(self, args, *rest, **kwargs)

        def wait(self, *args, **kwargs):
            try:
                return original_wait(self, *args, **kwargs)
            finally:
                t0 = watch.running.pop(id(self), None)
                if t0 is not None and self.returncode is not None:
                    watch.spans.append((t0, time.perf_counter()))

        subprocess.Popen.__init__, subprocess.Popen.wait = init, wait

    @property
    def runs(self):
        return len(self.started)

    @property
    def seconds(self):
        """Wall time during which at least one child process ran."""
        total, end = 0.0, None
        for t0, t1 in sorted(self.spans):
            if end is None or t0 > end:
                total, end = total + t1 - t0, t1
            elif t1 > end:
                total, end = total + t1 - end, t1
        return total


def digits_model():
    """The digits CNN of examples/digits_cnn.py, or None with a reason if it is not there."""
    path = os.path.join(os.path.dirname(HERE), 'examples', 'digits_cnn.py')
    if not os.path.exists(path):
        return None, 'examples/digits_cnn.py does not exist'
    import importlib.util
    module_spec = importlib.util.spec_from_file_location('digits_cnn', path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    missing = [n for n in ('Digits', 'cross_entropy', 'N_CLASSES') if not hasattr(module, n)]
    if missing:
        return None, f'examples/digits_cnn.py has no {", ".join(missing)}'
    model = module.Digits(random.Random(0))
    return (model, module.cross_entropy, 64, {'n_targets': module.N_CLASSES}), ''


def run_build(spec):
    """Time Trainer() in this fresh process; the parent sets MICROGRAD_CACHE (cold or warm)."""
    import codegen.train as train
    if spec['model'] == 'digits':
        built, why = digits_model()
        if built is None:
            return {'skipped': why}
        model, loss, n_features, options = built
        batch_loss = None
    else:
        model, loss, n_features, options = make_model(spec), sample_loss, 2, {}
        batch_loss = l2
    if spec.get('fast'):
        options['fast'] = True
    lookup = {'seconds': 0.0}
    original = train.compile_source

    def timed_compile_source(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            lookup['seconds'] += time.perf_counter() - t0

    train.compile_source = timed_compile_source
    watch = CompilerWatch()
    start = time.perf_counter()
    try:
        trainer = train.Trainer(model, loss, n_features, batch_loss=batch_loss, **options)
    except TypeError as e:
        if options.get('fast') and 'fast' in str(e):
            return {'na': 'n/a (not built yet)'}
        raise
    total = time.perf_counter() - start
    return {'total': total, 'compiler': watch.seconds, 'compiler_runs': watch.runs,
            'processes': watch.started, 'compile_source': lookup['seconds'],
            'instrs_per_row': len(trainer.sample.instrs), 'params': trainer.n_params,
            'source_chars': sum(map(len, getattr(trainer, 'source', None) or ['']))}


def run(spec):
    peer = spec['peer']
    if peer == 'engine':
        return run_engine(spec)
    if peer == 'python':
        return run_python(spec)
    if peer in ('c', 'c-fast'):
        return run_c(spec, peer == 'c-fast')
    if peer == 'build':
        return run_build(spec)
    raise ValueError(f'unknown peer {peer!r}')


if __name__ == '__main__':
    child_main(run)
