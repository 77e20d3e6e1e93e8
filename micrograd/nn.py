"""Neural-network modules built from engine `Value`s: neurons, layers, MLPs and a few more.

`Module`, `Neuron`, `Layer` and `MLP` are drop-in compatible with micrograd 0.1.0: the same
constructor signatures, parameter order (per neuron: weights, then bias), reprs, and the same
random draws (`random.uniform(-1, 1)` per weight from the global `random` module, bias 0), so
after `random.seed(1337)` micrograd code builds the very same network.

Beyond micrograd: a per-layer activation, seedable initialisation, setting, saving and loading
all parameters, a `Perceptron`, `BatchNorm1d`, `Conv2d`, `MaxPool2d`, `AvgPool2d`, `Flatten`,
`Residual` and `Sequential`, and for the named CNNs of `architectures.py`: `BatchNorm2d`,
`AdaptiveAvgPool2d`, `GlobalAvgPool2d`, `Concat`, `Activation` and `Dropout`. Every module
declares `output_shape` and `parameter_count`, so `summary.py` can tabulate a model from shapes
alone, and a model built under `shapes_only()` has sizes but no weights. A batch goes through
`model.batch(inputs)`, so that batch norm sees the whole batch. Losses live in `losses.py`,
optimisers in `optim.py`.

Every module builds its graph only from the engine's ops (no hand-written `_backward`), so the
code generator can compile any model. Every parameter carries a `label` for the graph renderer:
in an MLP 'L{layer}.N{neuron}.w{i}' and 'L{layer}.N{neuron}.b'; each neuron's output is labelled
'L{layer}.N{neuron}'. A standalone Layer uses 'N{j}.w{i}', a standalone Neuron 'w{i}', 'b' and
'out'.
"""
import contextlib
import json
import numbers
import os
import random
import tempfile

from micrograd.engine import Value

# name -> (the Value method that applies it, or None for the identity; the repr prefix)
ACTIVATIONS = {
    'relu': (Value.relu, 'ReLU'),
    'tanh': (Value.tanh, 'Tanh'),
    'sigmoid': (Value.sigmoid, 'Sigmoid'),
    'linear': (None, 'Linear'),
    'identity': (None, 'Linear'),
}

PARAMETER_FILE_FORMAT = 'micrograd.nn parameters'


# ---- input checks, shared by every module ------------------------------------------------------

def check_activation(name):
    """Return `name` if it is a known activation, else raise a ValueError listing them."""
    if not isinstance(name, str) or name not in ACTIVATIONS:
        valid = ', '.join(repr(n) for n in ACTIVATIONS)
        raise ValueError(f'unknown activation {name!r}; expected one of {valid}')
    return name


def check_size(n, what):
    """A layer size must be a positive int (bool is not a size)."""
    if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 1:
        raise ValueError(f'{what} must be a positive integer, got {n!r}')
    return int(n)


def check_length(x, n, module):
    """`x` must be a sequence of exactly `n` inputs for `module` (described only on error)."""
    try:
        got = len(x)
    except TypeError:
        raise TypeError(f'{module.describe()} expects a list of {n} numbers or Values, '
                        f'got {type(x).__name__}') from None
    if got != n:
        raise ValueError(f'{module.describe()} expects {n} inputs, got {got}')


def image_shape(image, module):
    """(channels, height, width) of an image given as nested lists image[c][row][col]."""
    try:
        channels = len(image)
        height = len(image[0])
        width = len(image[0][0])
        rectangular = all(len(ch) == height and all(len(row) == width for row in ch)
                          for ch in image)
    except (TypeError, IndexError):
        rectangular = False
    if not rectangular or width == 0:
        raise ValueError(f'{module.describe()} expects an image as nested lists '
                         f'image[channel][row][col] with equal-length rows, '
                         f'got {type(image).__name__} {image!r:.60}')
    return channels, height, width


def check_input_shape(shape, rank, module, expected):
    """`shape` must be a tuple of `rank` positive ints; `expected` describes it for the error."""
    shape = tuple(shape) if isinstance(shape, (tuple, list)) else shape
    if not isinstance(shape, tuple) or len(shape) != rank or not all(
            isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 1
            for n in shape):
        raise ValueError(f'{module.describe()} expects input shape {expected}, got {shape!r}')
    return tuple(int(n) for n in shape)


# ---- building without weights, to count and shape a full-size model ---------------------------

_SHAPES_ONLY = [False]


@contextlib.contextmanager
def shapes_only():
    """Modules built inside `with shapes_only():` get no weight Values, only their sizes: enough
    for parameter_count(), output_shape() and summary(), so VGG-16's 138M parameters cost
    nothing. Running such a model raises an error that says so."""
    previous = _SHAPES_ONLY[0]
    _SHAPES_ONLY[0] = True
    try:
        yield
    finally:
        _SHAPES_ONLY[0] = previous


