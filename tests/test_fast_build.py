"""The opt-in fast build (to_c's lanes and threads: the loop level, its rows in the vector lanes,
rows then sums split across cores) gives every row the engine's bits, and its `sum` is the
default build's, bit for bit: rows added in order, whoever computed them.

Every option is built through the public `codegen.to_c(program, n_params, lanes=, threads=)`
and compared bit for bit (`exact.same`) with the engine, on random graphs, on graphs where an
input feeds a node twice with partials of opposite sign, and on rows with every special value.
"""
import ctypes
import os
import random
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import codegen
from codegen import emit_loops
from codegen_support import (assert_same, build_c_with, build_module, emit_c_module, engine,
                             ordered_sum, traced, use_private_cache)
from micrograd.engine import Value
from micrograd.nn import MLP
from strategies import SPECIALS, cancelling_recipes, mixed_finite_floats, recipes

pytestmark = pytest.mark.needs_cc

# (lanes, threads): every vector width, alone and with threads.
OPTIONS = [(2, 1), (4, 1), (8, 1), (1, 2), (2, 2), (4, 2), (8, 2)]
# A second thread starts from MG_MIN_CHUNKS_PER_THREAD (4) chunks each: 8 chunks of 16 rows
# (scalar programs) or of 32 (with layers).
ROWS_FOR_TWO_THREADS = 8 * 32


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    return use_private_cache(tmp_path, monkeypatch)


def check_option(recipe, n_params, params, rows, lanes, threads):
    program = codegen.optimize(traced(recipe))
    compiled = build_c_with(program, n_params, lanes, threads)
    expected = [engine(recipe, tuple(params) + tuple(row)) for row in rows]
    what = f'lanes={lanes} threads={threads}, params {params}\n{recipe}'
    for row, want, got in zip(rows, expected, compiled.batch(params, rows)):
        assert_same(want, got, f'batch row {row}, {what}')
    assert_same(expected[0], compiled(*params, *rows[0]), f'single call, {what}')
    # Sums over every prefix length that changes the shape: a partial chunk, a whole one, the
    # rows two threads share.
    for n in sorted({1, 31, 32, 33, len(rows)}):
        assert_same(ordered_sum(expected[:n]), compiled.sum(params, rows[:n]),
                    f'sum of {n} rows, {what}')


ROW_VALUES = st.sampled_from(SPECIALS) | mixed_finite_floats()


@pytest.mark.parametrize('lanes, threads', OPTIONS)
@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(recipe=recipes(max_inputs=3) | cancelling_recipes(), data=st.data())
def test_every_option_gives_every_row_the_engines_bits(lanes, threads, recipe, data,
                                                       private_cache):
    n_params = data.draw(st.integers(0, recipe.n_inputs - 1), label='n_params')
    params = data.draw(st.lists(ROW_VALUES, min_size=n_params, max_size=n_params),
                       label='params')
    n_rows = data.draw(st.sampled_from([3, 40, ROWS_FOR_TWO_THREADS + 5]), label='n_rows')
    row = st.lists(ROW_VALUES, min_size=recipe.n_inputs - n_params,
                   max_size=recipe.n_inputs - n_params)
    rows = data.draw(st.lists(row, min_size=n_rows, max_size=n_rows), label='rows')
    check_option(recipe, n_params, params, rows, lanes, threads)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(recipe=recipes(max_inputs=3) | cancelling_recipes(), data=st.data())
def test_statements_run_from_tables_give_every_row_the_engines_bits(recipe, data, private_cache,
                                                                    monkeypatch):
    """Past MAP_TABLE_LIMIT statements the loop level runs them as data (a switch per op):
    here every program does, and still gets the engine's bits, rows and sums."""
    monkeypatch.setattr(emit_loops, 'MAP_TABLE_LIMIT', 0)
    n_params = data.draw(st.integers(0, recipe.n_inputs - 1), label='n_params')
    params = data.draw(st.lists(ROW_VALUES, min_size=n_params, max_size=n_params),
                       label='params')
    row = st.lists(ROW_VALUES, min_size=recipe.n_inputs - n_params,
                   max_size=recipe.n_inputs - n_params)
    rows = data.draw(st.lists(row, min_size=40, max_size=40), label='rows')
    check_option(recipe, n_params, params, rows, 4, 1)
    assert '_table(w, ' in codegen.to_c(codegen.optimize(traced(recipe)), n_params, lanes=4)


