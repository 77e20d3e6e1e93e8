"""The benchmark (issue 6): one command, every peer timed in the same run, results checked.

    python bench/run.py            (or: make bench)

Workloads (micrograd's moons demo: max-margin loss, mean over the batch, + 1e-4 L2, SGD with
lr = 1.0 - 0.9 k / 100 at step k, MLP from micrograd.nn after random.seed(1337), data from
micrograd.datasets.make_moons(n, 0.1, random.Random(0)) with labels -1/+1):
  W1  MLP(2, [16, 16, 1]), 337 parameters, batch 100
  W2  MLP(2, [64, 64, 1]), 4417 parameters, batch 1000

Peers: this engine, generated Python, generated C (default bit-equal build, and fast=True),
micrograd 0.1.0 (own venv, bench/.venv-micrograd), PyTorch eager float64, JAX jit float64,
CasADi (generated C on W1, built with the default generated C's compiler flags, one thread; MX
virtual machine on W1 and W2). Every peer runs in its own child process from the same initial
parameters and data; its loss at every step and each of its final parameters must match the
reference (the default generated C, or the first peer run when it was not chosen) to a relative
1e-9, element by element. A mismatch, or a peer that fails, is a bug and makes this script exit
1. Slow peers (the engine, micrograd 0.1.0, generated Python on W2) run fewer steps of the same
trajectory.

Also measured: code generation + compiler time for W1, W2 and the digits CNN in fresh processes
with a cold cache, a cache hit in a fresh process (which must not start the compiler), and the
machine's floating-point peak (bench/peak.c) to report the fraction of it each step achieves.
Results go to bench/out/ (results.json, bench.png when matplotlib is installed). The README's
headline table is generated from a committed copy, bench/results.json, by bench/readme_table.py.
"""
import argparse
import json
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(1, HERE)

from common import learning_rate  # noqa: E402
import peers_micrograd  # noqa: E402
from codegen.build import DEFAULT_FLAGS  # noqa: E402

WORKLOADS = {
    'W1': {'sizes': [16, 16, 1], 'n': 100},
    'W2': {'sizes': [64, 64, 1], 'n': 1000},
}
STEPS = 100
TOLERANCE = 1e-9

# name -> (label, script, pip hint for a missing package)
PEERS = {
    'engine': ('this engine (Value graph)', 'peers_ours.py', None),
    'python': ('generated Python', 'peers_ours.py', None),
    'c': ('generated C, default (bit-equal)', 'peers_ours.py', None),
    'c-fast': ('generated C, fast=True', 'peers_ours.py', None),
    'micrograd': ('micrograd 0.1.0 (PyPI)', 'peers_micrograd.py', None),
    'torch': ('PyTorch eager, float64', 'peers_torch.py', 'pip install torch==2.13.0'),
    'jax': ('JAX jit(value_and_grad), f64', 'peers_jax.py', 'pip install jax==0.10.2'),
    'casadi-c': ('CasADi generated C (default C flags)', 'peers_casadi.py',
                 'pip install casadi==3.8.2'),
    'casadi-mx': ('CasADi MX (virtual machine)', 'peers_casadi.py', 'pip install casadi==3.8.2'),
}
ORDER = ['c', 'c-fast', 'python', 'engine', 'micrograd', 'torch', 'jax', 'casadi-c', 'casadi-mx']


# ---- helpers ---------------------------------------------------------------------------------

def fmt_time(seconds):
    if seconds is None:
        return '-'
    if seconds < 1e-3:
        return f'{seconds * 1e6:.1f} us'
    if seconds < 1.0:
        return f'{seconds * 1e3:.2f} ms'
    return f'{seconds:.2f} s'


def fmt_ratio(x):
    if x is None:
        return '-'
    return f'{x:.3g}x' if x < 100 else f'{x:,.0f}x'


def say(*args):
    print(*args, flush=True)