class UnbuiltWeights:
    """Stands in for a neuron's weight list under shapes_only(): it has a length, no Values."""

    def __init__(self, count):
        self.count = count

    def __len__(self):
        return self.count

    def _refuse(self, *args):
        raise RuntimeError('this model was built under shapes_only(): it has shapes and '
                           'parameter counts but no weights; build it outside shapes_only() '
                           'to run or train it')

    __iter__ = __getitem__ = __add__ = __radd__ = _refuse


# ---- the base class --------------------------------------------------------------------------

class Module:
    """Anything with parameters. Containers list their sub-modules in `children()`."""

    training = True

    def zero_grad(self):
        for p in self.parameters():
            p.grad = 0.0

    def children(self):
        return []

    def parameters(self):
        return [p for child in self.children() for p in child.parameters()]

    def set_name(self, name):
        """Label parameters with the prefix `name` (containers call this); nothing by default."""

    def describe(self):
        """A one-line name for error messages (a repr can list hundreds of neurons)."""
        return repr(self)

    def train(self, mode=True):
        """Training mode (the default) or, with mode=False, evaluation mode: batch norm then uses
        its running statistics and dropout passes its input through unchanged."""
        self.training = mode
        for child in self.children():
            child.train(mode)
        return self

    def eval(self):
        return self.train(False)

    # ---- sizes and shapes, from the configuration alone (no Values are built) ----------------
    def parameter_count(self):
        """How many parameters: len(self.parameters()), counted from the layer sizes."""
        return sum(child.parameter_count() for child in self.children())

    def output_shape(self, input_shape):
        """The shape of self(x) for an x of shape `input_shape`: (channels, height, width) for
        an image, (n,) for a list of n, () for one Value. Every module in this file declares
        it; a module of your own needs this method for `summary`."""
        raise TypeError(f'{self.describe()} does not declare its output shape: give '
                        f'{type(self).__name__} an output_shape(input_shape) method')

    def batch(self, xs):
        """self applied to each input of the batch `xs`. Batch normalisation overrides it to
        normalise over the whole batch, and containers pass the batch down to it."""
        return [self(x) for x in xs]

    def summary(self, input_shape):
        """Print the per-layer table of shapes, parameters and memory (see summary.py)."""
        from micrograd.summary import summary  # summary.py imports this file
        table = summary(self, input_shape)
        print(table)
        return table

    # ---- all parameters as plain floats ------------------------------------------------------
    def parameter_values(self):
        return [p.data for p in self.parameters()]

    def set_parameter_values(self, values):
        """Set every parameter, in `parameters()` order; nothing changes if `values` is wrong."""
        params = self.parameters()
        values = _checked_values(values, len(params), 'set_parameter_values')
        for p, v in zip(params, values):
            p.data = v

    def save(self, path):
        """Write all parameters to a JSON file, atomically: a crash leaves the old file intact."""
        params = self.parameters()
        state = {'format': PARAMETER_FILE_FORMAT, 'version': 1, 'model': repr(self),
                 'labels': [p.label for p in params], 'values': [p.data for p in params]}
        _write_atomically(path, json.dumps(state, indent=1))

    def load(self, path):
        """Read parameters saved by `save`; a file that does not fit this model is refused
        with a ValueError, and the model is left untouched."""
        params = self.parameters()
        values = _read_parameter_file(path, [p.label for p in params])
        for p, v in zip(params, values):
            p.data = v


def _checked_values(values, count, who):
    values = list(values)
    if len(values) != count:
        raise ValueError(f'{who}: the model has {count} parameters, got {len(values)} values')
    for i, v in enumerate(values):
        if not isinstance(v, numbers.Real) or isinstance(v, bool):
            raise TypeError(f'{who}: value {i} must be a number, got {v!r:.60}')
    return [float(v) for v in values]


def _write_atomically(path, text):
    """Write to a temporary file beside `path`, then rename it over `path` in one step."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp_path = tempfile.mkstemp(dir=directory, prefix='.params-', suffix='.tmp')
    try:
        with os.fdopen(fd, 'w') as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.unlink(tmp_path)
        raise


def _read_parameter_file(path, labels):
    """The values stored in `path`, checked against the model's parameter labels."""
    with open(path) as f:
        text = f.read()
    try:
        state = json.loads(text)
    except ValueError as e:
        raise ValueError(f'{path}: not a parameter file (invalid JSON: {e})') from None
    if not isinstance(state, dict) or state.get('format') != PARAMETER_FILE_FORMAT:
        raise ValueError(f'{path}: not a parameter file written by Module.save')
    saved_labels, values = state.get('labels'), state.get('values')
    if not isinstance(saved_labels, list) or not isinstance(values, list) \
            or len(saved_labels) != len(values):
        raise ValueError(f'{path}: corrupt parameter file (labels and values do not match)')
    if len(values) != len(labels):
        raise ValueError(f'{path}: holds {len(values)} parameters for {state.get("model")}, '
                         f'but this model has {len(labels)}')
    if saved_labels != labels:
        first = next(i for i, (a, b) in enumerate(zip(saved_labels, labels)) if a != b)
        raise ValueError(f'{path}: parameter {first} is {saved_labels[first]!r} in the file '
                         f'but {labels[first]!r} in this model (a different shape)')
    return _checked_values(values, len(labels), str(path))


