"""Compiled training: a micrograd model's per-sample loss, its gradient and the SGD update in C.

The model is traced once with its parameters and one data row as inputs. The generated C sums
the loss and parameter gradients over a batch of rows, adds an optional batch-level term (such
as an L2 penalty, a function of the parameters alone), applies `micrograd.optim`'s update rules
(clipping by value, then by global norm, weight decay, momentum) and writes the parameters back,
all in one call per step: no Python runs per sample.

Numbers: the forward loss equals the engine's bit for bit (rows are summed in order, then
scaled by 1/n). The gradients differ from the engine's in the last bits, because the engine
scales each row's gradient by 1/n before summing rows (in reverse order) and C sums first.
"""
import contextlib
import ctypes
import functools
import gc
import hashlib
import math
import random
import sys
import time

from micrograd.engine import Value

from micrograd.optim import SGD, clip_grad_norm, clip_grad_value, grad_norm

from codegen import abi, emit_loops, loops, validate
from codegen.build import (DEFAULT_FLAGS, FAST_FLAGS, build, cached_library, compile_source,
                           load_library, remember_library)
from codegen.emit_c import to_c
from codegen.ir import check, format as format_program
from codegen.lift import lift
from codegen.grad import grad
from codegen.lower import trace
from codegen.passes import optimize

# The opt-in fast build: the loop level (rows in the host's vector lanes) on both cores.
FAST_LANES, FAST_THREADS = 4, 2

# The batch-level term runs once per step, not once per row, so its build time counts more than
# its speed. It takes the loop level when that leaves at most this many scalar statements (an
# L2 penalty leaves one: families over the parameters and one sum); else it is straight-line
# code up to this many instructions, and above, table-driven. (W1's L2 term, 1,686
# instructions, took gcc -O3 0.6 s as straight-line code and 0.1 s as a table; on the loop
# level, W2's took 30 us a step as a table and 4 us as loops.)
EXTRA_STRAIGHT_LINE_LIMIT = 500

LIFTED_MAP_LIMIT = 10 * loops.MAP_LIMIT  # see _sample_source

EXTRA_NAME = 'extra_term'  # the batch-level term's program

STEP_C = '''
/* One training step over n rows of `data`: the loss before the update is returned, the
 * parameters are updated in place. settings: lr, momentum, weight_decay, clip_value (<0: off),
 * clip_norm (<0: off), mean (1: average over rows, 0: sum). Sets status[0] = 1 (and changes
 * nothing) when the gradient norm is not finite and clipping by norm was asked, 2 when memory
 * for the gradients cannot be had (they are on the heap: LeNet-5 would need 1.5 MB of stack). */
double train_step(double *params, double *velocity, const double *data, long n,
                  const double *settings, int *status) {
  double *sum = malloc(3 * (P + 1) * sizeof *sum), *extra = sum + P + 1, *g = extra + P + 1;
  const double lr = settings[0], momentum = settings[1], decay = settings[2];
  const double clip_value = settings[3], clip_norm = settings[4];
  const double scale = settings[5] != 0.0 ? 1.0 / (double)n : 1.0;
  double loss, norm = 0.0;
  long j;
  status[0] = 0;
  if (!sum) { status[0] = 2; return NAN; }
  SAMPLE_SUM(params, data, sum, n);
  loss = sum[0] * scale;
  for (j = 0; j < P; j++) g[j] = sum[1 + j] * scale;
  if (HAS_EXTRA) {
    EXTRA(params, extra);
    loss = loss + extra[0];
    for (j = 0; j < P; j++) g[j] = g[j] + extra[1 + j];
  }
  if (clip_value >= 0.0)
    for (j = 0; j < P; j++)
      g[j] = g[j] < -clip_value ? -clip_value : (g[j] > clip_value ? clip_value : g[j]);
  if (clip_norm >= 0.0) {
    for (j = 0; j < P; j++) norm += g[j] * g[j];
    norm = sqrt(norm);
    if (!isfinite(norm)) { status[0] = 1; free(sum); return loss; }
    if (norm > clip_norm)
      for (j = 0; j < P; j++) g[j] *= clip_norm / norm;
  }
  for (j = 0; j < P; j++) {
    double step = g[j];
    if (decay != 0.0) step = step + decay * params[j];
    if (momentum != 0.0) step = velocity[j] = momentum * velocity[j] + step;
    params[j] -= lr * step;
  }
  free(sum);
  return loss;
}
'''


