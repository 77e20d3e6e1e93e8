"""The benchmark cannot pass with a failed or wrong peer, and the README shows only its results.

bench/run.py is exercised on small fake peer results (no peer is run, nothing is timed): a peer
that errors fails the run even when the reference peer was not chosen, and every parameter must
agree with the reference to the relative tolerance on its own, not relative to the largest one.
"""
import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_script(name):
    spec = importlib.util.spec_from_file_location(f'bench_{name}', ROOT / 'bench' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run = load_script('run')
readme_table = load_script('readme_table')

LOSSES = [0.9, 0.5, 0.25]
PARAMS = [100.0, -3.0, 1e-3]


def peer(losses=LOSSES, params=PARAMS, median=1e-4):
    return {'losses': list(losses), 'final_params': list(params), 'times': [median],
            'median': median}


# ---- run.check_trajectories: errors and element-by-element tolerance -----------------------------------------

def test_peers_on_the_reference_trajectory_pass_and_missing_packages_are_not_errors():
    results = {'W1': {'c': peer(), 'torch': peer([x * (1 + 1e-12) for x in LOSSES]),
                      'jax': {'skipped': 'skipped (not installed: pip install jax)'}}}
    assert run.check_trajectories(results) == []
    assert results['W1']['torch']['check']['reference'] == 'c'


def test_a_peer_that_errors_fails_the_run():
    results = {'W1': {'c': peer(), 'jax': {'error': 'Traceback ...\nRuntimeError: boom'}}}
    [failure] = run.check_trajectories(results)
    assert 'W1 jax: the peer failed' in failure and 'boom' in failure


def test_a_peer_that_errors_fails_the_run_when_the_reference_peer_was_not_chosen():
    # --only torch,jax: no generated C ran, and no peer at all finished
    results = {'W1': {'torch': {'error': 'RuntimeError: boom'}, 'jax': {'error': 'oom'}}}
    assert len(run.check_trajectories(results)) == 2


def test_without_the_reference_peer_the_others_are_checked_against_the_first_that_ran():
    results = {'W1': {'torch': peer(), 'jax': peer([0.9, 0.5, 0.26])}}
    [failure] = run.check_trajectories(results)
    assert 'JAX' in failure and 'MISMATCH with PyTorch' in failure and 'step 2' in failure


def test_every_parameter_is_held_to_the_tolerance_on_its_own():
    # 1e-3 off by a relative 1e-6: divided by the largest parameter (100) it would look like
    # 1e-11 and pass; element by element it is a mismatch.
    drifted = PARAMS[:2] + [PARAMS[2] * (1 + 1e-6)]
    results = {'W1': {'c': peer(), 'c-fast': peer(params=drifted)}}
    [failure] = run.check_trajectories(results)
    assert 'worst final parameter #2' in failure and 'rel. diff 1e-06' in failure


@pytest.mark.parametrize('a, b, expected', [(1.0, 1.0, 0.0), (0.0, -0.0, 0.0),
                                            (1.0, 1.0 + 2e-9, 2e-9 / (1.0 + 2e-9)),
                                            (float('nan'), 1.0, float('inf')),
                                            (float('nan'), float('nan'), float('inf'))])
def test_relative_difference(a, b, expected):
    assert run.relative_difference(a, b) == pytest.approx(expected)


def test_a_nan_loss_is_a_mismatch():
    results = {'W1': {'c': peer(), 'torch': peer([0.9, float('nan'), 0.25])}}
    assert len(run.check_trajectories(results)) == 1


# ---- run.main: the exit status ----------------------------------------------------------------

@pytest.fixture
def fake_bench(monkeypatch, tmp_path):
    """run.main with every peer replaced by `answers[peer]`; nothing is run or timed."""
    answers = {}
    monkeypatch.setattr(run, 'OUT', str(tmp_path))
    monkeypatch.setattr(run, 'machine', lambda: ('fake cpu', 2, 'cc 0'))
    monkeypatch.setattr(run, 'measure_peak', lambda out: {})
    monkeypatch.setattr(run, 'chart', lambda results, path: 'no chart')
    monkeypatch.setattr(run, 'run_peer',
                        lambda name, workload, spec, plan, mg, cache: dict(answers[name]))
    return answers


def test_the_benchmark_exits_1_when_a_chosen_peer_errors_without_the_reference(fake_bench):
    fake_bench.update(torch=peer(), jax={'error': 'RuntimeError: boom'})
    assert run.main(['--only', 'torch,jax', '--no-compile', '--workloads', 'W1']) == 1


def test_the_benchmark_exits_1_when_a_parameter_drifts(fake_bench):
    fake_bench.update(c=peer(), torch=peer(params=[100.0, -3.0 * (1 + 1e-8), 1e-3]))
    assert run.main(['--only', 'c,torch', '--no-compile', '--workloads', 'W1']) == 1


def test_the_benchmark_exits_0_when_every_peer_agrees(fake_bench):
    fake_bench.update(c=peer(), torch=peer(), jax=peer())
    assert run.main(['--only', 'c,torch,jax', '--no-compile', '--workloads', 'W1']) == 0


def test_casadis_c_gets_the_default_builds_flags(monkeypatch):
    sent = {}
    monkeypatch.setattr(run, 'run_child', lambda script, spec, python=None, env=None:
                        sent.update(spec) or {'skipped': 'not installed'})
    run.run_peer('casadi-c', 'W1', {}, {'steps': 1}, None, None)
    assert sent['cflags'] == list(run.DEFAULT_FLAGS)
    assert 'default C flags' in run.PEERS['casadi-c'][0]


# ---- the README's table --------------------------------------------------------------------------

def fake_run(**changes):
    run_ = {'machine': ['fake cpu', 2, 'cc 0'], 'load': 0.5, 'options': {'quick': False},
            'failures': [],
            'results': {'W1': {'c': {'median': 80e-6}, 'c-fast': {'median': 25e-6},
                               'jax': {'median': 200e-6}, 'casadi-c': {'median': 160e-6},
                               'python': {'median': 10e-3}, 'micrograd': {'median': 1.2},
                               'engine': {'not_run': 'too slow'}}},
            'builds': {'W1 False cold': {'total': 1.0, 'compiler': 0.75,
                                         'instrs_per_row': 1526}}}
    run_.update(changes)
    return run_


def test_the_readme_block_is_the_committed_results_rendered():
    readme = (ROOT / 'README.md').read_text(encoding='utf-8')
    block = '\n'.join(readme_table.render(readme_table.load()))
    assert block in readme, 'README.md is stale: run python bench/readme_table.py'


def test_the_table_states_the_runs_own_ratios_and_labels_unlike_builds():
    text = '\n'.join(readme_table.render(fake_run()))
    assert '| W1: MLP(2,[16,16,1]), batch 100 | 80.0 µs | 25.0 µs | 10 ms | – |' in text
    assert 'W1: generated C is 2.5x faster than JAX jit' in text
    assert 'W1: generated C `fast=True` is 8x faster than JAX jit' in text
    assert "generated C is 2x faster than CasADi's generated C (both built with the default" \
        in text
    assert 'not like for like' in text
    assert 'micrograd 0.1.0' in text and '120x' in text
    assert 'W1 this engine: too slow' in text


def test_a_slower_build_is_said_in_bold():
    run_ = fake_run()
    run_['results']['W1']['jax']['median'] = 40e-6
    assert '**JAX jit is 2x faster than generated C**' in '\n'.join(readme_table.render(run_))


def test_a_run_whose_checks_failed_cannot_be_the_readmes():
    with pytest.raises(readme_table.RefusedRun, match='1 check'):
        readme_table.render(fake_run(failures=['W1 jax: the peer failed']))


def test_rewriting_replaces_only_the_block():
    text = f'before\n{readme_table.BEGIN}\nold\n{readme_table.END}\nafter\n'
    new = readme_table.rewrite(text, ['B', 'new', 'E'])
    assert new == 'before\nB\nnew\nE\nafter\n'