# ---- micrograd's three modules, plus the perceptron ------------------------------------------

class Neuron(Module):
    """activation(b + w0*x0 + w1*x1 + ...). `nonlin=True` is micrograd's ReLU neuron; pass
    `activation='tanh'` (or 'sigmoid', 'linear') for another, and `rng` to draw from it.
    `bias=False` leaves b out (a convolution followed by batch norm needs none)."""

    def __init__(self, nin, nonlin=True, activation=None, rng=None, name='', bias=True):
        nin = check_size(nin, 'number of inputs')
        if activation is None:
            activation = 'relu' if nonlin else 'linear'
        self.activation = check_activation(activation)
        self._activate, self._kind = ACTIVATIONS[activation]
        self.nonlin = self._activate is not None  # micrograd's attribute, kept for old code
        if _SHAPES_ONLY[0]:
            self.w = UnbuiltWeights(nin)
        else:
            draw = (rng or random).uniform
            self.w = [Value(draw(-1, 1)) for _ in range(nin)]
        self.b = Value(0) if bias else None
        self.set_name(name)

    def set_name(self, name):
        # Labels are computed once here, so the forward pass only assigns a ready string.
        prefix = f'{name}.' if name else ''
        if isinstance(self.w, list):
            for i, wi in enumerate(self.w):
                wi.label = f'{prefix}w{i}'
        if self.b is not None:
            self.b.label = f'{prefix}b'
        self._out_label = name or 'out'

    def __call__(self, x):
        check_length(x, len(self.w), self)
        products = (wi * xi for wi, xi in zip(self.w, x))
        # sum(..., start=b) computes b + w0*x0 + w1*x1 + ..., left to right, as micrograd does
        act = sum(products, self.b) if self.b is not None else total(list(products))
        out = self._activate(act) if self._activate else act
        out.label = self._out_label
        return out

    def parameters(self):
        return self.w + ([self.b] if self.b is not None else [])

    def parameter_count(self):
        return len(self.w) + (self.b is not None)

    def output_shape(self, input_shape):
        check_input_shape(input_shape, 1, self, f'({len(self.w)},)')
        if input_shape[0] != len(self.w):
            raise ValueError(f'{self.describe()} expects {len(self.w)} inputs, '
                             f'got shape {tuple(input_shape)}')
        return ()

    def __repr__(self):
        return f'{self._kind}Neuron({len(self.w)})'


class Layer(Module):
    """`nout` neurons that all see the same inputs; one output comes back as a bare Value."""

    def __init__(self, nin, nout, name='', **kwargs):
        nout = check_size(nout, 'number of outputs')
        self.neurons = [Neuron(nin, **kwargs) for _ in range(nout)]
        self.set_name(name)

    def set_name(self, name):
        for j, neuron in enumerate(self.neurons):
            neuron.set_name(f'{name}.N{j}' if name else f'N{j}')

    def __call__(self, x):
        check_length(x, len(self.neurons[0].w), self)
        out = [n(x) for n in self.neurons]
        return out[0] if len(out) == 1 else out

    def children(self):
        return self.neurons

    def output_shape(self, input_shape):
        self.neurons[0].output_shape(input_shape)
        return (len(self.neurons),) if len(self.neurons) > 1 else ()  # one neuron: a bare Value

    def describe(self):
        return f'Layer({len(self.neurons[0].w)}, {len(self.neurons)})'

    def __repr__(self):
        return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"


class MLP(Module):
    """Layers of sizes `nouts` in a row. As in micrograd, hidden layers use ReLU and the last
    layer is linear; `activation` (one name, or a list with one name per hidden layer) and
    `output_activation` choose others."""

    def __init__(self, nin, nouts, activation='relu', output_activation='linear', rng=None):
        nouts = list(nouts)
        if not nouts:
            raise ValueError('MLP needs at least one layer size in nouts, got []')
        hidden = [activation] * (len(nouts) - 1) if isinstance(activation, str) \
            else list(activation)
        if len(hidden) != len(nouts) - 1:
            raise ValueError(f'MLP with {len(nouts)} layers needs {len(nouts) - 1} hidden '
                             f'activations, got {len(hidden)}')
        sizes = [nin] + nouts
        self.layers = [Layer(sizes[i], sizes[i + 1], activation=act, rng=rng, name=f'L{i}')
                       for i, act in enumerate(hidden + [output_activation])]

    def __call__(self, x):
        check_length(x, len(self.layers[0].neurons[0].w), self)
        for layer in self.layers:
            x = layer(x)
        return x

    def children(self):
        return self.layers

    def output_shape(self, input_shape):
        for layer in self.layers:
            input_shape = layer.output_shape(input_shape)
        return input_shape

    def describe(self):
        sizes = [len(layer.neurons) for layer in self.layers]
        return f'MLP({len(self.layers[0].neurons[0].w)}, {sizes})'

    def __repr__(self):
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"


