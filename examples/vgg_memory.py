"""VGG-16's memory, layer by layer: what the tutorials claim, what the shapes give, and what this
engine would need.

The CS231n notes list VGG-16's layers with their activations and weights and conclude "TOTAL
memory: 24M * 4 bytes ~= 93MB / image (only forward! ~*2 for bwd)" and "TOTAL params: 138M
parameters". This example prints the same table from `summary` (shapes only: no Value is
built, so it takes a fraction of a second), then adds the table's own rows up, and finally
counts the engine's Value nodes for one image and multiplies them by the bytes per node it
measures here with tracemalloc.

Run: python examples/vgg_memory.py
"""
import gc
import random
import time
import tracemalloc

from micrograd.architectures import vgg
from micrograd.engine import Value, topo_order
from micrograd.nn import Conv2d, Dropout, Flatten, Neuron, shapes_only
from micrograd.summary import MB, summary

INPUT = (3, 224, 224)
CLAIMED_ACTIVATIONS = 24e6     # CS231n: "TOTAL memory: 24M * 4 bytes ~= 93MB / image"
CLAIMED_PARAMETERS = 138e6     # CS231n: "TOTAL params: 138M parameters"


def vgg16_summary():
    start = time.perf_counter()
    with shapes_only():
        model = vgg(16)
    table = summary(model, INPUT)
    text = str(table)
    return model, table, text, time.perf_counter() - start


def tutorial_rows(table):
    """The rows the CS231n listing has: the input, 13 convolutions (each with its ReLU in
    place), 5 pools and 3 fully connected layers; not torchvision's 7x7 average pool (the
    identity at 224x224), the flatten or the dropouts."""
    return [row for row in table.rows
            if not isinstance(row.module, (Dropout, Flatten)) and 'AdaptiveAvgPool' not in row.kind]


def count_biases(model):
    """How many neurons (convolution kernels and fully connected units) have a bias."""
    count, stack = 0, [model]
    while stack:
        module = stack.pop()
        count += isinstance(module, Neuron) and module.b is not None
        stack.extend(module.children())
    return count


def measure_bytes_per_node():
    """Bytes per Value node of a small convolution's graph: after the forward pass, and at the
    peak of backward() (which adds the topological order and the visited set)."""
    rng = random.Random(0)
    conv = Conv2d(3, 8, 3, padding=1, activation='relu', rng=rng)
    image = [[[Value(rng.random()) for _ in range(12)] for _ in range(12)] for _ in range(3)]
    gc.collect()
    tracemalloc.start()
    outputs = Flatten()(conv(image))
    forward_bytes, _ = tracemalloc.get_traced_memory()
    if hasattr(tracemalloc, 'reset_peak'):
        tracemalloc.reset_peak()
        still_alive = 0
    else:  # Python 3.8 has no reset_peak: trace afresh and add the forward graph, still alive
        tracemalloc.stop()
        tracemalloc.start()
        still_alive = forward_bytes
    loss = sum(outputs[1:], outputs[0])
    loss.backward()
    _, backward_peak = tracemalloc.get_traced_memory()
    backward_peak += still_alive
    tracemalloc.stop()
    inputs = {id(v) for channel in image for row in channel for v in row}
    nodes = sum(1 for v in topo_order([loss]) if id(v) not in inputs)
    return nodes, forward_bytes / nodes, backward_peak / nodes


def main():
    model, table, text, seconds = vgg16_summary()
    print(text)
    print(f'(built under shapes_only() and tabulated in {seconds:.2f} s)')
    print()

    rows = tutorial_rows(table)
    listed = sum(row.activations for row in rows)
    convolutions = sum(row.activations for row in rows if 'Conv2d' in row.kind)
    biases = count_biases(model)
    print('the tutorial\'s claims against the computation, per image, float32:')
    print(f'  claimed activations: {CLAIMED_ACTIVATIONS / 1e6:.0f}M numbers = '
          f'{CLAIMED_ACTIVATIONS * 4 / MB:.0f} MB forward, x2 = '
          f'{2 * CLAIMED_ACTIVATIONS * 4 / MB:.0f} MB with backward')
    print(f'  the listed rows add up to {listed:,} numbers = {listed * 4 / MB:.1f} MB forward, '
          f'x2 = {2 * listed * 4 / MB:.1f} MB with backward')
    print(f'  with every convolution\'s output stored twice (before and after its ReLU, no '
          f'in-place ReLU): {listed + convolutions:,} = {(listed + convolutions) * 4 / MB:.1f} MB')
    print(f'  claimed parameters: {CLAIMED_PARAMETERS / 1e6:.0f}M; counted: {table.parameters:,} '
          f'({table.parameters - biases:,} weights + {biases:,} biases; the listing counts the '
          f'weights only)')
    print(f'  left out of the per-image figure: the parameters, {table.parameters * 4 / MB:.0f} '
          f'MB, their gradients, {table.parameters * 4 / MB:.0f} MB, and any optimizer state '
          f'(momentum: {table.parameters * 4 / MB:.0f} MB more)')
    print()

    nodes, forward_per_node, backward_per_node = measure_bytes_per_node()
    total = table.value_nodes
    print(f'this engine, measured on a 3->8 channel 3x3 convolution ({nodes:,} nodes): '
          f'{forward_per_node:.0f} bytes per node after forward, {backward_per_node:.0f} at '
          f'the peak of backward')
    print(f'VGG-16, one 224x224 image: {total:,} Value nodes '
          f'({total / listed:,.0f} per activation)')
    print(f'  forward: {total * forward_per_node / 1e12:.1f} TB; forward and backward: '
          f'{total * backward_per_node / 1e12:.1f} TB; against '
          f'{2 * listed * 4 / MB:.0f} MB of float32 activations and gradients')


if __name__ == '__main__':
    main()
