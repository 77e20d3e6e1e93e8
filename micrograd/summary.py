"""A model's per-layer table, computed from shapes alone: no `Value` is built, so VGG-16 at
224x224 prints in a fraction of a second.

    summary(model, (3, 224, 224))      # or model.summary((3, 224, 224)), which prints it

Per layer: the output shape, the parameters, the activations (the numbers the layer stores
per image), their memory in float32 and float64, and the `Value` nodes this engine would
record for them. Totals at the bottom, with the backward pass estimated as the tutorials do
(x2: every stored activation gets a gradient of the same size). Memory is in MB of 10^6 bytes.

Containers (Sequential, MLP, Residual, Concat) are opened up, one row per layer inside; any
other module is one row, so a module of your own needs only `output_shape(input_shape)` (and
its parameters are counted from its children).
"""
from micrograd import nn

# The engine's memory per recorded node: a Value with its float data and grad, its argument
# tuple and its label. Measured with tracemalloc on a 3->8 channel 3x3 convolution of a 16x16
# image (117,152 nodes): 172 bytes per node after the forward pass, 236 at the peak of
# backward() (the topological order and the visited set), 201 after it (every grad a float of
# its own). examples/vgg_memory.py measures it again on the machine it runs on.
BYTES_PER_VALUE_NODE = 200
MB = 1e6


class Row:
    """One layer of the table."""

    def __init__(self, name, module, output_shape, parameters, activations, value_nodes):
        self.name, self.module, self.output_shape = name, module, tuple(output_shape)
        self.parameters, self.activations, self.value_nodes = parameters, activations, value_nodes

    @property
    def kind(self):
        return self.module if isinstance(self.module, str) else nn._describe(self.module)


class Summary:
    """The rows of `summary(model, input_shape)` and their totals; str() is the table."""

    def __init__(self, model, input_shape, rows):
        self.model, self.input_shape, self.rows = model, tuple(input_shape), rows
        self.output_shape = rows[-1].output_shape
        self.parameters = model.parameter_count()
        self.activations = sum(row.activations for row in rows)  # the input row included
        counts = [row.value_nodes for row in rows]
        self.value_nodes = None if None in counts else sum(counts)

    def forward_bytes(self, bytes_per_number=4):
        """Memory for one image's activations in the forward pass (float32 by default)."""
        return self.activations * bytes_per_number

    def training_bytes(self, bytes_per_number=4):
        """Forward plus backward, estimated as the tutorials do: twice the forward memory."""
        return 2 * self.forward_bytes(bytes_per_number)

    def __str__(self):
        header = ('layer', 'type', 'output shape', 'params', 'activations', 'fwd f32 MB',
                  'fwd f64 MB', 'Value nodes')
        cells = [header] + [(row.name, row.kind, shape_text(row.output_shape),
                             f'{row.parameters:,}', f'{row.activations:,}',
                             f'{row.activations * 4 / MB:.2f}', f'{row.activations * 8 / MB:.2f}',
                             '?' if row.value_nodes is None else f'{row.value_nodes:,}')
                            for row in self.rows]
        widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
        lines = ['  '.join(cell.ljust(w) if i < 2 else cell.rjust(w)
                           for i, (cell, w) in enumerate(zip(line, widths))).rstrip()
                 for line in cells]
        lines.insert(1, '-' * len(lines[0]))
        return '\n'.join(lines + ['-' * len(lines[0])] + self.totals())

    def totals(self):
        f32, f64 = self.forward_bytes(4) / MB, self.forward_bytes(8) / MB
        lines = [f'parameters: {self.parameters:,} ({self.parameters * 4 / MB:,.1f} MB float32, '
                 f'{self.parameters * 8 / MB:,.1f} MB float64)',
                 f'activations per image: {self.activations:,} (the input included)',
                 f'forward memory per image: {f32:,.1f} MB float32, {f64:,.1f} MB float64',
                 f'forward + backward per image (x2, as the tutorials estimate): '
                 f'{2 * f32:,.1f} MB float32, {2 * f64:,.1f} MB float64']
        if self.value_nodes is not None:
            lines.append(f'this engine: {self.value_nodes:,} Value nodes per image, about '
                         f'{bytes_text(self.value_nodes * BYTES_PER_VALUE_NODE)} at '
                         f'{BYTES_PER_VALUE_NODE} bytes per node')
        return lines