class Perceptron(Neuron):
    """Rosenblatt's perceptron: a linear neuron whose prediction is a step of its activation.

    Calling it returns the activation b + w.x as a Value (the step has no gradient to learn
    from); `predict` thresholds it. Trained with `losses.perceptron_loss`, whose gradient is the
    perceptron rule, and SGD. Weights start at 0.0 unless an `rng` is given.
    """

    def __init__(self, nin, rng=None, name=''):
        super().__init__(nin, activation='linear', rng=rng or _Zeros(), name=name)

    def predict(self, x):
        return self.threshold(self(x))

    @staticmethod
    def threshold(activation):
        # The tutorial's step, 1 if activation >= 0. The engine's `step` op is relu's
        # derivative, 0 at exactly 0, so it would predict differently at the start (all zeros).
        return 1.0 if activation.data >= 0.0 else 0.0

    def __repr__(self):
        return f'Perceptron({len(self.w)})'


class _Zeros:
    """A stand-in for `random` whose every draw is 0.0."""

    def uniform(self, low, high):
        return 0.0


# ---- containers ------------------------------------------------------------------------------

class Sequential(Module):
    """Modules applied in order; the i-th one's parameters are labelled 'L{i}...'."""

    def __init__(self, *modules):
        for m in modules:
            if not callable(m):
                raise TypeError(f'Sequential takes modules, got {type(m).__name__}')
        self.modules = list(modules)
        self.set_name('')

    def set_name(self, name):
        for i, m in enumerate(self.modules):
            if isinstance(m, Module):
                m.set_name(f'{name}.L{i}' if name else f'L{i}')

    def __call__(self, x):
        for m in self.modules:
            x = m(x)
        return x

    def batch(self, xs):
        for m in self.modules:
            xs = m.batch(xs) if isinstance(m, Module) else [m(x) for x in xs]
        return xs

    def children(self):
        return [m for m in self.modules if isinstance(m, Module)]

    def output_shape(self, input_shape):
        for m in self.modules:
            if not isinstance(m, Module):
                raise TypeError(f'{m!r} in {self.describe()} is not a Module, so it has no '
                                f'declared output shape')
            input_shape = m.output_shape(input_shape)
        return input_shape

    def describe(self):
        return f'Sequential of {len(self.modules)} modules'

    def __repr__(self):
        return f"Sequential of [{', '.join(str(m) for m in self.modules)}]"


class Residual(Module):
    """x + block(x): the skip connection lets gradients reach early layers undiminished.

    The sum is element by element for any nesting (a vector, or an image[channel][row][col]),
    so the block must keep the shape of its input. Or, when it does not (a ResNet block that
    halves the image and doubles the channels), `shortcut(x) + block(x)` with a `shortcut`
    module that changes the shape the same way (ResNet's 1x1 projection convolution).
    """

    def __init__(self, block, shortcut=None):
        self.block, self.shortcut = block, shortcut

    def set_name(self, name):
        if self.shortcut is None:
            self.block.set_name(name)
        else:
            self.block.set_name(f'{name}.block' if name else 'block')
            self.shortcut.set_name(f'{name}.shortcut' if name else 'shortcut')

    def __call__(self, x):
        return self._add(x, self.block(x), self.shortcut(x) if self.shortcut else x)

    def batch(self, xs):
        skips = self.shortcut.batch(xs) if self.shortcut else xs
        return [self._add(x, y, skip) for x, y, skip in zip(xs, self.block.batch(xs), skips)]

    def _add(self, x, y, skip):
        if not isinstance(y, list) and isinstance(skip, (list, tuple)) and len(skip) == 1:
            y = [y]  # a Layer with one neuron returns a bare Value
        self._check_shapes(nested_shape(x), nested_shape(skip), nested_shape(y))
        return zip_nested(lambda si, yi: si + yi, skip, y)

    def _check_shapes(self, x_shape, skip_shape, block_shape):
        if block_shape == skip_shape:
            return
        if self.shortcut is None:
            raise ValueError(f'{self.describe()} maps shape {x_shape} to {block_shape}; '
                             f'x + block(x) needs the shape kept')
        raise ValueError(f'{self.describe()}: on shape {x_shape} the block gives '
                         f'{block_shape} and the shortcut {skip_shape}; they must match')

    def children(self):
        return [self.block] + ([self.shortcut] if self.shortcut else [])

    def output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        block_shape = self.block.output_shape(input_shape)
        skip_shape = self.shortcut.output_shape(input_shape) if self.shortcut else input_shape
        if skip_shape == (1,) and block_shape == ():
            block_shape = (1,)  # as in __call__: a one-neuron Layer's bare Value
        self._check_shapes(input_shape, skip_shape, block_shape)
        return skip_shape

    def describe(self):
        shortcut = f', shortcut={_describe(self.shortcut)}' if self.shortcut else ''
        return f'Residual({_describe(self.block)}{shortcut})'

    def __repr__(self):
        shortcut = f', shortcut={self.shortcut!r}' if self.shortcut else ''
        return f'Residual({self.block!r}{shortcut})'


