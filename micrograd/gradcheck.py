"""Check `backward()` against central finite differences, for any scalar function of Values."""
from micrograd.engine import Value


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with its finite-difference estimate."""


def numerical_grad(f, xs, eps=1e-6):
    """d f / d x_i by central differences, evaluating f on plain Values."""
    grads = []
    for i in range(len(xs)):
        h = eps * max(1.0, abs(xs[i]))  # relative step: an absolute one vanishes in rounding
        up = [Value(x + (h if j == i else 0.0)) for j, x in enumerate(xs)]
        down = [Value(x - (h if j == i else 0.0)) for j, x in enumerate(xs)]
        grads.append((f(*up).data - f(*down).data) / (up[i].data - down[i].data))
    return grads


def gradcheck(f, xs, eps=1e-6, rtol=1e-4, atol=1e-6, raise_exception=True):
    """True when backward() through `f(*Values)` matches central differences at the floats `xs`.

    Otherwise raise GradcheckError naming the input (or return False if raise_exception=False).
    """
    inputs = [Value(x) for x in xs]
    f(*inputs).backward()
    for i, (v, estimate) in enumerate(zip(inputs, numerical_grad(f, xs, eps))):
        if not abs(v.grad - estimate) <= atol + rtol * abs(estimate):
            if raise_exception:
                raise GradcheckError(f'input {i} (= {xs[i]!r}): backward() gives {v.grad!r}, '
                                     f'central difference gives {estimate!r}')
            return False
    return True