def step_source(sample, extra, n_params, has_extra):
    """STEP_C with what it needs to call the two programs by their own names, `sample` and
    `extra` (the prototype comes from the ABI); the caller puts it after `extra`'s code in one
    translation unit.
    Without a batch-level term there is no such program: a function doing nothing stands in
    (a program of n_params zero gradients was 61,706 statements for LeNet-5: gcc took 58 s)."""
    stub = '' if has_extra else (f'static void {extra}(const double *in, double *out) '
                                 '{ (void)in; (void)out; }\n')
    return (f'{abi.prototype(sample, "_sum")};\n{stub}'
            f'#define SAMPLE_SUM {sample}_sum\n#define EXTRA {extra}\n'
            f'#define P {n_params}\n#define HAS_EXTRA {int(has_extra)}\n' + STEP_C)


class Trainer:
    """Train `model` on rows (features..., targets...) with the loss `sample_loss(model, x, y)`;
    y is one Value (n_targets=1) or a list of n_targets Values (e.g. a one-hot class).

    batch_loss(parameters) -> Value is added once per step (e.g. an L2 penalty);
    reduction='mean' averages the sample losses over the batch, 'sum' adds them.
    fast=True opts into the loop level for every program (rows in SIMD lanes) and both cores
    (FAST_FLAGS: OpenMP): the same bits as the default build, since rows are still added up in
    order. Programs above emit_c.FAST_LIMIT instructions warn and run table-driven.
    """

    def __init__(self, model, sample_loss, n_features, batch_loss=None, reduction='mean',
                 backend='c', fast=False, flags=None, cc=None, n_targets=1, loop_level=None):
        if reduction not in ('mean', 'sum'):
            raise ValueError(f"reduction must be 'mean' or 'sum', not {reduction!r}")
        self.model, self.mean = model, reduction == 'mean'
        self.parameters = list(model.parameters())
        n_features = validate.count(n_features, 'n_features', 0)
        n_targets = validate.count(n_targets, 'n_targets', 1)
        self.n_params, self.n_features = len(self.parameters), n_features
        self.n_targets, self.row_size = n_targets, n_features + n_targets
        with _collector_paused():
            self._trace(sample_loss, batch_loss)
        self.backend, self.has_extra, self.cc = backend, batch_loss is not None, cc
        self.loop_level = loop_level
        self.params = [p.data for p in self.parameters]
        if backend == 'python':
            self._python_functions()
            return
        if backend != 'c':
            raise ValueError(f"backend must be 'c' or 'python', not {backend!r}")
        self.lanes, self.threads = (FAST_LANES, FAST_THREADS) if fast else (1, 1)
        self.flags = flags or (FAST_FLAGS if fast else DEFAULT_FLAGS)
        with _collector_paused():
            self.path = self._library()
        self._bind(load_library(self.path, rebuild=self._library))  # heals a bad cache file
        self.params = (ctypes.c_double * max(self.n_params, 1))(*self.params)
        self.velocity = (ctypes.c_double * max(self.n_params, 1))()

    def _trace(self, sample_loss, batch_loss):
        """Record the model once, with its parameters and one row's features and targets as
        inputs: the sample loss and the batch-level term."""
        features = [Value(0.0, label=f'x{i}') for i in range(self.n_features)]
        targets = [Value(0.0, label=f'y{i}') for i in range(self.n_targets)]
        loss = sample_loss(self.model, features, targets[0] if self.n_targets == 1 else targets)
        loss = validate.loss_value(loss, 'sample_loss')
        self.traced_sample = trace(loss, self.parameters + features + targets, 'sample')
        if batch_loss:  # (else traced_extra is made if asked for: see there)
            extra = validate.loss_value(batch_loss(self.parameters), 'batch_loss')
            self.traced_extra = trace(extra, self.parameters, EXTRA_NAME)

    @functools.cached_property
    def traced_extra(self):
        """Without a batch-level term: 0.0, as a program of the parameters. Only the Python
        backend and `extra` ask for it; the C step has a stub instead, and the cache recipe
        does not list it (tracing it named LeNet-5's 61,706 parameters again: 0.13 s)."""
        return trace(Value(0.0), self.parameters, EXTRA_NAME)

    # The programs are derived on first use: a cache hit needs only the traced ones.
    @functools.cached_property
    def sample(self):
        """Per-sample loss and its gradient with respect to the parameters, optimised."""
        return _gradient_program(self.traced_sample, self.n_params)

    @functools.cached_property
    def extra(self):
        """The batch-level term and its gradient, optimised."""
        return _gradient_program(self.traced_extra, self.n_params)

    @functools.cached_property
    def predictor(self):
        """The forward pass alone (model outputs for one row of features), optimised."""
        features = [Value(0.0, label=f'x{i}') for i in range(self.n_features)]
        score = self.model(features)
        return optimize(trace(score if isinstance(score, list) else [score],
                              self.parameters + features, 'predict'))

    def _library(self):
        """The compiled training step: found through the traced programs when it was built
        before (no gradient, optimisation or emission then), else generated and compiled."""
        # without a batch-level term its program is 0.0: has_extra in the tuple says so
        extra = format_program(self.traced_extra) if self.has_extra else ''
        listing = '\n'.join([format_program(self.traced_sample), extra,
                             repr((self.n_params, self.has_extra, self.lanes, self.threads,
                                   self.loop_level)),
                             STEP_C])
        # its hash stands for it: the cache key would serialise and hash LeNet-5's 31 MB twice
        recipe = hashlib.sha256(listing.encode()).hexdigest()
        path = cached_library(recipe, self.flags, self.cc)
        if path is None:
            self.source = []  # each unit compiles while the next one is generated
            path = compile_source(self._units(), self.flags, self.cc)
            remember_library(recipe, self.flags, self.cc, path)
        return path

    def _python_functions(self):
        """The generated Python for the three programs; the update reuses micrograd.optim."""
        self.sample_fn = build(self.sample, 'python', self.n_params)
        self.extra_fn = build(self.extra, 'python')
        self.optimizer = SGD(self.parameters, lr=0.0)

    def _python_step(self, batch, lr, momentum, weight_decay, clip_value, clip_norm):
        params = [p.data for p in self.parameters]
        sums = self.sample_fn.sum(params, batch.as_lists())
        scale = 1.0 / len(batch) if self.mean else 1.0
        loss, extra = sums[0] * scale, self.extra_fn(*params)
        for p, total, term in zip(self.parameters, sums[1:], extra[1:]):
            p.grad = total * scale + term if self.has_extra else total * scale
        if self.has_extra:
            loss = loss + extra[0]
        if clip_value is not None:
            clip_grad_value(self.parameters, clip_value)
        if clip_norm is not None:
            if not math.isfinite(grad_norm(self.parameters)):
                raise ValueError(validate.NORM_NOT_FINITE)
            clip_grad_norm(self.parameters, clip_norm)
        self.optimizer.lr, self.optimizer.momentum = lr, momentum
        self.optimizer.weight_decay = weight_decay
        self.optimizer.step()
        return loss

    def _source(self, has_extra):
        """The translation units: the per-sample program (its big tables apart), and the
        batch-level term with the step that calls both."""
        yield from self._sample_source()
        extra = self._extra_source() if has_extra else '#include <math.h>\n#include <stdlib.h>\n'
        yield extra + step_source(self.traced_sample.name, EXTRA_NAME, self.n_params, has_extra)

    def _extra_source(self):
        """The batch-level term's C: the loop level when it finds the term's families over
        the parameters (an L2 penalty: the squares, their sum, the gradients), else scalar."""
        if self.loop_level is not False:
            lowered = loops.lower(check(self.extra), self.n_params)  # names reach the C
            if sum(isinstance(s, loops.Map) for s in lowered.body) <= EXTRA_STRAIGHT_LINE_LIMIT:
                return emit_loops.to_c(lowered)
        return to_c(self.extra, straight_line_limit=EXTRA_STRAIGHT_LINE_LIMIT)

    def _units(self):
        """The units of `_source`, each also kept in self.source."""
        for text in self._source(self.has_extra):
            self.source.append(text)
            yield text

    def _sample_source(self):
        """The per-sample program's C, as a list of units. When its dense layers are found in
        the forward trace, the loop level is built from that (codegen/lift.py) and no scalar
        gradient program is made at all (W2: 26k instructions fewer to differentiate,
        optimise and lower); else from the gradient program, as `to_c` chooses."""
        if self.loop_level is not False:
            # no `check` first: a trace passes it by construction (see lower._refuse_op),
            # and it walked LeNet-5's 850k instructions to find nothing (0.6 s)
            lifted = lift(self.traced_sample, self.n_params, traced=True)
            # a higher limit on the scalar statements left than to_c's: the other way needs
            # the scalar gradient program, which costs more to build than they cost to compile
            # (LeNet-5: 2.5M instructions, against 1,400 statements)
            if lifted is not None and (self.loop_level or loops.has_structure(
                    lifted, map_limit=LIFTED_MAP_LIMIT)):
                return emit_loops.to_units(lifted, threads=self.threads)
        return [to_c(self.sample, self.n_params, lanes=self.lanes, threads=self.threads,
                     loop_level=self.loop_level)]

    def _bind(self, library):
        # No argtypes: every argument is a ctypes object made beforehand (the parameter
        # arrays, the batch's pointer and count, the status's reference), passed as it is.
        # Converting six arguments on each call took 0.8 us of a 13 us W1 step.
        self._step = library.train_step
        self._step.argtypes, self._step.restype = None, ctypes.c_double
        self._settings, self._status = (ctypes.c_double * 6)(), ctypes.c_int(0)
        self._status_address = ctypes.byref(self._status)

    @functools.cached_property
    def predict_fn(self):
        """The forward pass alone, built when first asked for (training does not need it)."""
        if self.backend == 'python':
            return build(self.predictor, 'python', self.n_params)
        return build(self.predictor, 'c', self.n_params, DEFAULT_FLAGS, self.cc)

    def rows(self, rows):
        """Rows (features..., targets...) checked and converted once, to pass to `step` many
        times: a `validate.Rows` on every backend. Numbers as `Value` takes them (not bools),
        finite; a 2-D numpy array of float64 is used as it is."""
        return validate.rows(rows, self.row_size)

    def step(self, batch, lr, momentum=0.0, weight_decay=0.0, clip_value=None, clip_norm=None):
        """One SGD step on `batch` (rows, or `rows(...)`); returns the loss before the update.
        clip_value, clip_norm: None (off) or >= 0. Everything is checked before any number
        changes: a refused step leaves parameters and momentum as they were."""
        batch = self.rows(batch)
        settings = validate.step_settings(lr, momentum, weight_decay, clip_value, clip_norm)
        if not len(batch):
            raise ValueError('the batch is empty: a step needs at least one row')
        if self.backend == 'python':
            return self._python_step(batch, *settings)
        lr, momentum, weight_decay, clip_value, clip_norm = settings
        # the buffers are reused: a W1 step is 16 us of C, and making them took 1 us more
        self._settings[:] = (lr, momentum, weight_decay, -1.0 if clip_value is None else
                             clip_value, -1.0 if clip_norm is None else clip_norm, self.mean)
        pointer, count = batch.c_arguments
        loss = self._step(self.params, self.velocity, pointer, count, self._settings,
                          self._status_address)
        if self._status.value == 2:
            raise MemoryError(f'no memory for the {self.n_params} gradients of a step')
        if self._status.value:
            raise ValueError(validate.NORM_NOT_FINITE)
        return loss

    def predict(self, features):
        """Model outputs for each row of features, computed with the current parameters."""
        rows = validate.rows(features, self.n_features, 'feature row', finite=False).as_lists()
        return self.predict_fn.batch(list(self._current_parameters()), rows)

    def _current_parameters(self):
        return [p.data for p in self.parameters] if self.backend == 'python' else self.params

    def fit(self, rows, epochs, lr, batch_size=None, shuffle=None, metric=None, verbose=True,
            **update):
        """Epochs of mini-batch SGD. lr is a number or a function of the step index.
        shuffle: a random.Random (or seed) to reorder rows each epoch; metric(trainer, rows)
        -> float, reported per epoch under the function's name. batch_size: None for all rows
        in one batch, else a whole number >= 1 (more than the rows: one batch of all of them).
        Everything, every step's rate included, is checked before the first step. Returns the
        list of per-step losses."""
        data = self.rows(rows)
        epochs, batch_size, rates = validate.fit_plan(len(data), epochs, lr, batch_size, update)
        rng = random.Random(shuffle) if isinstance(shuffle, int) else shuffle
        order = list(range(len(data)))
        losses, step = [], 0
        batches = data.batches(batch_size)
        for epoch in range(epochs):
            if rng is not None:
                rng.shuffle(order)
                batches = data.take(order).batches(batch_size)
            start = time.perf_counter()
            for batch in batches:
                losses.append(self.step(batch, rates[step], **update))
                step += 1
            seconds = time.perf_counter() - start
            if verbose:
                name = getattr(metric, '__name__', 'metric')
                shown = f', {name} {metric(self, data.as_lists()):.4f}' if metric else ''
                print(f'epoch {epoch + 1}/{epochs}: loss {losses[-1]:.6f}{shown}, '
                      f'{len(data) / seconds:,.0f} samples/s', file=sys.stdout)
        return losses

    def write_back(self):
        """Copy the trained parameters into the micrograd model's Values (the Python backend
        updates them in place already)."""
        if self.backend == 'python':
            return self.model
        for p, value in zip(self.parameters, self.params):
            p.data = value
        return self.model


@contextlib.contextmanager
def _collector_paused():
    """Python's cyclic garbage collector off while a model is traced and its program built.
    Both only add objects that stay alive until they end (LeNet-5: 850k Values, then as many
    instructions and the maps over them), and the collector would walk them again and again
    to find no garbage: 5 s of LeNet-5's 25 s cold build. Reference counting still frees
    what can be freed; cycles wait for the next collection after the build."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _gradient_program(program, n_params):
    """The program plus gradients of its output with respect to its first n_params inputs."""
    return optimize(grad(program, program.inputs[:n_params]))