class Concat(Module):
    """Parallel branches on the same image, their outputs stacked on the channel axis: the
    channels of branch 0, then those of branch 1, and so on (GoogLeNet's Inception module).
    The branches must give images of one height and width."""

    def __init__(self, *branches):
        if not branches:
            raise ValueError('Concat needs at least one branch')
        self.branches = list(branches)
        self.set_name('')

    def set_name(self, name):
        for i, branch in enumerate(self.branches):
            branch.set_name(f'{name}.B{i}' if name else f'B{i}')

    def __call__(self, image):
        return self._stack([branch(image) for branch in self.branches])

    def batch(self, images):
        outputs = [branch.batch(images) for branch in self.branches]
        return [self._stack(per_branch) for per_branch in zip(*outputs)]

    def _stack(self, outputs):
        self._check_sizes([nested_shape(out) for out in outputs])
        return [channel for out in outputs for channel in out]

    def _check_sizes(self, shapes):
        if any(len(shape) != 3 or shape[1:] != shapes[0][1:] for shape in shapes):
            raise ValueError(f'{self.describe()}: the branches give images of shapes {shapes}; '
                             f'stacking channels needs one height and width')

    def children(self):
        return self.branches

    def output_shape(self, input_shape):
        shapes = [tuple(branch.output_shape(input_shape)) for branch in self.branches]
        self._check_sizes(shapes)
        return (sum(shape[0] for shape in shapes),) + shapes[0][1:]

    def describe(self):
        return f'Concat of {len(self.branches)} branches'

    def __repr__(self):
        return f"Concat({', '.join(repr(b) for b in self.branches)})"


class Activation(Module):
    """An activation ('relu', 'tanh', 'sigmoid', 'linear') applied to every number of its
    input, a list or an image alike: the ReLU after a batch norm or a residual sum."""

    def __init__(self, name='relu'):
        self.name = check_activation(name)

    def __call__(self, x):
        activate = ACTIVATIONS[self.name][0]
        if activate is None:
            return x
        return zip_nested(lambda v: activate(v if isinstance(v, Value) else Value(v)), x)

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def __repr__(self):
        return f'Activation({self.name!r})'


class Dropout(Module):
    """In training mode each number is zeroed with probability `p` and the others are scaled
    by 1 / (1 - p) (inverted dropout, as in PyTorch), so evaluation mode is the identity.
    The draws come from `rng` (default: the global `random`)."""

    def __init__(self, p=0.5, rng=None):
        if not isinstance(p, numbers.Real) or isinstance(p, bool) or not 0.0 <= p < 1.0:
            raise ValueError(f'dropout probability p must be in [0, 1), got {p!r}')
        self.p, self.rng = float(p), rng or random

    def __call__(self, x):
        if not self.training or self.p == 0.0:
            return x
        scale = 1.0 / (1.0 - self.p)
        return zip_nested(lambda v: v * (0.0 if self.rng.random() < self.p else scale), x)

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def __repr__(self):
        return f'Dropout(p={self.p})'


def nested_shape(x):
    """The lengths down the first elements of nested lists: (2, 4, 4) for an image[2][4][4],
    (3,) for a list of 3 numbers, () for a number. `zip_nested` checks that it is rectangular."""
    shape = []
    while isinstance(x, (list, tuple)):
        shape.append(len(x))
        if not x:
            break
        x = x[0]
    return tuple(shape)


def zip_nested(fn, *trees):
    """fn applied element by element to nested lists of one shape: zip_nested(add, a, b) is
    a + b for vectors and images alike. Refuses trees whose lengths differ at any level.
    (It recurses over the nesting depth, 3 for an image, never over the graph.)"""
    if not isinstance(trees[0], (list, tuple)):
        if any(isinstance(t, (list, tuple)) for t in trees):
            raise ValueError('nested lists of different depths cannot be combined')
        return fn(*trees)
    lengths = {len(t) if isinstance(t, (list, tuple)) else None for t in trees}
    if len(lengths) != 1:
        raise ValueError(f'nested lists of different shapes cannot be combined '
                         f'(lengths {sorted(lengths, key=str)})')
    return [zip_nested(fn, *items) for items in zip(*trees)]


