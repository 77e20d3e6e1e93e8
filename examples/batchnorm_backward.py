"""The batch norm backward pass, derived through its computational graph in 9 steps.

The forward pass of batch normalisation for a batch x of N rows and D features, split into 9
elementary steps (the classic derivation by F. Kratzert). Each feature j is normalised over the
N rows of its column. The engine records each step as labelled nodes: the result of step
`name` for row i and feature j is labelled 'name[i][j]' (or 'name[j]' for the per-feature
steps: mu, var, sqrtvar, ivar), so a rendered graph names every step. backward() then gives
every node's gradient. Next to it, the same gradients derived by hand, step by step in reverse,
and finally the closed form, per feature,

    dx = (1/N) * gamma * ivar * (N*dout - sum(dout) - xhat * sum(dout*xhat))

which BatchNorm1d's graph must reproduce. Prints each step and the largest difference.
"""
from micrograd.engine import Value
from micrograd.nn import BatchNorm1d

X = [[1.0, -2.0, 0.5],            # a batch of N = 4 rows and D = 3 features
     [2.5, 0.0, 0.25],
     [-0.5, 3.0, -1.0],
     [4.0, 1.0, 2.0]]
DOUT = [[0.3, -0.4, 1.0],         # the upstream gradient d loss / d out, one per output
        [-1.2, 0.8, 0.2],
        [0.7, 0.1, -0.6],
        [0.1, -0.9, 0.5]]
GAMMA, BETA, EPS = [1.5, 0.5, -2.0], [0.2, -0.1, 0.0], 1e-5
N, D = len(X), len(X[0])
ROWS, FEATURES = range(N), range(D)


def labelled(node, name):
    node.label = name
    return node


def column_sum(rows, j):
    """rows[0][j] + rows[1][j] + ..., as engine nodes."""
    return sum((row[j] for row in rows[1:]), rows[0][j])


def forward_in_nine_steps(x, gamma, beta):
    """The engine's graph, each step's nodes labelled; per-sample steps are N x D lists."""
    g = {'x': x, 'gamma': gamma, 'beta': beta}

    def per_feature(name, fn):      # one node per feature j
        g[name] = [labelled(fn(j), f'{name}[{j}]') for j in FEATURES]

    def per_sample(name, fn):       # one node per row i and feature j
        g[name] = [[labelled(fn(i, j), f'{name}[{i}][{j}]') for j in FEATURES] for i in ROWS]

    per_feature('mu', lambda j: column_sum(x, j) * (1.0 / N))                  # step 1
    per_sample('xmu', lambda i, j: x[i][j] - g['mu'][j])                       # step 2
    per_sample('sq', lambda i, j: g['xmu'][i][j] ** 2)                         # step 3
    per_feature('var', lambda j: column_sum(g['sq'], j) * (1.0 / N))           # step 4
    per_feature('sqrtvar', lambda j: (g['var'][j] + EPS) ** 0.5)               # step 5
    per_feature('ivar', lambda j: 1.0 / g['sqrtvar'][j])                       # step 6
    per_sample('xhat', lambda i, j: g['xmu'][i][j] * g['ivar'][j])             # step 7
    per_sample('gammax', lambda i, j: gamma[j] * g['xhat'][i][j])              # step 8
    per_sample('out', lambda i, j: g['gammax'][i][j] + beta[j])                # step 9
    return g