def run_child(script, spec, python=None, env=None, timeout=900):
    """Run bench/<script> as a child process on `spec`; its result dict (or an error)."""
    with tempfile.TemporaryDirectory(prefix='mg-bench-') as tmp:
        spec_path, result_path = os.path.join(tmp, 'spec.json'), os.path.join(tmp, 'result.json')
        with open(spec_path, 'w') as f:
            json.dump(spec, f)
        try:
            done = subprocess.run([python or sys.executable, os.path.join(HERE, script),
                                   spec_path, result_path], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {'error': f'timed out after {timeout} s'}
        if os.path.exists(result_path):
            with open(result_path) as f:
                return json.load(f)
        return {'error': f'{script} exited {done.returncode}:\n{done.stderr.strip()[-3000:]}'}


def machine():
    model = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    model = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    cc = shutil.which(os.environ.get('CC', 'cc'))
    version = subprocess.run([cc, '--version'], capture_output=True, text=True).stdout \
        .splitlines()[0] if cc else 'no C compiler'
    return model, os.cpu_count(), version


def median(xs):
    return statistics.median(xs) if xs else None


# ---- the machine's floating-point peak -------------------------------------------------------

def measure_peak(out_dir):
    """GFLOP/s of bench/peak.c: vector FMA at -O3 -march=native on 1 and 2 threads, and scalar
    mul + add without FMA (what the bit-equal default build can use) on 1 thread."""
    cc = shutil.which(os.environ.get('CC', 'cc'))
    if not cc:
        return {'error': 'no C compiler'}
    builds = {'fma': ['-O3', '-march=native', '-ffp-contract=fast'],
              'scalar': ['-O2', '-ffp-contract=off', '-fno-tree-vectorize', '-DSCALAR']}
    peak = {}
    for kind, flags in builds.items():
        exe = os.path.join(out_dir, f'peak_{kind}')
        done = subprocess.run([cc, *flags, '-pthread', os.path.join(HERE, 'peak.c'), '-o', exe],
                              capture_output=True, text=True)
        if done.returncode:
            return {'error': done.stderr[-1000:]}
        for threads in ((1, 2) if kind == 'fma' else (1,)):
            line = subprocess.run([exe, str(threads), '3000000', '40'], capture_output=True,
                                  text=True).stdout.split()
            peak[f'{kind}{threads}'] = float(line[line.index('gflops') + 1]) * 1e9
            peak[f'{kind}{threads}_cpus'] = float(line[line.index('cpus') + 1])
            peak['lanes'] = peak.get('lanes') if kind == 'scalar' else int(
                line[line.index('lanes') + 1])
    return peak


# ---- build cost ------------------------------------------------------------------------------

def measure_builds(base_specs, cache, want_fast, workloads):
    """Trainer() cold (fresh cache) for W1, W2 and the digits CNN, then a cache hit."""
    env = dict(os.environ, MICROGRAD_CACHE=cache)
    results = {}
    jobs = [(w, False) for w in workloads] + [('digits', False)]
    if want_fast:
        jobs += [(w, True) for w in workloads]
    for name, fast in jobs:
        spec = {'peer': 'build', 'fast': fast}
        if name == 'digits':
            spec['model'] = 'digits'
        else:
            spec.update(model='mlp', sizes=base_specs[name]['sizes'],
                        params0=base_specs[name]['params0'])
        say(f'  compile {name}{" fast" if fast else ""} (cold cache) ...')
        results[(name, fast, 'cold')] = run_child('peers_ours.py', spec, env=env)
    hit = workloads[0]  # compiled just above, so the cache is warm for it
    for fast in ((False, True) if want_fast else (False,)):
        spec = {'peer': 'build', 'fast': fast, 'model': 'mlp', 'sizes': base_specs[hit]['sizes'],
                'params0': base_specs[hit]['params0']}
        say(f'  cache hit {hit}{" fast" if fast else ""} (fresh process, warm cache) ...')
        results[(hit, fast, 'hit')] = run_child('peers_ours.py', spec, env=env)
    return results


# ---- the peers -------------------------------------------------------------------------------

def timing_plan(peer, workload, args):
    """How a peer runs on a workload: steps, warm-up, repeats; or why it does not run."""
    fast = {'steps': STEPS, 'warmup': 5, 'skip': 0, 'budget': 1.0 if not args.quick else 0.3,
            'max_repeats': 20}
    slow_steps = 3 if args.quick else 6
    if peer in ('c', 'c-fast', 'torch', 'jax', 'casadi-mx'):
        if peer == 'casadi-mx':
            fast['warmup'] = 2
        return fast
    if peer == 'casadi-c':
        return fast if workload == 'W1' else 'W1 only (the issue asks for its MX form on W2)'
    if peer == 'python':
        if workload == 'W1':
            return {'steps': STEPS, 'warmup': 0, 'skip': 1, 'budget': 0, 'max_repeats': 1}
        return {'steps': 2 if args.quick else 3, 'warmup': 0, 'skip': 1, 'budget': 0,
                'max_repeats': 1}
    if peer == 'engine':
        if workload == 'W1':
            return {'steps': slow_steps, 'warmup': 0, 'skip': 1, 'budget': 0, 'max_repeats': 1}
        if args.slow:
            return {'steps': 1, 'warmup': 0, 'skip': 0, 'budget': 0, 'max_repeats': 1}
        return 'not run: about 2 min per step on this machine (--slow runs 1 step)'
    if peer == 'micrograd':
        if workload == 'W1':
            return {'steps': slow_steps, 'warmup': 0, 'skip': 1, 'budget': 0, 'max_repeats': 1}
        return "W1 only: its recursive backward exceeds Python's recursion limit at batch 1000"
    raise ValueError(peer)


def run_peer(peer, workload, spec, plan, micrograd_python, cache):
    label, script, hint = PEERS[peer]
    spec = dict(spec, peer=peer, **plan)
    spec['lrs'] = [learning_rate(k, STEPS) for k in range(STEPS)]
    spec['workdir'] = os.path.join(OUT, 'casadi')
    spec['cflags'] = list(DEFAULT_FLAGS)  # CasADi's C gets the default build's flags, 1 thread
    env = dict(os.environ)
    if cache:
        env['MICROGRAD_CACHE'] = cache
    python = None
    if peer == 'micrograd':
        if isinstance(micrograd_python, Exception):
            return {'skipped': f'no micrograd 0.1.0 venv: {micrograd_python}'}
        python, env = micrograd_python, peers_micrograd.clean_env()
    if peer == 'torch':
        blas = [k for k in ('OPENBLAS_CORETYPE', 'OPENBLAS_L2_SIZE') if k in env]
        if blas:  # set on this machine for old OpenBLAS builds; they slow a current one down
            for k in ('OPENBLAS_CORETYPE', 'OPENBLAS_L2_SIZE'):
                env.pop(k, None)
            spec['note'] = f'unset {" and ".join(blas)} for this peer'
    if peer == 'jax':
        env.setdefault('JAX_PLATFORMS', 'cpu')
    result = run_child(script, spec, python=python, env=env)
    if peer == 'jax' and result.get('times'):
        # XLA's CPU thread pool spans both cores; on small work, or on a busy machine, one
        # thread can be faster. The full trajectory runs with XLA's defaults; one thread is
        # timed on a shorter run of the same steps, and the faster of the two is reported.
        single = dict(env, XLA_FLAGS=(env.get('XLA_FLAGS', '') + ' --xla_cpu_multi_thread_eigen'
                                      '=false intra_op_parallelism_threads=1').strip())
        other = run_child(script, dict(spec, steps=min(STEPS, 30), max_repeats=3),
                          env=single)
        if other.get('times'):
            a, b = median(result['times']), median(other['times'])
            if b < a:
                result['times'] = other['times']
            chosen = '1 thread' if b < a else 'default threads'
            result['info'] = (f"{result.get('info', '')}; {chosen} reported (default "
                              f"{fmt_time(a)}, 1 thread {fmt_time(b)})")
    if 'skipped' in result and hint:
        result['skipped'] = f'skipped (not installed: {hint})'
    if spec.get('note'):
        result['info'] = f"{spec['note']}; {result.get('info', '')}"
    return result


def relative_difference(a, b):
    """|a - b| relative to the larger of the two; 0 when they are equal, inf if either is nan."""
    if a == b:
        return 0.0
    if math.isnan(a) or math.isnan(b):
        return math.inf
    return abs(a - b) / max(abs(a), abs(b))


def worst(values, reference):
    """(index, relative difference) of the element of `values` farthest from `reference`."""
    diffs = [relative_difference(a, b) for a, b in zip(values, reference)]
    k = max(range(len(diffs)), key=diffs.__getitem__)
    return k, diffs[k]


def compare(result, reference):
    """How far a peer's run is from the reference's: the losses over the steps both ran, and
    each final parameter (when both ran the whole trajectory), element by element.
    Returns (steps compared, worst loss step, its relative difference, worst parameter index,
    its relative difference); the parameter entries are None when there is nothing to compare."""
    ours, ref = result['losses'], reference['losses']
    n = min(len(ours), len(ref))
    step, loss_diff = worst(ours[:n], ref[:n])
    index = param_diff = None
    if len(ours) == len(ref) and result.get('final_params'):
        if len(result['final_params']) != len(reference['final_params']):
            return n, step, loss_diff, -1, math.inf
        index, param_diff = worst(result['final_params'], reference['final_params'])
    return n, step, loss_diff, index, param_diff


def choose_reference(peers_done):
    """The peer every other is checked against: the default generated C, else generated
    Python, else the first peer (in table order) that ran."""
    ran = [p for p in ('c', 'python', *ORDER) if peers_done.get(p, {}).get('losses')]
    return ran[0] if ran else None


def check_trajectories(results, tolerance=TOLERANCE):
    """Every failed peer, and every peer off the reference trajectory, as a list of failures
    (each a sentence); also records the comparison in each result's 'check'."""
    failures = []
    for workload, peers_done in results.items():
        for peer, result in peers_done.items():
            if 'error' in result:
                failures.append(f'{workload} {peer}: the peer failed:\n{result["error"]}')
        reference_name = choose_reference(peers_done)
        if reference_name is None:
            continue
        reference = peers_done[reference_name]
        for peer, result in peers_done.items():
            if 'error' in result or not result.get('losses'):
                continue
            n, step, loss_diff, index, param_diff = compare(result, reference)
            result['check'] = {'steps': n, 'loss_rel': loss_diff, 'param_rel': param_diff,
                               'reference': reference_name}
            if loss_diff > tolerance or (param_diff is not None and param_diff > tolerance):
                failures.append(
                    f'{workload} {PEERS[peer][0]}: MISMATCH with {PEERS[reference_name][0]} '
                    f'over {n} steps (relative tolerance {tolerance:g}, element by element): '
                    f'worst loss at step {step}, {result["losses"][step]!r} vs '
                    f'{reference["losses"][step]!r} (rel. diff {loss_diff:.3g})'
                    + ('' if param_diff is None else
                       f'; worst final parameter #{index}, rel. diff {param_diff:.3g}')
                    + '. This is a bug, not a result.')
    return failures


# ---- report ----------------------------------------------------------------------------------

def print_table(rows, header):
    """Columns: the first left-aligned, the others right-aligned; a row of two cells is a
    label and a remark, which spans the other columns."""
    full = [r for r in rows if len(r) == len(header)]
    widths = [max(len(str(r[i])) for r in full + [header]) for i in range(len(header))]
    widths[0] = max([widths[0]] + [len(r[0]) for r in rows])
    line = '  '.join(h.ljust(w) if i == 0 else h.rjust(w)
                     for i, (h, w) in enumerate(zip(header, widths)))
    say(line)
    say('-' * len(line))
    for r in rows:
        if len(r) == 2:
            say(f'{r[0].ljust(widths[0])}  {r[1]}')
            continue
        say('  '.join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                      for i, (c, w) in enumerate(zip(r, widths))))