# ---- batch normalisation ---------------------------------------------------------------------

class BatchNorm1d(Module):
    """Normalise each feature over a batch, then scale by gamma and shift by beta.

    Input: a batch as a list of N rows of `num_features` numbers or Values. In training mode
    each feature uses its batch mean and biased variance: y = gamma * (x - mean) /
    sqrt(var + eps) + beta, and running averages are updated (the variance unbiased, as in
    PyTorch). In evaluation mode the running averages replace the batch statistics.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, name=''):
        self.num_features = check_size(num_features, 'num_features')
        self.eps, self.momentum = float(eps), float(momentum)
        self.gamma = [Value(1.0) for _ in range(num_features)]
        self.beta = [Value(0.0) for _ in range(num_features)]
        self.running_mean = [0.0] * num_features
        self.running_var = [1.0] * num_features
        self.set_name(name)

    def set_name(self, name):
        prefix = f'{name}.' if name else ''
        for j, (g, b) in enumerate(zip(self.gamma, self.beta)):
            g.label, b.label = f'{prefix}gamma{j}', f'{prefix}beta{j}'

    def __call__(self, batch):
        if not isinstance(batch, (list, tuple)) or not batch:
            raise ValueError(f'{self!r} expects a non-empty batch: a list of rows, '
                             f'got {batch!r:.60}')
        for row in batch:
            check_length(row, self.num_features, self)
        if self.training and len(batch) < 2:
            raise ValueError('BatchNorm1d in training mode needs a batch of at least 2 rows '
                             '(the variance of one row is 0); call .eval() to use one row')
        columns = [self._normalise(j, [row[j] for row in batch])
                   for j in range(self.num_features)]
        return [list(row) for row in zip(*columns)]

    def _normalise(self, j, column):
        if self.training:
            n = len(column)
            mean = total(column) / n
            centered = [x - mean for x in column]
            var = total([c ** 2 for c in centered]) / n
            inv_std = (var + self.eps) ** -0.5
            self._update_running(j, _data(mean), _data(var) * n / (n - 1))
        else:
            centered = [x - self.running_mean[j] for x in column]
            inv_std = (self.running_var[j] + self.eps) ** -0.5
        return [self.gamma[j] * (c * inv_std) + self.beta[j] for c in centered]

    def _update_running(self, j, mean, unbiased_var):
        m = self.momentum
        self.running_mean[j] = (1.0 - m) * self.running_mean[j] + m * mean
        self.running_var[j] = (1.0 - m) * self.running_var[j] + m * unbiased_var

    def batch(self, rows):
        return self(rows)  # this layer's input is a batch already

    def parameters(self):
        return self.gamma + self.beta

    def parameter_count(self):
        return 2 * self.num_features

    def output_shape(self, input_shape):
        """Per sample: (num_features,) in and out (the layer itself takes a batch of rows)."""
        check_input_shape(input_shape, 1, self, f'({self.num_features},)')
        if input_shape[0] != self.num_features:
            raise ValueError(f'{self!r} expects {self.num_features} inputs, '
                             f'got shape {tuple(input_shape)}')
        return tuple(input_shape)

    def __repr__(self):
        return f'BatchNorm1d({self.num_features})'


class BatchNorm2d(BatchNorm1d):
    """Batch normalisation of images: channel c is normalised over all N * height * width
    numbers of that channel in the batch, then scaled by gamma[c] and shifted by beta[c]
    (PyTorch's BatchNorm2d). `batch(images)` normalises a batch; calling the layer on one
    image is a batch of one (its statistics then come from that image's pixels)."""

    def __call__(self, image):
        return self.batch([image])[0]

    def batch(self, images):
        if not isinstance(images, (list, tuple)) or not images:
            raise ValueError(f'{self!r} expects a non-empty batch of images, '
                             f'got {images!r:.60}')
        shapes = {image_shape(image, self) for image in images}
        if len(shapes) != 1:
            raise ValueError(f'{self!r}: the images of a batch differ in shape: {sorted(shapes)}')
        channels, height, width = self.output_shape(shapes.pop())
        if self.training and len(images) * height * width < 2:
            raise ValueError(f'{self!r} in training mode needs at least 2 numbers per channel '
                             f'(a variance of 1 number is 0); call .eval() to use one')
        out = [[[[None] * width for _ in range(height)] for _ in range(channels)]
               for _ in images]
        pixels = [(i, r, q) for i in range(len(images)) for r in range(height)
                  for q in range(width)]
        for c in range(channels):
            column = self._normalise(c, [images[i][c][r][q] for i, r, q in pixels])
            for (i, r, q), v in zip(pixels, column):
                out[i][c][r][q] = v
        return out

    def output_shape(self, input_shape):
        shape = check_input_shape(input_shape, 3, self, f'({self.num_features}, height, width)')
        if shape[0] != self.num_features:
            raise ValueError(f'{self!r} expects {self.num_features} channels, got {shape[0]}')
        return shape

    def __repr__(self):
        return f'BatchNorm2d({self.num_features})'


def _describe(module):
    return module.describe() if isinstance(module, Module) else repr(module)


def _data(x):
    return x.data if isinstance(x, Value) else float(x)


def total(values):
    """x0 + x1 + ... without the extra `0 + x0` node that sum() would record."""
    return sum(values[1:], values[0])


# ---- images: convolution, pooling, flattening ------------------------------------------------

class Conv2d(Module):
    """A 2-D convolution: one neuron per output channel, slid over the image.

    Input and output are images as nested lists image[channel][row][col]. Each output channel
    is a Neuron over the in_channels * kernel_size**2 pixels of a patch (order: channel, row,
    column), so its parameters are its kernel weights then its bias, drawn like a Neuron's.
    Zero padding adds `padding` rows/columns of 0.0 on each side. `bias=False` leaves the
    biases out (before a batch norm, whose beta does their job).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 activation='linear', rng=None, name='', bias=True):
        self.in_channels = check_size(in_channels, 'in_channels')
        self.kernel_size = check_size(kernel_size, 'kernel_size')
        self.stride = check_size(stride, 'stride')
        if not isinstance(padding, numbers.Integral) or isinstance(padding, bool) or padding < 0:
            raise ValueError(f'padding must be a non-negative integer, got {padding!r}')
        self.padding = int(padding)
        nin = in_channels * kernel_size * kernel_size
        self.kernels = [Neuron(nin, activation=activation, rng=rng, bias=bias)
                        for _ in range(check_size(out_channels, 'out_channels'))]
        self.set_name(name)

    def set_name(self, name):
        for o, kernel in enumerate(self.kernels):
            kernel.set_name(f'{name}.N{o}' if name else f'N{o}')

    def __call__(self, image):
        channels, height, width = image_shape(image, self)
        if channels != self.in_channels:
            raise ValueError(f'{self!r} expects {self.in_channels} input channels, '
                             f'got {channels}')
        _, out_h, out_w = self.output_shape((channels, height, width))
        padded = pad(image, self.padding)
        k, s = self.kernel_size, self.stride
        patches = [[[ch[r + dr][c + dc] for ch in padded for dr in range(k) for dc in range(k)]
                    for c in range(0, out_w * s, s)]
                   for r in range(0, out_h * s, s)]
        return [[[kernel(patch) for patch in row] for row in patches] for kernel in self.kernels]

    def children(self):
        return self.kernels

    def output_shape(self, input_shape):
        channels, height, width = check_input_shape(input_shape, 3, self,
                                                    f'({self.in_channels}, height, width)')
        if channels != self.in_channels:
            raise ValueError(f'{self!r} expects {self.in_channels} input channels, '
                             f'got {channels}')
        k, s, p = self.kernel_size, self.stride, self.padding
        out_h, out_w = (height + 2 * p - k) // s + 1, (width + 2 * p - k) // s + 1
        if out_h < 1 or out_w < 1:
            raise ValueError(f'{self!r}: a {height}x{width} image (padding {p}) is '
                             f'smaller than the {k}x{k} kernel')
        return len(self.kernels), out_h, out_w

    def describe(self):
        """A short form for tables: Conv2d(3, 64, 3x3, stride 2, padding 1, relu, no bias)."""
        k, kernel = self.kernel_size, self.kernels[0]
        parts = [f'{self.in_channels}', f'{len(self.kernels)}', f'{k}x{k}']
        parts += [f'stride {self.stride}'] if self.stride != 1 else []
        parts += [f'padding {self.padding}'] if self.padding else []
        parts += [kernel.activation] if kernel.activation not in ('linear', 'identity') else []
        parts += ['no bias'] if kernel.b is None else []
        return f"Conv2d({', '.join(parts)})"

    def __repr__(self):
        return (f'Conv2d({self.in_channels}, {len(self.kernels)}, kernel_size={self.kernel_size}'
                f', stride={self.stride}, padding={self.padding}, '
                f'activation={self.kernels[0].activation!r}'
                f'{"" if self.kernels[0].b is not None else ", bias=False"})')


def pad(image, padding):
    """The image with `padding` rows and columns of 0.0 added on every side."""
    if padding == 0:
        return image
    padded = []
    for channel in image:
        width = len(channel[0]) + 2 * padding
        blank = [[0.0] * width for _ in range(padding)]
        rows = [[0.0] * padding + list(row) + [0.0] * padding for row in channel]
        padded.append(blank + rows + [list(r) for r in blank])
    return padded


def maximum(a, b):
    """max(a, b) built from engine ops, so the comparison is part of the graph (and of any
    compiled code): a_wins = step(a - b) is 1 or 0, and the result is exactly a or b.

    The gradient goes to the larger input (to b on a tie). Caveat: an infinite loser times 0
    gives nan, e.g. maximum(1, -inf) is nan.
    """
    if not isinstance(a, Value) and not isinstance(b, Value):
        return max(a, b)
    a_wins = (a - b).step()
    return a * a_wins + b * (1.0 - a_wins)


class _Pool2d(Module):
    """Slide a kernel_size x kernel_size window (default stride: kernel_size) over each channel
    and reduce every window with `self.reduce`.

    As in PyTorch, `padding` lets windows hang over each edge by that many pixels, and
    `ceil_mode` keeps a last window that the edge cuts short. A window covers only the pixels
    inside the image, so max pooling never sees a padding value.
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        self.kernel_size = check_size(kernel_size, 'kernel_size')
        self.stride = self.kernel_size if stride is None else check_size(stride, 'stride')
        if not isinstance(padding, numbers.Integral) or isinstance(padding, bool) \
                or not 0 <= padding <= self.kernel_size // 2:
            raise ValueError(f'padding must be an integer from 0 to half the kernel size '
                             f'({self.kernel_size // 2}), got {padding!r}')
        self.padding, self.ceil_mode = int(padding), bool(ceil_mode)

    def windows(self, size):
        """[(start, stop)] of each window along an axis of `size` pixels, clipped to the image;
        [] when the image (with its padding) is smaller than one window."""
        k, s, p = self.kernel_size, self.stride, self.padding
        span = size + 2 * p - k  # may be negative: in ceil mode a window can exceed the image
        count = ((span + s - 1) // s if self.ceil_mode else span // s) + 1  # rounded down
        if self.ceil_mode and (count - 1) * s >= size + p:
            count -= 1  # PyTorch's rule: the last window must start inside the image
        if count < 1:
            return []
        return [(max(0, i * s - p), min(size, i * s - p + k)) for i in range(count)]

    def output_shape(self, input_shape):
        channels, height, width = check_input_shape(input_shape, 3, self,
                                                    '(channels, height, width)')
        rows, cols = self.windows(height), self.windows(width)
        if not rows or not cols:
            raise ValueError(f'{self!r}: a {height}x{width} image is smaller than the window')
        return channels, len(rows), len(cols)

    def __call__(self, image):
        self.output_shape(image_shape(image, self))
        rows, cols = self.windows(len(image[0])), self.windows(len(image[0][0]))
        return [[[self.reduce([ch[r][c] for r in range(*row_span) for c in range(*col_span)])
                  for col_span in cols] for row_span in rows] for ch in image]

    def __repr__(self):
        extra = f', padding={self.padding}' if self.padding else ''
        extra += ', ceil_mode=True' if self.ceil_mode else ''
        return (f'{type(self).__name__}(kernel_size={self.kernel_size}, stride={self.stride}'
                f'{extra})')


class MaxPool2d(_Pool2d):
    """Each window's largest value (see `maximum`)."""

    def reduce(self, window):
        largest = window[0]
        for x in window[1:]:
            largest = maximum(x, largest)
        return largest


class AvgPool2d(_Pool2d):
    """Each window's mean, over the pixels inside the image (PyTorch's count_include_pad=False
    when there is padding)."""

    def reduce(self, window):
        return total(window) / len(window)


class AdaptiveAvgPool2d(AvgPool2d):
    """Average pooling to an output_size x output_size image, whatever the input's size (as
    PyTorch): output cell i covers input rows floor(i * H / n) to ceil((i + 1) * H / n), so an
    input smaller than the output repeats its pixels. AlexNet and VGG use it before their
    classifiers, ResNet and GoogLeNet (as global average pooling) instead of them."""

    def __init__(self, output_size):
        self.output_size = check_size(output_size, 'output_size')

    def windows(self, size):
        n = self.output_size
        return [(i * size // n, -(-(i + 1) * size // n)) for i in range(n)]

    def __repr__(self):
        return f'AdaptiveAvgPool2d({self.output_size})'


class GlobalAvgPool2d(AdaptiveAvgPool2d):
    """Each channel's mean over all its pixels: a C x 1 x 1 image."""

    def __init__(self):
        super().__init__(1)

    def __repr__(self):
        return 'GlobalAvgPool2d()'


class Flatten(Module):
    """Nested lists (an image[channel][row][col], say) to one flat list, row-major."""

    def __call__(self, x):
        flat, stack = [], [iter([x])]
        while stack:  # depth-first with an explicit stack, like topo_order
            for item in stack[-1]:
                if isinstance(item, (list, tuple)):
                    stack.append(iter(item))
                    break
                flat.append(item)
            else:
                stack.pop()
        return flat

    def output_shape(self, input_shape):
        size = 1
        for n in check_input_shape(input_shape, len(input_shape), self, 'of positive sizes'):
            size *= n
        return (size,)

    def __repr__(self):
        return 'Flatten()'