def backward_by_hand(g, dout):
    """The same gradients, derived on paper, from step 9 back to step 1 (plain floats)."""
    xmu = [[v.data for v in row] for row in g['xmu']]
    xhat = [[v.data for v in row] for row in g['xhat']]
    gamma = [v.data for v in g['gamma']]
    ivar = [v.data for v in g['ivar']]
    sqrtvar = [v.data for v in g['sqrtvar']]
    var = [v.data for v in g['var']]

    def colsum(m):
        return [sum(m[i][j] for i in ROWS) for j in FEATURES]

    def per_sample(fn):
        return [[fn(i, j) for j in FEATURES] for i in ROWS]

    d = {'beta': colsum(dout), 'gammax': [list(row) for row in dout]}                  # step 9
    d['gamma'] = colsum(per_sample(lambda i, j: dout[i][j] * xhat[i][j]))              # step 8
    d['xhat'] = per_sample(lambda i, j: dout[i][j] * gamma[j])
    d['ivar'] = colsum(per_sample(lambda i, j: d['xhat'][i][j] * xmu[i][j]))           # step 7
    d['xmu via step 7'] = per_sample(lambda i, j: d['xhat'][i][j] * ivar[j])
    d['sqrtvar'] = [-1.0 / sqrtvar[j] ** 2 * d['ivar'][j] for j in FEATURES]           # step 6
    d['var'] = [0.5 / (var[j] + EPS) ** 0.5 * d['sqrtvar'][j] for j in FEATURES]       # step 5
    d['sq'] = per_sample(lambda i, j: d['var'][j] / N)                                 # step 4
    d['xmu via step 3'] = per_sample(lambda i, j: 2.0 * xmu[i][j] * d['sq'][i][j])     # step 3
    d['xmu'] = per_sample(lambda i, j: d['xmu via step 7'][i][j] + d['xmu via step 3'][i][j])
    d['mu'] = [-s for s in colsum(d['xmu'])]                                           # step 2
    d['x'] = per_sample(lambda i, j: d['xmu'][i][j] + d['mu'][j] / N)                  # step 1
    return d


def closed_form(x_hat, dout, gamma, ivar):
    """dx for the whole batch, feature by feature."""
    dx = [[0.0] * D for _ in ROWS]
    for j in FEATURES:
        sum_dout = sum(dout[i][j] for i in ROWS)
        sum_dout_xhat = sum(dout[i][j] * x_hat[i][j] for i in ROWS)
        for i in ROWS:
            dx[i][j] = gamma[j] * ivar[j] / N * (N * dout[i][j] - sum_dout
                                                  - x_hat[i][j] * sum_dout_xhat)
    return dx


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
    return [grads(v) for v in node] if isinstance(node, list) else node.grad


def flat(value):
    return [v for item in value for v in flat(item)] if isinstance(value, list) else [value]


def show(value):
    if isinstance(value, list):
        return '[' + ', '.join(show(v) for v in value) + ']'
    return f'{value:.6f}'


def largest_difference(a, b):
    return max(abs(p - q) for p, q in zip(flat(a), flat(b)))


def engine_graph():
    """The 9-step graph on X, backpropagated so that out[i][j].grad = DOUT[i][j]."""
    graph = forward_in_nine_steps([[labelled(Value(v), f'x[{i}][{j}]') for j, v in enumerate(row)]
                                   for i, row in enumerate(X)],
                                  [labelled(Value(v), f'gamma[{j}]') for j, v in enumerate(GAMMA)],
                                  [labelled(Value(v), f'beta[{j}]') for j, v in enumerate(BETA)])
    loss = sum((o * d for o, d in zip(flat(graph['out']), flat(DOUT))), Value(0.0))
    loss.backward()
    return graph


if __name__ == '__main__':
    print(f'batch norm of a batch of N = {N} rows and D = {D} features, eps = {EPS}')
    print(f'x = {X}')
    print(f'gamma = {GAMMA}, beta = {BETA}')
    print(f'upstream gradient dout = {DOUT}')
    graph = engine_graph()
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

    x_hat = [[v.data for v in row] for row in graph['xhat']]
    formula = closed_form(x_hat, DOUT, GAMMA, [v.data for v in graph['ivar']])
    print(f'closed form dx = {show(formula)}')
    print(f'largest difference, 9-step graph vs closed form: '
          f'{largest_difference(grads(graph["x"]), formula):.3g}')

    layer = BatchNorm1d(D, eps=EPS)
    layer.set_parameter_values(GAMMA + BETA)
    xs = [[Value(v) for v in row] for row in X]
    out = layer(xs)
    sum((o * d for o, d in zip(flat(out), flat(DOUT))), Value(0.0)).backward()
    print(f'BatchNorm1d dx = {show(grads(xs))}')
    print(f'largest difference, BatchNorm1d vs closed form: '
          f'{largest_difference(grads(xs), formula):.3g}')
