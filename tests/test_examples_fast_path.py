"""The fast-path examples run as a new user runs them, and print what they promise."""
import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest

import needs

ROOT = pathlib.Path(__file__).parent.parent


def run(script, *args, timeout=600, **environment):
    env = dict(os.environ, PYTHONPATH=str(ROOT), **environment)
    result = subprocess.run([sys.executable, str(ROOT / 'examples' / script), *args],
                            capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.needs_cc
def test_the_codegen_tour_shows_every_stage_and_all_four_evaluators_agree():
    out = run('codegen_tour.py')
    for stage in ('codegen.trace', 'codegen.grad', 'codegen.optimize', 'def neuron(',
                  'void neuron_batch('):
        assert stage in out
    assert out.count('all agree') == 5 and 'MISMATCH' not in out
    assert 'engine == interpreter == generated Python == generated C, bit for bit' in out


@pytest.mark.needs_cc
def test_the_demo_trains_three_ways_to_the_same_losses_and_writes_its_files(tmp_path):
    out = run('demo.py', '--steps', '5', '--out', str(tmp_path))
    assert out.split()[:3] == ['==', 'micrograd', 'README'] and '645.5773' in out
    rows = {name: line for line in out.splitlines()
            for name in ('engine', 'generated Python', 'generated C') if line.startswith(name)}
    losses = {name: line.split()[-2] for name, line in rows.items()}
    assert len(set(losses.values())) == 1, rows  # the same final loss, three ways
    assert 'agree to 1e-9 at every step' in out
    written = ['readme.svg', 'neuron.svg', 'model_collapsed.svg', 'mlp_clustered.svg',
               'readme_steps.html', 'decision_boundary.png', 'moons_sample.py',
               'moons_sample.c', 'moons_sample.h']
    if importlib.util.find_spec('matplotlib') is None:
        written.remove('decision_boundary.png')
    for name in written:
        assert (tmp_path / name).stat().st_size > 0, name
        assert f'   {tmp_path / name}\n' in out, name          # and the demo says so
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(written)   # no stray .gv
    assert 'see moons_sample.c' in (tmp_path / 'moons_sample.h').read_text()
    assert 'engine: step 5/5' in out                               # progress while it trains
    for picture in ('model_collapsed.svg', 'mlp_clustered.svg', 'neuron.svg', 'readme.svg'):
        grads = re.findall(r'>grad (-?[0-9.e+-]+)<', (tmp_path / picture).read_text())
        assert grads and any(float(g) != 0 for g in grads), picture   # after backward()
    readme_picture = (tmp_path / 'readme.svg').read_text()
    assert '>a</text>' in readme_picture and '>b</text>' in readme_picture


def test_the_decision_boundary_grid_covers_the_data_with_a_margin():
    sys.path.insert(0, str(ROOT / 'examples'))
    try:
        from demo import grid_axis
    finally:
        sys.path.remove(str(ROOT / 'examples'))
    values = [-1.1, 0.3, 2.15]
    axis = grid_axis(values)
    assert axis[0] < min(values) and axis[-1] > max(values) and len(axis) == 60


def test_the_demo_without_a_c_compiler_skips_the_c_row_and_writes_the_rest(tmp_path):
    out = run('demo.py', '--steps', '3', '--out', str(tmp_path),
              CC=str(tmp_path / 'no-compiler-here'))
    assert 'generated C        skipped: no C compiler found' in out
    assert "backend='python'" in out  # the reason says what to do
    assert 'loss curves: engine, generated Python agree' in out
    for name in ('readme.svg', 'neuron.svg', 'model_collapsed.svg', 'mlp_clustered.svg',
                 'moons_sample.py', 'moons_sample.c', 'moons_sample.h'):
        assert (tmp_path / name).stat().st_size > 0, name


@pytest.mark.needs_cc
@pytest.mark.slow
def test_the_digits_cnn_reaches_95_percent_test_accuracy():
    needs.module('sklearn', "pip install scikit-learn (extra 'demo': the digits data)")
    out = run('digits_cnn.py')
    accuracy = float(re.search(r'test accuracy: ([0-9.]+)%', out).group(1))
    assert accuracy >= 95.0, out
