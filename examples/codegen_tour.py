"""A tour of the code generator on one neuron: the program, its gradient, Python and C.

    tanh(w0*x0 + w1*x1 + b)

Each step is printed: the traced linear program, the program with its backward pass, the
optimised program, the generated Python and the generated C. At the end the engine, the
interpreter, the generated Python and the compiled C evaluate the neuron and its gradients on
the same inputs, including inf and nan, and must agree bit for bit.

Run: python examples/codegen_tour.py
"""
import math

import codegen
from micrograd.engine import Value


NAMES = ('x0', 'x1', 'w0', 'w1', 'b')


def neuron(x0, x1, w0, w1, b):
    return (x0 * w0 + x1 * w1 + b).tanh()


def values(point):
    return [Value(x, label=name) for x, name in zip(point, NAMES)]


def engine(point):
    """The engine's answer: out and d out / d input for each input."""
    inputs = values(point)
    out = neuron(*inputs)
    out.backward()
    return (out.data,) + tuple(v.grad for v in inputs)


def same(a, b):
    return all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b))


def section(title, text):
    print(f'\n==== {title} ' + '=' * max(0, 72 - len(title)))
    print(text.rstrip())


def main():
    inputs = values((2.0, 0.0, -3.0, 1.0, 6.8813735870195432))
    program = codegen.trace(neuron(*inputs), inputs, name='neuron')
    section('1. the traced program (codegen.trace)', str(program))
    with_grad = codegen.grad(program)
    section('2. with its backward pass (codegen.grad)', str(with_grad))
    optimized = codegen.optimize(with_grad)
    section('3. optimised (codegen.optimize: fold, simplify, cse, dce)', str(optimized))
    section('4. generated Python (codegen.to_python)', codegen.to_python(optimized))
    section('5. generated C (codegen.to_c)', codegen.to_c(optimized))

    python = codegen.build(optimized, backend='python')
    try:
        c = codegen.build(optimized, backend='c')
    except codegen.CompilerNotFound as missing:
        print(f'\n(no C compiler: {missing})')
        c = None
    points = [(2.0, 0.0, -3.0, 1.0, 6.8813735870195432), (0.5, -1.5, 2.0, 0.25, -1.0),
              (math.inf, 1.0, 1.0, 1.0, 0.0), (math.nan, 1.0, 1.0, 1.0, 0.0), (0.0, 0.0, 0.0, 0.0, 0.0)]
    section('6. every backend on the same inputs', 'out, d/dx0, d/dx1, d/dw0, d/dw1, d/db')
    for point in points:
        expected = engine(point)
        results = {'interpreter': codegen.evaluate(optimized, point), 'python': python(*point)}
        if c is not None:
            results['c'] = c(*point)
        agree = all(same(expected, r) for r in results.values())
        print(f'  {point}: {", ".join(f"{v:.6g}" for v in expected)}  '
              f'{"all agree" if agree else "MISMATCH"}')
        if not agree:
            raise SystemExit(f'backends disagree at {point}: engine {expected}, {results}')
    print('\nengine == interpreter == generated Python' + (' == generated C' if c else '') +
          ', bit for bit')


if __name__ == '__main__':
    main()
