"""Code generation and compile time against graph size (not a test): 1k, 10k, 100k, 1M nodes.

A chain v = tanh(v * w + c) of n instructions per step; times trace + grad + optimize,
emission of Python and C, and gcc at the default flags. Run: python bench/compile_scaling.py
"""
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

import codegen  # noqa: E402
from codegen.build import _loaded  # noqa: E402
from micrograd.engine import Value  # noqa: E402


def chain(n_nodes):
    x, w = Value(0.1, label='x'), Value(0.9, label='w')
    v = x
    for _ in range(n_nodes // 3):  # three instructions per link: mul, add, tanh
        v = (v * w + 0.01).tanh()
    return v, [x, w]


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main(sizes):
    print(f'{"nodes":>9} {"instrs":>9} {"lower+grad+opt":>15} {"emit py":>8} {"emit c":>8} '
          f'{"cc -O2":>8}  mode')
    for n in sizes:
        out, inputs = chain(n)
        program, t_lower = timed(lambda: codegen.optimize(codegen.grad(codegen.trace(out, inputs))))
        _, t_py = timed(lambda: codegen.to_python(program))
        source, t_c = timed(lambda: codegen.to_c(program))
        mode = 'straight' if len(program.instrs) <= codegen.emit_c.STRAIGHT_LINE_LIMIT else 'table'
        with tempfile.TemporaryDirectory() as cache:
            os.environ['MICROGRAD_CACHE'] = cache
            compiled, t_cc = timed(lambda: codegen.build(program, 'c'))
            got = compiled(0.1, 0.9)
        out.backward()
        assert got[0] == out.data and got[2] == inputs[1].grad, 'C disagrees with the engine'
        print(f'{n:>9} {len(program.instrs):>9} {t_lower:>14.2f}s {t_py:>7.2f}s {t_c:>7.2f}s '
              f'{t_cc:>7.2f}s  {mode}')
        _loaded.clear()


if __name__ == '__main__':
    main([int(a) for a in sys.argv[1:]] or [1000, 10000, 100000, 1000000])
