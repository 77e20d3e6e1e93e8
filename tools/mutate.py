"""Mutation testing with cosmic-ray: does each core module's test file notice a small change?

    python tools/mutate.py [MODULE ...]     (or: make mutate, MUTATE_MODULES="ieee ops")

For each module, cosmic-ray makes every small mutation its operators know (a + for a -, a < for
a <=, 1.0 for 2.0, a dropped `not`, ...), one at a time, and runs only the tests that cover
that module (TESTS below). A mutant the tests fail on is killed; one they pass is a survivor:
either a test is missing, or the mutant is equivalent (it cannot change any result), which the
README's Contributing section then lists with the reason.

cosmic-ray mutates the file in place, so every run works in a fresh copy of the tracked files
(out/mutate/tree), never in your checkout. Reports: out/mutate/<module>.txt and .sqlite.
Hypothesis runs derandomized (the `ci` profile), so a run is reproducible.
"""
import os
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / 'out' / 'mutate'

# module -> (file, the tests that cover it). Only these run for each of its mutants.
TESTS = {
    'ieee': ('micrograd/ieee.py', ['tests/test_ops.py']),
    'ops': ('micrograd/ops.py', ['tests/test_ops.py',
                                 'tests/test_engine.py::test_smooth_random_graphs_match_pytorch',
                                 'tests/test_engine.py::'
                                 'test_special_values_match_pytorch_where_rules_agree',
                                 'tests/test_backends.py::'
                                 'test_every_op_agrees_on_every_special_value_in_c']),
    'engine': ('micrograd/engine.py', ['tests/test_engine.py']),
    'ir': ('codegen/ir.py', ['tests/test_ir.py']),
    'lower': ('codegen/lower.py', ['tests/test_lower.py', 'tests/test_ir.py']),
    'grad': ('codegen/grad.py', ['tests/test_grad.py']),
    'passes': ('codegen/passes.py', ['tests/test_passes.py', 'tests/test_golden.py']),
    'emit_python': ('codegen/emit_python.py', ['tests/test_golden.py', 'tests/test_backends.py']),
    'emit_c': ('codegen/emit_c.py', ['tests/test_golden.py', 'tests/test_backends.py']),
    'emit_loops': ('codegen/emit_loops.py',
                   ['tests/test_loops.py', 'tests/test_lift.py', 'tests/test_fast_build.py']),
    'train': ('codegen/train.py', ['tests/test_train.py']),
}

CONFIG = '''[cosmic-ray]
module-path = "{path}"
timeout = {timeout}
excluded-modules = []
test-command = "{python} -m pytest -x -q -p no:cacheprovider -p no:randomly {tests}"

[cosmic-ray.distributor]
name = "local"
'''


def fresh_tree():
    """A copy of the tracked (and new, unignored) files: cosmic-ray edits files in place."""
    tree = OUT / 'tree'
    shutil.rmtree(tree, ignore_errors=True)
    listed = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard'], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    for name in listed:
        source = ROOT / name
        if source.is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, tree / name)
    return tree


# cosmic-ray's commands, called through this Python (its scripts may not be on PATH)
ENTRY_POINTS = {'cosmic-ray': 'cosmic_ray.cli:main', 'cr-report': 'cosmic_ray.tools.report:report'}


def cosmic_ray(command, *args, cwd):
    module, function = ENTRY_POINTS[command].split(':')
    call = f'import sys; from {module} import {function} as run; sys.exit(run())'
    return subprocess.run([sys.executable, '-c', call, *args], cwd=cwd, capture_output=True,
                          text=True)


def mutate(module, tree, timeout=120.0):
    """Run every mutant of `module` against its tests; return cr-report's text (the survivors,
    each with its diff, then the score)."""
    path, tests = TESTS[module]
    config, session = OUT / f'{module}.toml', OUT / f'{module}.sqlite'
    config.write_text(CONFIG.format(path=path, timeout=timeout, python=sys.executable,
                                    tests=' '.join(tests)), encoding='utf-8')
    session.unlink(missing_ok=True)
    for step in (('cosmic-ray', 'init', str(config), str(session)),
                 ('cosmic-ray', 'baseline', str(config)),
                 ('cosmic-ray', 'exec', str(config), str(session))):
        done = cosmic_ray(*step, cwd=tree)
        if done.returncode:
            raise SystemExit(f'{" ".join(step[:2])} failed for {module}:\n{done.stdout}\n'
                             f'{done.stderr}')
    report = cosmic_ray('cr-report', '--show-diff', '--surviving-only', str(session),
                        cwd=tree).stdout
    (OUT / f'{module}.txt').write_text(report, encoding='utf-8')
    return report


def main(argv):
    modules = argv or list(TESTS)
    unknown = [m for m in modules if m not in TESTS]
    if unknown:
        raise SystemExit(f'unknown module(s) {unknown}; choose from {", ".join(TESTS)}')
    OUT.mkdir(parents=True, exist_ok=True)
    os.environ['HYPOTHESIS_PROFILE'] = 'ci'  # derandomized: the same examples every run
    tree = fresh_tree()
    for module in modules:
        print(f'{module}: mutating {TESTS[module][0]}, running {" ".join(TESTS[module][1])}',
              flush=True)
        summary = [line for line in mutate(module, tree).splitlines()
                   if line.startswith(('total jobs', 'complete', 'surviving mutants'))]
        print('  ' + '\n  '.join(summary), flush=True)
    print(f'reports: {OUT.relative_to(ROOT)}/<module>.txt')


if __name__ == '__main__':
    main(sys.argv[1:])
