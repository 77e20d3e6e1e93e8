"""codegen.save: source a user can ship. The saved Python runs with nothing of this project on
the path, and the saved C compiles with a plain `cc` next to a main() of the user's own."""
import itertools
import os
import subprocess
import sys

import pytest

import codegen
from codegen_support import assert_same, run_c_program
from micrograd import Value

SPECIAL_ROWS = list(itertools.product([0.0, -1.5, 2.0, float('inf'), float('nan'), 1e300],
                                      repeat=2))


def graph(x, y):
    """Uses every helper the Python needs (div, log, pow, exp, sigmoid, sign) and specials."""
    a = (x / y).relu() + abs(x) * float('inf') - (-x).sigmoid() ** 3
    return a.step() + (y.log() - 1e300) * 5e-324 + (2.0 ** x).exp() * x.tanh()


def program_and_engine():
    x, y = Value(1.0, label='x'), Value(2.0, label='y')
    program = codegen.optimize(codegen.grad(codegen.trace(graph(x, y), [x, y], 'model')))

    def engine(row):
        x, y = Value(row[0]), Value(row[1])
        out = graph(x, y)
        out.backward()
        return out.data, x.grad, y.grad
    return program, engine


def parse_rows(text):
    return [tuple(float(v) for v in line.split()) for line in text.splitlines()]


def test_saved_python_runs_without_the_project(tmp_path):
    program, engine = program_and_engine()
    saved = codegen.save(program, str(tmp_path / 'model.py'))
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    script = ('import runpy, sys\nfrom math import inf, nan\n'
              'for project in ("micrograd", "codegen"):\n'
              '    try:\n'
              '        __import__(project)\n'
              '        sys.exit(project + " is importable: the environment is not clean")\n'
              '    except ImportError:\n'
              '        pass\n'
              'model = runpy.run_path(sys.argv[1])["model"]\n'
              f'for row in {SPECIAL_ROWS!r}:\n'
              '    print(*map(repr, model(*row)))\n')
    # -I: no PYTHONPATH, no user site-packages, no current directory on sys.path; -S: no
    # site-packages either (CI installs this project there with pip install -e).
    ran = subprocess.run([sys.executable, '-I', '-S', '-c', script, saved], cwd=elsewhere,
                         env={'PATH': os.environ.get('PATH', '')}, capture_output=True,
                         text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    printed = parse_rows(ran.stdout)
    assert len(printed) == len(SPECIAL_ROWS)
    for row, got in zip(SPECIAL_ROWS, printed):
        assert_same(engine(row), got, f'saved Python on {row}')


MAIN_C = r'''
#include <stdio.h>
#include "model.h"

int main(void) {
  static const double rows[][2] = {ROWS};
  const long n = sizeof rows / sizeof rows[0];
  double out[3], batch[3 * sizeof rows / sizeof rows[0]], sum[3];
  long i;
  int k;
  if (model_n_in() != 2 || model_n_params() != N_PARAMS || model_n_out() != 3) return 1;
  for (i = 0; i < n; i++) {                   /* one row per call */
    model(rows[i], out);
    for (k = 0; k < 3; k++) printf("%.17g ", out[k]);
    printf("\n");
  }
  model_batch(rows[0], &rows[0][N_PARAMS], batch, N_PARAMS ? 1 : n);
  model_sum(rows[0], &rows[0][N_PARAMS], sum, N_PARAMS ? 1 : n);
  for (k = 0; k < 3; k++) printf("%.17g ", batch[k]);
  printf("\n");
  for (k = 0; k < 3; k++) printf("%.17g ", sum[k]);
  printf("\n");
  return 0;
}
'''


@pytest.mark.needs_cc
@pytest.mark.parametrize('n_params', [0, 1])
def test_saved_c_compiles_with_plain_cc_and_a_main_of_ones_own(n_params, tmp_path):
    program, engine = program_and_engine()
    codegen.save(program, str(tmp_path / 'model.c'), n_params=n_params)
    assert (tmp_path / 'model.h').exists()
    rows = ', '.join('{%s}' % ', '.join(c_double(v) for v in row) for row in SPECIAL_ROWS)
    main = tmp_path / 'main.c'
    main.write_text(f'#include <math.h>\n#define ROWS {rows}\n#define N_PARAMS {n_params}\n'
                    + MAIN_C)
    printed = parse_rows(run_c_program([main, tmp_path / 'model.c'], tmp_path))
    expected = [engine(row) for row in SPECIAL_ROWS]
    assert len(printed) == len(SPECIAL_ROWS) + 2
    for row, want, got in zip(SPECIAL_ROWS, expected, printed):
        assert_same(want, got, f'saved C on {row}')
    batch, total = printed[len(SPECIAL_ROWS):]
    assert_same(expected[0], batch, 'saved C batch, row 0')
    if n_params == 0:
        ordered = [0.0, 0.0, 0.0]
        for want in expected:
            ordered = [t + w for t, w in zip(ordered, want)]
        assert_same(tuple(ordered), total, 'saved C sum over rows')


def c_double(v):
    if v != v:
        return 'NAN'
    if v in (float('inf'), float('-inf')):
        return 'INFINITY' if v > 0 else '-INFINITY'
    return repr(v)


def test_save_writes_only_python_or_c(tmp_path):
    program, _ = program_and_engine()
    with pytest.raises(ValueError, match='.py or .c'):
        codegen.save(program, str(tmp_path / 'model.js'))


@pytest.mark.parametrize('suffix', ['.py', '.c'])
def test_save_accepts_a_pathlib_path(suffix, tmp_path):
    program, _ = program_and_engine()
    codegen.save(program, tmp_path / f'model{suffix}')
    assert (tmp_path / f'model{suffix}').read_text().startswith(('# Generated', '/* Generated'))
