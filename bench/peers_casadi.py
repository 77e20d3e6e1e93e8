"""CasADi peers, run as child processes by bench/run.py.

casadi-c   CasADi's generated C for the whole batch: the per-sample loss and its gradient as an
           SX function (scalar expression graph, like ours), mapped over the batch with the
           sums reduced inside the map, the L2 term and the SGD update around it in MX;
           Function.generate, compiled with the default generated C's flags (spec['cflags'],
           one thread, as our default build), called through ctypes on preallocated buffers
           (the cheapest call CasADi's C API allows; casadi.external adds ~10 us per call).
casadi-mx  CasADi's MX form: the batched loss with matrix products, its gradient and the update
           as one MX Function evaluated by CasADi's virtual machine (no code generation).
"""
import ctypes
import os
import subprocess
import time

from common import REG, child_main, layer_shapes, measure


def _layers(p, sizes, ca):
    """Per layer (W, b) from the flat parameter column p, in micrograd's order."""
    out, k = [], 0
    for nin, nout in layer_shapes(sizes):
        block = ca.reshape(p[k:k + nout * (nin + 1)], nin + 1, nout).T  # nout x (nin + 1)
        out.append((block[:, :nin], block[:, nin]))
        k += nout * (nin + 1)
    return out


def _score(p, x, sizes, ca):
    h = x
    layers = _layers(p, sizes, ca)
    for i, (W, b) in enumerate(layers):
        h = ca.mtimes(W, h) + b
        if i < len(layers) - 1:
            h = ca.fmax(h, 0)
    return h


def _loss(p, X, Y, sizes, n, ca):
    data = ca.sum2(ca.fmax(1 - Y * _score(p, X, sizes, ca), 0)) / n
    return data + REG * ca.sumsqr(p)


def run_c(spec):
    import casadi as ca
    sizes, n, P = spec['sizes'], len(spec['X']), len(spec['params0'])
    start = time.perf_counter()
    p, x, t = ca.SX.sym('p', P), ca.SX.sym('x', 2), ca.SX.sym('t')
    li = ca.fmax(1 - t * _score(p, x, sizes, ca), 0)
    sample = ca.Function('sample', [p, x, t], [li, ca.gradient(li, p)])
    batch = sample.map('batch', 'serial', n, [0], [0, 1])  # p shared, both outputs summed
    pm, Xm, Ym, lr = ca.MX.sym('p', P), ca.MX.sym('X', 2, n), ca.MX.sym('Y', 1, n), ca.MX.sym('lr')
    total, grads = batch(pm, Xm, Ym)
    loss = total / n + REG * ca.sumsqr(pm)
    g = grads / n + 2 * REG * pm
    step_fn = ca.Function('casadi_step', [pm, Xm, Ym, lr], [loss, pm - lr * g])
    os.makedirs(spec['workdir'], exist_ok=True)
    c_path = os.path.join(spec['workdir'], 'casadi_step.c')
    so_path = os.path.join(spec['workdir'], f'casadi_step_{os.getpid()}.so')
    cwd = os.getcwd()
    os.chdir(spec['workdir'])
    try:
        step_fn.generate('casadi_step.c')
    finally:
        os.chdir(cwd)
    generated = time.perf_counter()
    flags = spec.get('cflags') or ['-O2', '-fPIC', '-shared']
    cc = subprocess.run([os.environ.get('CC', 'cc'), *flags, '-o', so_path, c_path, '-lm'],
                        capture_output=True, text=True)
    if cc.returncode:
        raise RuntimeError(f'compiling CasADi output failed:\n{cc.stderr[-2000:]}')
    compiled = time.perf_counter()
    lib = ctypes.CDLL(so_path)
    os.unlink(so_path)  # the mapping stays valid

    size = lib.casadi_step_casadi_int_size
    size.restype = ctypes.c_int
    cint = {4: ctypes.c_int, 8: ctypes.c_longlong}[size()]
    sizes_out = [cint() for _ in range(4)]
    lib.casadi_step_work(*[ctypes.byref(s) for s in sizes_out])
    n_arg, n_res, n_iw, n_w = [s.value for s in sizes_out]
    double_p = ctypes.POINTER(ctypes.c_double)
    lib.casadi_step_incref()
    lib.casadi_step_checkout.restype = ctypes.c_int
    mem = lib.casadi_step_checkout()
    call = lib.casadi_step
    call.argtypes = [ctypes.POINTER(double_p), ctypes.POINTER(double_p), ctypes.POINTER(cint),
                     double_p, ctypes.c_int]
    call.restype = ctypes.c_int

    p_in, p_out = (ctypes.c_double * P)(), (ctypes.c_double * P)()
    data = (ctypes.c_double * (2 * n))(*[v for row in spec['X'] for v in row])  # column-major 2 x n
    labels = (ctypes.c_double * n)(*spec['y'])
    rate, loss_out = ctypes.c_double(), ctypes.c_double()
    arg = (double_p * max(n_arg, 4))()
    res = (double_p * max(n_res, 2))()
    arg[0], arg[1], arg[2] = [ctypes.cast(a, double_p) for a in (p_in, data, labels)]
    arg[3] = ctypes.cast(ctypes.byref(rate), double_p)
    res[0], res[1] = ctypes.cast(ctypes.byref(loss_out), double_p), ctypes.cast(p_out, double_p)
    iw, w = (cint * max(n_iw, 1))(), (ctypes.c_double * max(n_w, 1))()
    nbytes = 8 * P

    def fresh():
        p_in[:] = spec['params0']
        return None

    def step(_, lr):
        rate.value = lr
        if call(arg, res, iw, w, mem):
            raise RuntimeError('casadi_step failed')
        ctypes.memmove(p_in, p_out, nbytes)
        return loss_out.value

    result = measure(spec, fresh, step, lambda _: list(p_in))
    result['setup_seconds'] = compiled - start
    result['info'] = (f'casadi {ca.__version__}: SX sample + map, generate '
                      f'{generated - start:.2f} s, cc {" ".join(flags)} '
                      f'{compiled - generated:.2f} s, '
                      f'{os.path.getsize(c_path) // 1024} KiB of C')
    return result


def run_mx(spec):
    import casadi as ca
    sizes, n, P = spec['sizes'], len(spec['X']), len(spec['params0'])
    start = time.perf_counter()
    pm, Xm, Ym, lr = ca.MX.sym('p', P), ca.MX.sym('X', 2, n), ca.MX.sym('Y', 1, n), ca.MX.sym('lr')
    loss = _loss(pm, Xm, Ym, sizes, n, ca)
    step_fn = ca.Function('step', [pm, Xm, Ym, lr], [loss, pm - lr * ca.gradient(loss, pm)])
    X = ca.DM(spec['X']).T
    Y = ca.DM(spec['y']).T
    setup = time.perf_counter() - start

    def fresh():
        return {'p': ca.DM(spec['params0'])}

    def step(state, rate):
        loss, state['p'] = step_fn(state['p'], X, Y, rate)
        return loss

    result = measure(spec, fresh, step, lambda s: [float(v) for v in s['p'].full().ravel()])
    result['setup_seconds'] = setup
    result['info'] = f'casadi {ca.__version__}: MX Function, virtual machine'
    return result


def run(spec):
    return run_c(spec) if spec['peer'] == 'casadi-c' else run_mx(spec)


if __name__ == '__main__':
    child_main(run)