def chart(results, path):
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return 'matplotlib not installed: no chart'
    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.5))
    axes = axes if len(results) > 1 else [axes]
    for ax, (workload, peers) in zip(axes, results.items()):
        names = [p for p in ORDER if p in peers and peers[p].get('median')]
        values = [peers[p]['median'] * 1e6 for p in names]
        colours = ['tab:green' if p in ('c', 'c-fast', 'python', 'engine') else 'tab:gray'
                   for p in names]
        bars = ax.barh([PEERS[p][0] for p in names], values, color=colours)
        ax.set_xscale('log')
        ax.invert_yaxis()
        ax.set_xlabel('time per training step (us, log scale)')
        ax.set_title(f"{workload}: MLP(2, {WORKLOADS[workload]['sizes']}), "
                     f"batch {WORKLOADS[workload]['n']}")
        for bar, v in zip(bars, values):
            ax.text(v, bar.get_y() + bar.get_height() / 2, ' ' + fmt_time(v / 1e6),
                    va='center', fontsize=8)
        ax.set_xlim(min(values) / 3, max(values) * 30)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f'chart: {os.path.relpath(path, ROOT)}'


OUT = os.path.join(HERE, 'out')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='fewer steps and repeats')
    parser.add_argument('--slow', action='store_true', help='also run the engine on W2 (1 step)')
    parser.add_argument('--only', help='comma-separated peers: ' + ','.join(ORDER))
    parser.add_argument('--workloads', default='W1,W2')
    parser.add_argument('--no-compile', action='store_true',
                        help='skip the compile-cost measurement (uses your normal cache)')
    args = parser.parse_args(argv)
    peers = ORDER if not args.only else [p for p in ORDER if p in args.only.split(',')]
    workloads = [w for w in args.workloads.split(',') if w in WORKLOADS]
    os.makedirs(OUT, exist_ok=True)
    started = time.perf_counter()
    failures, notes = [], []

    model, cores, compiler = machine()
    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else 0.0
    say(f'machine: {model}, {cores} cores; {compiler}; Python {platform.python_version()}')
    if load > 0.5:
        say(f'WARNING: load average {load:.1f} before starting: other processes are running, '
            f'so the times below are noisy (ratios less so).')
    blas = {k: os.environ[k] for k in ('OPENBLAS_CORETYPE', 'OPENBLAS_L2_SIZE') if k in os.environ}
    if blas:
        say(f'note: {blas} set here; unset for the PyTorch peer only')

    # workloads: the same data and initial parameters for every peer
    from micrograd.datasets import make_moons
    from micrograd.nn import MLP
    specs = {}
    for name, w in WORKLOADS.items():
        X, y = make_moons(w['n'], 0.1, random.Random(0))
        random.seed(1337)
        params0 = MLP(2, w['sizes']).parameter_values()
        specs[name] = {'workload': name, 'sizes': w['sizes'], 'X': X,
                       'y': [2.0 * t - 1.0 for t in y], 'params0': params0}

    say('peak: bench/peak.c ...')
    peak = measure_peak(OUT)

    cache = None
    builds = {}
    if not args.no_compile and ('c' in peers or 'c-fast' in peers):
        cache = tempfile.mkdtemp(prefix='mg-bench-cache-')
        say(f'compile cost (cache {cache}):')
        builds = measure_builds(specs, cache, 'c-fast' in peers, workloads)

    micrograd_python = None
    if 'micrograd' in peers and 'W1' in workloads:
        try:
            micrograd_python = peers_micrograd.ensure_venv(log=say)
        except Exception as e:  # no network, no pip: the peer is skipped, not the benchmark
            micrograd_python = e

    results = {}
    for workload in workloads:
        results[workload] = {}
        for peer in peers:
            plan = timing_plan(peer, workload, args)
            if isinstance(plan, str):
                results[workload][peer] = {'not_run': plan}
                continue
            say(f'{workload} {PEERS[peer][0]} ...')
            result = run_peer(peer, workload, specs[workload], plan, micrograd_python, cache)
            if result.get('times'):
                result['median'] = median(result['times'])
                say(f'    {fmt_time(result["median"])} per step')
            else:
                say('    ' + (result.get('skipped') or result.get('na') or 'ERROR'))
            results[workload][peer] = result

    if cache:
        shutil.rmtree(cache, ignore_errors=True)

    # ---- checks against the reference trajectory ----------------------------------------
    say('')
    failures += check_trajectories(results)
    notes += [f'{workload} {peer}: repeated trajectories differ in the last bits'
              for workload, peers_done in results.items()
              for peer, result in peers_done.items() if not result.get('reproducible', True)]

    # ---- tables -------------------------------------------------------------------------
    say('Columns: vs C = time / generated C default time (below 1 is faster than it); timed = '
        'step timings in the median; setup = one-off cost in that process (Trainer() on a warm '
        'cache, JIT compile, CasADi codegen + cc); last loss = loss of the last step run; '
        'checked = steps compared with the reference trajectory, largest relative loss '
        'difference / final-parameter difference.')
    for workload, peers_done in results.items():
        w = WORKLOADS[workload]
        base = peers_done.get('c', {}).get('median')
        base_fast = peers_done.get('c-fast', {}).get('median')
        P = len(specs[workload]['params0'])
        say('')
        say(f"{workload}: MLP(2, {w['sizes']}), {P} parameters, batch {w['n']}; "
            f"median time per SGD step (forward + backward + update), warm-up excluded")
        rows = []
        for peer in ORDER:
            if peer not in peers_done:
                continue
            r = peers_done[peer]
            label = PEERS[peer][0]
            if 'median' in r:
                check = r.get('check')
                checked = '-' if not check else (
                    f"{check['steps']} steps, {check['loss_rel']:.1e}"
                    + ('' if check['param_rel'] is None else f" / p {check['param_rel']:.1e}"))
                status = 'ref' if check and peer == check['reference'] else (
                    'ok' if check and check['loss_rel'] <= TOLERANCE and (
                        check['param_rel'] is None or check['param_rel'] <= TOLERANCE)
                    else 'MISMATCH')
                rows.append([label, fmt_time(r['median']),
                             fmt_ratio(r['median'] / base) if base else '-',
                             fmt_ratio(r['median'] / base_fast) if base_fast else '-',
                             f"{len(r['times'])}", fmt_time(r.get('setup_seconds')),
                             r['losses'][-1] and f"{r['losses'][-1]:.12f}", checked, status])
            else:
                why = r.get('not_run') or r.get('skipped') or r.get('na') or \
                    'ERROR (see below)'
                rows.append([label, why])
        print_table(rows, ['peer', 'median/step', 'vs C', 'vs C fast', 'timed', 'setup',
                           'last loss',
                           'checked: steps, max rel. diff', ''])
        for peer in ORDER:
            info = peers_done.get(peer, {}).get('info')
            if info:
                say(f'  {peer}: {info}')

    # ---- ratios and targets ---------------------------------------------------------------
    def t(workload, peer):
        return results.get(workload, {}).get(peer, {}).get('median')

    say('')
    say('Ratios (same run) and the issue\'s targets:')
    targets = []

    def ratio_line(text, num, den, goal, minimum):
        if text.split()[0] not in results:
            return
        if num is None or den is None:
            say(f'  {text}: n/a')
            return
        x = num / den
        met = x >= minimum
        targets.append((text, met))
        say(f'  {text}: {x:.2f}  (target {goal}: {"MET" if met else "MISSED"}'
            f'{"" if met else f", short by {minimum / x:.2f}x"})')

    for c in ('c', 'c-fast'):  # issue 9's targets: W1 2x and 6x JAX, W2 1x and 1.5x
        tag = 'default' if c == 'c' else 'fast'
        ratio_line(f'W1 JAX / generated C {tag}', t('W1', 'jax'), t('W1', c),
                   '>= 2' if c == 'c' else '>= 6', 2.0 if c == 'c' else 6.0)
        ratio_line(f'W1 CasADi C / generated C {tag}', t('W1', 'casadi-c'), t('W1', c), '> 1',
                   1.0)
        ratio_line(f'W2 JAX / generated C {tag}', t('W2', 'jax'), t('W2', c),
                   '>= 1' if c == 'c' else '>= 1.5', 1.0 if c == 'c' else 1.5)
    ratio_line('W1 micrograd 0.1.0 / generated Python', t('W1', 'micrograd'), t('W1', 'python'),
               '>= 50', 50.0)
    for workload in results:
        for a, b in (('engine', 'python'), ('torch', 'c'), ('torch', 'c-fast')):
            if t(workload, a) and t(workload, b):
                say(f'  {workload} {PEERS[a][0]} / {PEERS[b][0]}: '
                    f'{t(workload, a) / t(workload, b):.3g}')

    # ---- build cost ---------------------------------------------------------------------
    if builds:
        say('')
        say('Build cost: Trainer() in a fresh process (model already built; imports excluded)')
        rows = []
        for (name, fast, kind), r in builds.items():
            what = f"{name}{' fast' if fast else ''}, {'cache hit' if kind == 'hit' else 'cold'}"
            if 'total' not in r:
                rows.append([what, r.get('skipped') or r.get('na') or 'ERROR (see below)'])
                if 'error' in r:
                    failures.append(f'build {what} failed:\n{r["error"]}')
                continue
            rows.append([what, f"{r['instrs_per_row']}", fmt_time(r['compiler']),
                         fmt_time(r['total']),
                         f"{r['compiler_runs']} ({', '.join(r['processes']) or '-'})"])
            if kind == 'hit' and r['processes']:
                failures.append(f'cache hit {what} started {r["processes"]}: a cache hit must '
                                'not run the compiler')
        print_table(rows, ['model', 'instrs/row', 'compiler running', 'total',
                           'processes started'])
        say('  instrs/row: of the scalar gradient program (the loop level of W1 and W2 is lifted'
            ' from the forward trace and never builds it); compiler running: wall time with at'
            ' least one compiler process alive, overlapping code generation')
        hit = builds.get(('W1', False, 'hit'), {})
        for name, budget in (('W1', 0.5), ('W2', 1.0)):  # issue 9's cold-build targets
            cold = builds.get((name, False, 'cold'), {})
            if 'total' in cold:
                met = cold['total'] < budget
                targets.append((f'{name} cold Trainer() < {budget:g} s', met))
                verdict = 'MET' if met else f"MISSED, {cold['total'] / budget:.2f}x the budget"
                say(f"  {name} cold Trainer(): {cold['total']:.2f} s (target < {budget:g} s: "
                    f"{verdict}); the source does not depend on the batch size")
        if 'total' in hit:
            met = hit['total'] < 0.05
            targets.append(('cache hit < 50 ms', met))
            verdict = 'MET' if met else f"MISSED, {hit['total'] / 0.05:.1f}x the budget"
            say(f"  cache hit: {fmt_time(hit['total'])} for Trainer() (target < 50 ms: "
                f"{verdict}), of which {fmt_time(hit['compile_source'])} in compile_source "
                f"(hash, lookup); the rest traces the model: the traced programs are what the "
                f"cache looks up")

    # ---- fraction of peak -----------------------------------------------------------------
    if 'error' not in peak and peak:
        # measured again now, and the better run kept: on a busy machine a run that did not
        # get a whole core underestimates the peak (and so overstates the fractions below)
        again = measure_peak(OUT)
        for kind in ('fma1', 'fma2', 'scalar1'):
            if again.get(kind, 0) > peak[kind]:
                peak[kind], peak[kind + '_cpus'] = again[kind], again[kind + '_cpus']
        say('')
        # With other processes running, the 2-thread run may not get both cores (its threads'
        # CPU time / wall time says so); then the 2-core peak is taken as twice the 1-core one.
        two, cpus = peak['fma2'], peak['fma2_cpus']
        estimated = cpus < 1.8
        if estimated:
            two = max(two, 2 * peak['fma1'])
        say(f"Peak (bench/peak.c, vector FMA, {peak.get('lanes')} doubles per vector): "
            f"{peak['fma1'] / 1e9:.1f} GFLOP/s on 1 core, {peak['fma2'] / 1e9:.1f} on 2 threads "
            f"using {cpus:.2f} CPUs" + (f" (the machine is busy: 2-core peak taken as "
                                        f"2 x 1-core = {two / 1e9:.1f})" if estimated else '')
            + f"; scalar mul + add without FMA (the default build's instructions): "
            f"{peak['scalar1'] / 1e9:.1f} on 1 core")
        for workload, peers_done in results.items():
            flops = (peers_done.get('c', {}).get('flops')
                     or peers_done.get('c-fast', {}).get('flops'))
            if not flops:
                continue
            say(f"  {workload}: {flops['per_step']:,} flops per step ({flops['per_row']:,} "
                f"add/sub/mul per row x {WORKLOADS[workload]['n']} rows + batch term "
                f"{flops['extra']:,} + update {flops['update']:,}; relu/step not counted)")
            for peer in ('c', 'c-fast', 'jax', 'torch', 'casadi-c'):
                m = peers_done.get(peer, {}).get('median')
                if not m:
                    continue
                rate = flops['per_step'] / m
                say(f"    {PEERS[peer][0]:<34} {rate / 1e9:7.2f} GFLOP/s = "
                    f"{100 * rate / two:5.1f}% of 2-core peak, "
                    f"{100 * rate / peak['fma1']:5.1f}% of 1-core"
                    + (f", {100 * rate / peak['scalar1']:5.1f}% of 1-core scalar no-FMA"
                       if peer == 'c' else ''))
    elif peak.get('error'):
        say(f"peak: could not build bench/peak.c: {peak['error']}")

    # ---- outputs ---------------------------------------------------------------------------
    say('')
    if 'c' in peers or 'c-fast' in peers:
        say(chart({w: p for w, p in results.items()}, os.path.join(OUT, 'bench.png')))
    with open(os.path.join(OUT, 'results.json'), 'w') as f:
        json.dump({'machine': [model, cores, compiler], 'load': load, 'peak': peak,
                   'options': vars(args), 'failures': failures,
                   'results': {w: {p: {k: v for k, v in r.items() if k != 'times'}
                                   for p, r in rs.items()} for w, rs in results.items()},
                   'builds': {' '.join(map(str, k)): v for k, v in builds.items()}}, f, indent=1)
    for note in notes:
        say(f'note: {note}')
    if hasattr(os, 'getloadavg'):
        say(f'load average now: {os.getloadavg()[0]:.1f} (at the start: {load:.1f})')
    say(f'done in {time.perf_counter() - started:.0f} s; results in '
        f'{os.path.relpath(OUT, ROOT)}/results.json')
    if failures:
        say('')
        for failure in failures:
            say(f'BUG: {failure}')
        say(f'{len(failures)} check(s) FAILED')
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