def test_past_the_fast_limit_lanes_and_threads_say_they_are_not_used(monkeypatch):
    program, n_params = sample_program()
    monkeypatch.setattr(emit_c_module, 'FAST_LIMIT', 10)
    with pytest.warns(UserWarning, match='runs table-driven on one thread'):
        source = codegen.to_c(program, n_params, threads=2)
    assert 'pragma omp' not in source


def sample_program():
    """A small model's per-sample loss and gradient, with every kind of op the lanes handle."""
    model = MLP(2, [3, 2], activation='tanh', rng=random.Random(0))
    x, y = [Value(0.0, label='x0'), Value(0.0, label='x1')], Value(0.0, label='y')
    out = model(x)
    loss = ((out[0] - y) ** 2 + (out[1].relu() + 1.0).log() + out[0].sigmoid().abs() +
            (out[1] / 2.0).exp().step() + y ** 3 + (x[0] ** x[1]))
    params = model.parameters()
    program = codegen.trace(loss, params + x + [y], 'sample')
    return codegen.optimize(codegen.grad(program, program.inputs[:len(params)])), len(params)


@pytest.mark.parametrize('lanes, threads', OPTIONS)
@pytest.mark.parametrize('n_rows', [1, 3, 33, 130, 333])
def test_a_models_loss_and_gradient_get_the_default_builds_bits_rows_and_sums(
        lanes, threads, n_rows, private_cache):
    program, n_params = sample_program()
    default, fast = build_c_with(program, n_params), build_c_with(program, n_params, lanes,
                                                                  threads)
    rng = random.Random(n_rows)
    params = [rng.uniform(-1, 1) for _ in range(n_params)]
    rows = [[rng.uniform(0.1, 2.0), rng.uniform(-2, 2), rng.uniform(-1, 1)]
            for _ in range(n_rows)]
    expected = default.batch(params, rows)
    for row, want, got in zip(rows, expected, fast.batch(params, rows)):
        assert_same(want, got, f'lanes={lanes} threads={threads}, row {row}')
    assert_same(default.sum(params, rows), fast.sum(params, rows),
                f'lanes={lanes} threads={threads}, sum of {n_rows} rows')


def test_lanes_must_be_a_vector_width():
    program, n_params = sample_program()
    with pytest.raises(ValueError, match='lanes must be 1, 2, 4 or 8'):
        codegen.to_c(program, n_params, lanes=3)


def test_lanes_and_threads_need_the_loop_level():
    program, n_params = sample_program()
    with pytest.raises(ValueError, match="need loop_level=None or True"):
        codegen.to_c(program, n_params, lanes=4, loop_level=False)


SPIN_WITNESS = r'''
#include <stdlib.h>
#include <string.h>
static char seen[64] = "unset";
/* Runs when the library is loaded, as libgomp's own set-up does: what it would read. */
__attribute__((constructor)) static void look(void) {
  const char *spin = getenv("GOMP_SPINCOUNT");
  if (spin) strncpy(seen, spin, sizeof seen - 1);
}
const char *spin_seen(void) { return seen; }
const char *micrograd_cache_key(void) { return "%s"; }
'''


@pytest.mark.parametrize('user_setting', [None, ('GOMP_SPINCOUNT', '7'),
                                          ('OMP_WAIT_POLICY', 'active')])
def test_openmp_reads_a_short_spin_when_our_library_loads(user_setting, tmp_path, monkeypatch):
    """libgomp's default spin at a barrier lasts milliseconds: with another process on one
    core, the two threads of the fast build shared the other and a step took 30x longer. A
    library loaded through load_library sees GOMP_SPINCOUNT=10000 unless the user chose a
    wait policy; the environment is left as it was."""
    monkeypatch.delenv('GOMP_SPINCOUNT', raising=False)
    monkeypatch.delenv('OMP_WAIT_POLICY', raising=False)
    if user_setting:
        monkeypatch.setenv(*user_setting)
    key = 'f' * 32
    source, library = tmp_path / 'witness.c', tmp_path / f'{key}.so'
    source.write_text(SPIN_WITNESS % key)
    subprocess.run(['cc', '-shared', '-fPIC', '-o', str(library), str(source)], check=True)
    loaded = build_module.load_library(str(library))
    loaded.spin_seen.restype = ctypes.c_char_p
    expected = {None: b'10000', ('GOMP_SPINCOUNT', '7'): b'7'}.get(user_setting, b'unset')
    assert loaded.spin_seen() == expected
    assert os.environ.get('GOMP_SPINCOUNT') == (user_setting[1] if user_setting and
                                                user_setting[0] == 'GOMP_SPINCOUNT' else None)
