"""JAX peer: jit(value_and_grad) of the batched loss plus the SGD update, one compiled call per
step, float64 on CPU. Run as a child process by bench/run.py."""
import os
import time

from common import REG, child_main, join_layers, measure, split_layers


def run(spec):
    os.environ.setdefault('JAX_PLATFORMS', 'cpu')
    import jax
    import jax.numpy as jnp
    jax.config.update('jax_enable_x64', True)
    X = jnp.asarray(spec['X'], dtype=jnp.float64)
    y = jnp.asarray(spec['y'], dtype=jnp.float64)
    initial = [(jnp.asarray(W, dtype=jnp.float64), jnp.asarray(b, dtype=jnp.float64))
               for W, b in split_layers(spec['params0'], spec['sizes'])]

    def loss_fn(params, X, y):
        h = X
        for i, (W, b) in enumerate(params):
            h = h @ W.T + b
            if i < len(params) - 1:
                h = jax.nn.relu(h)
        data = jnp.mean(jax.nn.relu(1 - y * h[:, 0]))
        return data + REG * sum(jnp.sum(W * W) + jnp.sum(b * b) for W, b in params)

    @jax.jit
    def train_step(params, X, y, lr):
        loss, grads = jax.value_and_grad(loss_fn)(params, X, y)
        return loss, jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads)

    start = time.perf_counter()
    loss, _ = train_step(initial, X, y, 1.0)
    loss.block_until_ready()
    jit_seconds = time.perf_counter() - start

    def fresh():
        return {'params': initial}

    def step(state, lr):
        loss, state['params'] = train_step(state['params'], X, y, lr)
        loss.block_until_ready()
        return loss

    def final(state):
        return join_layers([(W.tolist(), b.tolist()) for W, b in state['params']])

    result = measure(spec, fresh, step, final)
    result['setup_seconds'] = jit_seconds
    result['info'] = f'jax {jax.__version__}, {jax.devices()[0].platform}'
    return result


if __name__ == '__main__':
    child_main(run)
