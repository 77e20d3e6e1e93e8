"""The main demo (`make demo`): micrograd's README example, then a small training run."""
import pathlib
import random
import runpy

from micrograd.engine import Value

HERE = pathlib.Path(__file__).parent

print('== micrograd README example (expect 24.7041, 138.8338, 645.5773)')
runpy.run_path(str(HERE / 'readme_example.py'))

print('== one tanh neuron learns y = x1 AND x2 (20 SGD steps)')
rng = random.Random(0)
w = [Value(rng.uniform(-1, 1), label=f'w{i}') for i in range(2)]
b = Value(0.0, label='b')
data = [((0.0, 0.0), -1.0), ((0.0, 1.0), -1.0), ((1.0, 0.0), -1.0), ((1.0, 1.0), 1.0)]
for step in range(20):
    loss = sum(((w[0] * x1 + w[1] * x2 + b).tanh() - y) ** 2 for (x1, x2), y in data)
    for p in w + [b]:
        p.grad = 0.0
    loss.backward()
    for p in w + [b]:
        p.data -= 0.1 * p.grad
    if step % 5 == 4:
        print(f'step {step + 1:2d} loss {loss.data:.4f}')
