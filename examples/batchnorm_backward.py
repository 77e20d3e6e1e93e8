"""The batch norm backward pass, derived through its computational graph in 9 steps.

The forward pass of batch normalisation for one feature over a batch of N values, split into 9
elementary steps (the classic derivation by F. Kratzert). The engine records each step as a
node; backward() then gives every node's gradient. Next to it, the same gradients derived by
hand, step by step in reverse, and finally the closed form

    dx = (1/N) * gamma * ivar * (N*dout - sum(dout) - xhat * sum(dout*xhat))

which BatchNorm1d's graph must reproduce. Prints each step and the largest difference.
"""
from micrograd.engine import Value
from micrograd.nn import BatchNorm1d

X = [1.0, 2.5, -0.5, 4.0]         # one feature over a batch of N = 4
DOUT = [0.3, -1.2, 0.7, 0.1]      # the upstream gradient d loss / d out
GAMMA, BETA, EPS = 1.5, 0.2, 1e-5
N = len(X)


def forward_in_nine_steps(x, gamma, beta):
    """The engine's graph, one labelled node per step (lists hold one node per sample)."""
    g = {'x': x, 'gamma': gamma, 'beta': beta}
    g['mu'] = sum(x[1:], x[0]) * (1.0 / N)                  # step 1
    g['xmu'] = [xi - g['mu'] for xi in x]                   # step 2
    g['sq'] = [d ** 2 for d in g['xmu']]                    # step 3
    g['var'] = sum(g['sq'][1:], g['sq'][0]) * (1.0 / N)     # step 4
    g['sqrtvar'] = (g['var'] + EPS) ** 0.5                  # step 5
    g['ivar'] = 1.0 / g['sqrtvar']                          # step 6
    g['xhat'] = [d * g['ivar'] for d in g['xmu']]           # step 7
    g['gammax'] = [gamma * h for h in g['xhat']]            # step 8
    g['out'] = [gx + beta for gx in g['gammax']]            # step 9
    return g


def backward_by_hand(g, dout):
    """The same gradients, derived on paper, from step 9 back to step 1 (plain floats)."""
    xmu = [v.data for v in g['xmu']]
    xhat = [v.data for v in g['xhat']]
    gamma, ivar, sqrtvar, var = g['gamma'].data, g['ivar'].data, g['sqrtvar'].data, g['var'].data
    d = {'beta': sum(dout), 'gammax': list(dout)}                              # step 9
    d['gamma'] = sum(a * b for a, b in zip(dout, xhat))                        # step 8
    d['xhat'] = [a * gamma for a in dout]
    d['ivar'] = sum(a * b for a, b in zip(d['xhat'], xmu))                     # step 7
    d['xmu via step 7'] = [a * ivar for a in d['xhat']]
    d['sqrtvar'] = -1.0 / sqrtvar ** 2 * d['ivar']                             # step 6
    d['var'] = 0.5 / (var + EPS) ** 0.5 * d['sqrtvar']                         # step 5
    d['sq'] = [d['var'] / N] * N                                               # step 4
    d['xmu via step 3'] = [2.0 * a * b for a, b in zip(xmu, d['sq'])]          # step 3
    d['xmu'] = [a + b for a, b in zip(d['xmu via step 7'], d['xmu via step 3'])]  # step 2
    d['mu'] = -sum(d['xmu'])
    d['x'] = [a + d['mu'] / N for a in d['xmu']]                               # step 1
    return d


def closed_form(x_hat, dout, gamma, ivar):
    n = len(dout)
    sum_dout = sum(dout)
    sum_dout_xhat = sum(a * b for a, b in zip(dout, x_hat))
    return [gamma * ivar / n * (n * a - sum_dout - h * sum_dout_xhat) for a, h in zip(dout, x_hat)]


STEPS = [
    (9, 'out = gammax + beta', ['beta', 'gammax']),
    (8, 'gammax = gamma * xhat', ['gamma', 'xhat']),
    (7, 'xhat = xmu * ivar', ['ivar', 'xmu via step 7']),
    (6, 'ivar = 1 / sqrtvar', ['sqrtvar']),
    (5, 'sqrtvar = sqrt(var + eps)', ['var']),
    (4, 'var = 1/N * sum(sq)', ['sq']),
    (3, 'sq = xmu ** 2', ['xmu via step 3']),
    (2, 'xmu = x - mu', ['xmu', 'mu']),
    (1, 'mu = 1/N * sum(x)', ['x']),
]


def grads(node):
    return [v.grad for v in node] if isinstance(node, list) else node.grad


def show(value):
    return '[' + ', '.join(f'{v:.6f}' for v in value) + ']' if isinstance(value, list) \
        else f'{value:.6f}'


def largest_difference(a, b):
    a, b = (a, b) if isinstance(a, list) else ([a], [b])
    return max(abs(p - q) for p, q in zip(a, b))


if __name__ == '__main__':
    print(f'batch norm of one feature: x = {X}, gamma = {GAMMA}, beta = {BETA}, eps = {EPS}')
    print(f'upstream gradient dout = {DOUT}')
    graph = forward_in_nine_steps([Value(v) for v in X], Value(GAMMA), Value(BETA))
    loss = sum((o * d for o, d in zip(graph['out'], DOUT)), Value(0.0))  # so out.grad = dout
    loss.backward()
    by_hand = backward_by_hand(graph, DOUT)
    worst = 0.0
    for step, formula, names in STEPS:
        print(f'step {step}: {formula}')
        for name in names:
            if name not in graph:  # one of two paths into xmu: the engine sums them in .grad
                print(f'  d{name}: by hand {show(by_hand[name])}')
                continue
            engine = grads(graph[name])
            worst = max(worst, largest_difference(engine, by_hand[name]))
            print(f'  d{name:<8} engine  {show(engine)}')
            print(f'  {"":9} by hand {show(by_hand[name])}')
    print(f'largest difference, engine vs by hand: {worst:.3g}')

    x_hat = [v.data for v in graph['xhat']]
    formula = closed_form(x_hat, DOUT, GAMMA, graph['ivar'].data)
    print(f'closed form dx = {show(formula)}')
    print(f'largest difference, 9-step graph vs closed form: '
          f'{largest_difference(grads(graph["x"]), formula):.3g}')

    layer = BatchNorm1d(1, eps=EPS)
    layer.gamma[0].data, layer.beta[0].data = GAMMA, BETA
    xs = [Value(v) for v in X]
    out = layer([[x] for x in xs])
    sum((row[0] * d for row, d in zip(out, DOUT)), Value(0.0)).backward()
    print(f'BatchNorm1d dx = {show(grads(xs))}')
    print(f'largest difference, BatchNorm1d vs closed form: '
          f'{largest_difference(grads(xs), formula):.3g}')