def bytes_text(n):
    """1.2 MB, 3.4 GB, 5.6 TB (powers of 10)."""
    for unit, scale in (('TB', 1e12), ('GB', 1e9)):
        if n >= scale:
            return f'{n / scale:,.1f} {unit}'
    return f'{n / MB:,.1f} MB'


def shape_text(shape):
    return 'x'.join(str(n) for n in shape) if shape else 'scalar'


def size(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def summary(model, input_shape):
    """The per-layer table of `model` for one input of `input_shape`, from shapes alone:
    (channels, height, width) for an image, (n,) for a list of n numbers."""
    if not isinstance(model, nn.Module):
        raise TypeError(f'summary takes a micrograd.nn Module, got {type(model).__name__}')
    input_shape = tuple(input_shape)
    rows = [Row('input', '', input_shape, 0, size(input_shape), 0)]
    rows += layer_rows(model, input_shape, '')
    return Summary(model, input_shape, rows)


# ---- walking the model: containers are opened, every other module is one row ---------------

def layer_rows(module, input_shape, name):
    """The rows of `module` applied to an input of `input_shape`, named under `name`."""
    if isinstance(module, nn.Sequential):
        return chain_rows(module.modules, input_shape, name)
    if isinstance(module, nn.MLP):
        return chain_rows(module.layers, input_shape, name)
    if isinstance(module, nn.Residual):
        return residual_rows(module, input_shape, name)
    if isinstance(module, nn.Concat):
        return concat_rows(module, input_shape, name)
    output_shape = module.output_shape(input_shape)
    return [Row(name or 'model', module, output_shape, module.parameter_count(),
                stored_activations(module, output_shape),
                value_nodes(module, input_shape, output_shape))]


def chain_rows(modules, input_shape, name):
    rows = []
    for i, m in enumerate(modules):
        if not isinstance(m, nn.Module):
            raise TypeError(f'{m!r} is not a Module, so it has no declared output shape')
        rows += layer_rows(m, input_shape, f'{name}.L{i}' if name else f'L{i}')
        input_shape = rows[-1].output_shape
    return rows


def residual_rows(module, input_shape, name):
    """The block's rows, the shortcut's if any, then the sum (one new number per output)."""
    if module.shortcut is None:
        rows = layer_rows(module.block, input_shape, name or 'block')
        kind = 'x + block(x)'
    else:
        rows = layer_rows(module.block, input_shape, f'{name}.block' if name else 'block')
        rows += layer_rows(module.shortcut, input_shape,
                           f'{name}.shortcut' if name else 'shortcut')
        kind = 'shortcut(x) + block(x)'
    output_shape = module.output_shape(input_shape)  # checks the two shapes match
    n = size(output_shape)
    return rows + [Row(f'{name}.add' if name else 'add', kind, output_shape, 0, n, n)]


def concat_rows(module, input_shape, name):
    """Each branch's rows, then the concatenation: it joins the branches' lists of channels,
    so in this engine it stores no new number (a framework copies them into one tensor)."""
    rows = []
    for i, branch in enumerate(module.branches):
        rows += layer_rows(branch, input_shape, f'{name}.B{i}' if name else f'B{i}')
    output_shape = module.output_shape(input_shape)
    return rows + [Row(f'{name}.concat' if name else 'concat', 'concatenate channels',
                       output_shape, 0, 0, 0)]


def stored_activations(module, output_shape):
    """Numbers a layer stores: its output, except for a layer that only passes its input on."""
    if passes_input_on(module):
        return 0
    return size(output_shape)


def passes_input_on(module):
    """Flatten regroups its input, and dropout in eval mode or a 'linear' activation returns it
    unchanged: no new numbers, no new nodes."""
    return (isinstance(module, nn.Flatten)
            or isinstance(module, nn.Dropout) and (not module.training or module.p == 0.0)
            or isinstance(module, nn.Activation) and module.name in ('linear', 'identity'))


# ---- Value nodes: what the engine records, counted from shapes --------------------------------

def value_nodes(module, input_shape, output_shape):
    """How many Value nodes `module` records for one input given as Values (parameters and
    input not counted; a float constant in an op, like conv padding, is a node of its own).
    None for a module this file does not know."""
    for kind, count in NODE_COUNTS:
        if isinstance(module, kind):
            return count(module, input_shape, output_shape)
    return None


def neuron_nodes(neuron):
    """b + w0*x0 + w1*x1 + ...: nin products, nin sums (one fewer without b), and the
    activation if any."""
    nin = len(neuron.w)
    sums = nin if neuron.b is not None else nin - 1
    return nin + sums + (neuron.activation not in ('linear', 'identity'))


def conv_nodes(conv, input_shape, output_shape):
    channels, height, width = input_shape
    out_channels, out_h, out_w = output_shape
    k, s, p = conv.kernel_size, conv.stride, conv.padding
    per_output = neuron_nodes(conv.kernels[0])
    # every tap on a padding 0.0 wraps that float in a Value, once per output channel
    taps_inside = (taps_inside_image(height, out_h, k, s, p)
                   * taps_inside_image(width, out_w, k, s, p))
    padding_taps = out_h * out_w * k * k - taps_inside
    return out_channels * (out_h * out_w * per_output + channels * padding_taps)


def taps_inside_image(size_, count, k, s, p):
    """Along one axis: how many (window, tap) pairs of `count` windows fall inside the image."""
    return sum(min(size_, i * s - p + k) - max(0, i * s - p) for i in range(count))


def layer_nodes(layer, input_shape, output_shape):
    return len(layer.neurons) * neuron_nodes(layer.neurons[0])


def pool_nodes(pool, input_shape, output_shape):
    """A window of w pixels: w - 1 `maximum`s of 7 nodes each (sub, step, mul, the constant
    1.0, 1.0 - step, mul, add) for max pooling; w - 1 sums, then a division by the constant
    w (2 nodes) for average pooling."""
    channels, height, width = input_shape
    rows, cols = pool.windows(height), pool.windows(width)
    pixels = sum(b - a for a, b in rows) * sum(b - a for a, b in cols)
    windows = len(rows) * len(cols)
    if isinstance(pool, nn.MaxPool2d):
        return channels * 7 * (pixels - windows)
    return channels * (pixels - windows + 2 * windows)


def batchnorm_nodes(bn, input_shape, output_shape):
    """In evaluation mode: (x - mean) * inv_std, both float constants (2 nodes each), then
    gamma * and + beta: 6 per number. In training mode, for a batch of one image, a channel of
    n pixels takes 7n + 5 (mean, centre, square, variance, its root, and the affine step).
    BatchNorm1d in training mode needs a batch of rows, so it has no per-sample count."""
    if not bn.training:
        return 6 * size(output_shape)
    if not isinstance(bn, nn.BatchNorm2d):
        return None
    channels, height, width = output_shape
    return channels * (7 * height * width + 5)


def elementwise_nodes(module, input_shape, output_shape):
    """One node per number (an activation), two for dropout (a constant, a product)."""
    if passes_input_on(module):
        return 0
    return size(output_shape) * (2 if isinstance(module, nn.Dropout) else 1)


NODE_COUNTS = [
    (nn.Conv2d, conv_nodes),
    (nn.Layer, layer_nodes),
    (nn.Neuron, lambda neuron, i, o: neuron_nodes(neuron)),
    (nn._Pool2d, pool_nodes),
    (nn.BatchNorm1d, batchnorm_nodes),
    (nn.Activation, elementwise_nodes),
    (nn.Dropout, elementwise_nodes),
    (nn.Flatten, lambda m, i, o: 0),
]
