"""The layers beyond micrograd: BatchNorm1d, Conv2d, MaxPool2d, AvgPool2d, Flatten, Residual and
Sequential, each checked against a plain-float computation of what it should do."""
import math
import random

import pytest
from hypothesis import assume, given, strategies as st

from micrograd.engine import Value
from micrograd.losses import softmax_cross_entropy
from micrograd.nn import (AvgPool2d, BatchNorm1d, Conv2d, Flatten, Layer, MaxPool2d, MLP,
                          Residual, Sequential, maximum)
from micrograd.optim import SGD

finite = st.floats(-10, 10, allow_nan=False, allow_infinity=False)


def values(nested):
    """Nested lists of floats -> the same nesting of Values."""
    return [values(x) for x in nested] if isinstance(nested, list) else Value(nested)


def data(nested):
    return [data(x) for x in nested] if isinstance(nested, list) else nested.data


def backward_with_upstream(outputs, upstream):
    """Backpropagate so that each output's gradient is the matching upstream number."""
    sum((o * g for o, g in zip(outputs, upstream)), Value(0.0)).backward()


# ---- BatchNorm1d -----------------------------------------------------------------------------

def closed_form_batchnorm_dx(x, dout, gamma, eps):
    """dx = (1/N) * gamma * ivar * (N*dout - sum(dout) - xhat * sum(dout*xhat)), one feature."""
    n = len(x)
    mean = sum(x) / n
    var = sum((xi - mean) ** 2 for xi in x) / n
    ivar = 1.0 / math.sqrt(var + eps)
    xhat = [(xi - mean) * ivar for xi in x]
    sum_dout = sum(dout)
    sum_dout_xhat = sum(d * h for d, h in zip(dout, xhat))
    return [gamma * ivar / n * (n * d - sum_dout - h * sum_dout_xhat) for d, h in zip(dout, xhat)]


@st.composite
def batches(draw):
    n = draw(st.integers(2, 6))
    d = draw(st.integers(1, 3))
    x = [[draw(finite) for _ in range(d)] for _ in range(n)]
    for j in range(d):  # a feature that barely varies makes the gradient ill-conditioned
        column = [row[j] for row in x]
        assume(max(column) - min(column) > 0.1)
    dout = [[draw(finite) for _ in range(d)] for _ in range(n)]
    gamma = [draw(st.floats(0.1, 3)) for _ in range(d)]
    return x, dout, gamma


@given(batches())
def test_batchnorm_backward_equals_the_closed_form(batch):
    x, dout, gamma = batch
    n, d = len(x), len(x[0])
    layer = BatchNorm1d(d)
    for j in range(d):
        layer.gamma[j].data = gamma[j]
    xs = values(x)
    out = layer(xs)
    backward_with_upstream([o for row in out for o in row], [g for row in dout for g in row])
    for j in range(d):
        expected = closed_form_batchnorm_dx([row[j] for row in x], [row[j] for row in dout],
                                            gamma[j], layer.eps)
        got = [xs[i][j].grad for i in range(n)]
        # The terms inside the bracket cancel (exactly 0 for N = 2, bar eps), so compare on the
        # scale of the terms, gamma * ivar * |dout|, not of the result.
        column = [row[j] for row in x]
        mean = sum(column) / n
        ivar = 1.0 / math.sqrt(sum((c - mean) ** 2 for c in column) / n + layer.eps)
        scale = gamma[j] * ivar * max(abs(row[j]) for row in dout) + 1e-300
        assert all(abs(a - b) <= 1e-9 * scale for a, b in zip(got, expected)), (got, expected)


@given(batches())
def test_batchnorm_gamma_and_beta_gradients(batch):
    x, dout, _ = batch
    layer = BatchNorm1d(len(x[0]))
    out = layer(x)
    backward_with_upstream([o for row in out for o in row], [g for row in dout for g in row])
    for j, (gamma, beta) in enumerate(zip(layer.gamma, layer.beta)):
        column = [row[j] for row in x]
        mean = sum(column) / len(column)
        std = math.sqrt(sum((c - mean) ** 2 for c in column) / len(column) + layer.eps)
        xhat = [(c - mean) / std for c in column]
        assert math.isclose(beta.grad, sum(row[j] for row in dout), rel_tol=1e-9, abs_tol=1e-9)
        assert math.isclose(gamma.grad, sum(row[j] * h for row, h in zip(dout, xhat)),
                            rel_tol=1e-9, abs_tol=1e-9)


def test_batchnorm_training_output_has_zero_mean_and_unit_variance():
    out = data(BatchNorm1d(2, eps=0.0)([[1.0, 10.0], [2.0, 20.0], [6.0, 60.0]]))
    for j in range(2):
        column = [row[j] for row in out]
        assert abs(sum(column)) < 1e-12
        assert math.isclose(sum(c * c for c in column) / 3, 1.0, rel_tol=1e-12)


def test_batchnorm_updates_running_statistics_with_the_unbiased_variance():
    layer = BatchNorm1d(1, momentum=0.1)
    layer([[1.0], [2.0], [6.0]])  # mean 3, unbiased variance (4 + 1 + 9) / 2 = 7
    assert math.isclose(layer.running_mean[0], 0.9 * 0.0 + 0.1 * 3.0)
    assert math.isclose(layer.running_var[0], 0.9 * 1.0 + 0.1 * 7.0)


def test_batchnorm_in_eval_mode_uses_the_running_statistics():
    layer = BatchNorm1d(1, eps=0.0)
    layer.running_mean, layer.running_var = [2.0], [4.0]
    layer.gamma[0].data, layer.beta[0].data = 3.0, 0.5
    layer.eval()
    assert data(layer([[6.0]])) == [[3.0 * (6.0 - 2.0) / 2.0 + 0.5]]
    assert layer.running_mean == [2.0]  # evaluation changes nothing


def test_train_and_eval_reach_nested_modules():
    bn = BatchNorm1d(2)
    model = Sequential(Layer(2, 2), bn)
    model.eval()
    assert not bn.training
    model.train()
    assert bn.training


def test_batchnorm_refuses_bad_batches():
    layer = BatchNorm1d(2)
    with pytest.raises(ValueError, match='at least 2 rows'):
        layer([[1.0, 2.0]])
    with pytest.raises(ValueError, match='expects 2 inputs, got 3'):
        layer([[1.0, 2.0], [1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match='non-empty batch'):
        layer([])


def test_batchnorm_labels():
    assert [p.label for p in BatchNorm1d(2).parameters()] == ['gamma0', 'gamma1', 'beta0', 'beta1']
    model = Sequential(Layer(2, 2), BatchNorm1d(2))
    assert model.parameters()[-1].label == 'L1.beta1'


# ---- Conv2d ----------------------------------------------------------------------------------

def naive_conv(image, kernels, biases, stride, padding):
    """Plain-float cross-correlation, as in every deep-learning framework."""
    channels, height, width = len(image), len(image[0]), len(image[0][0])
    k = len(kernels[0][0])

    def pixel(c, r, q):
        r, q = r - padding, q - padding
        return image[c][r][q] if 0 <= r < height and 0 <= q < width else 0.0
    out_h = (height + 2 * padding - k) // stride + 1
    out_w = (width + 2 * padding - k) // stride + 1
    return [[[b + sum(kernel[c][dr][dc] * pixel(c, i * stride + dr, j * stride + dc)
                      for c in range(channels) for dr in range(k) for dc in range(k))
              for j in range(out_w)] for i in range(out_h)]
            for kernel, b in zip(kernels, biases)]


@st.composite
def conv_cases(draw):
    cin, cout = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    k, stride, padding = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(0, 1))
    height, width = draw(st.integers(k, 5)), draw(st.integers(k, 5))
    image = [[[draw(finite) for _ in range(width)] for _ in range(height)] for _ in range(cin)]
    return cin, cout, k, stride, padding, image


def kernels_of(conv):
    """The layer's weights reshaped to kernel[out][in][row][col], and its biases."""
    k = conv.kernel_size
    shaped = [[[[n.w[(c * k + r) * k + q].data for q in range(k)] for r in range(k)]
               for c in range(conv.in_channels)] for n in conv.kernels]
    return shaped, [n.b.data for n in conv.kernels]


@given(conv_cases())
def test_conv2d_equals_a_naive_convolution(case):
    cin, cout, k, stride, padding, image = case
    conv = Conv2d(cin, cout, k, stride=stride, padding=padding, rng=random.Random(0))
    for n in conv.kernels:
        n.b.data = 0.5
    got = data(conv(image))
    expected = naive_conv(image, *kernels_of(conv), stride, padding)
    assert len(got) == len(expected) == cout
    assert [len(ch) for ch in got] == [len(ch) for ch in expected]
    for a, b in zip(Flatten()(got), Flatten()(expected)):
        assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


@given(conv_cases())
def test_conv2d_weight_gradient_is_the_correlation_of_input_and_upstream(case):
    cin, cout, k, stride, padding, image = case
    conv = Conv2d(cin, cout, k, stride=stride, padding=padding, rng=random.Random(0))
    out = conv(image)
    flat = Flatten()(out)
    upstream = [0.1 * (i % 7) - 0.3 for i in range(len(flat))]
    backward_with_upstream(flat, upstream)
    # d out[o][i][j] / d w[o][c][dr][dc] = input pixel under that weight: check one weight each
    out_h, out_w = len(out[0]), len(out[0][0])
    padded = [[[0.0] * (len(image[0][0]) + 2 * padding)] * padding
              + [[0.0] * padding + row + [0.0] * padding for row in ch]
              + [[0.0] * (len(image[0][0]) + 2 * padding)] * padding for ch in image]
    for o, neuron in enumerate(conv.kernels):
        g = upstream[o * out_h * out_w:(o + 1) * out_h * out_w]
        c, dr, dc = cin - 1, k - 1, 0
        expected = sum(g[i * out_w + j] * padded[c][i * stride + dr][j * stride + dc]
                       for i in range(out_h) for j in range(out_w))
        got = neuron.w[(c * k + dr) * k + dc].grad
        assert math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-9)
        assert math.isclose(neuron.b.grad, sum(g), rel_tol=1e-9, abs_tol=1e-9)


def test_conv2d_output_shape_with_stride_and_padding():
    out = Conv2d(3, 4, 3, stride=2, padding=1)([[[0.0] * 8 for _ in range(8)]] * 3)
    assert (len(out), len(out[0]), len(out[0][0])) == (4, 4, 4)


def test_conv2d_parameters_and_labels():
    conv = Conv2d(2, 3, 2)
    assert len(conv.parameters()) == 3 * (2 * 2 * 2 + 1)
    assert conv.parameters()[8].label == 'N0.b'
    assert Sequential(conv).parameters()[9].label == 'L0.N1.w0'


@pytest.mark.parametrize('image, message', [
    ([[1.0, 2.0], [3.0, 4.0]], 'image'),                              # no channel level
    ([[[1.0, 2.0], [3.0]]], 'image'),                                 # ragged rows
    ([[[1.0] * 3] * 3, [[1.0] * 3] * 3], 'expects 1 input channels, got 2'),
    ([[[1.0]]], 'smaller than the 2x2 kernel'),
    (5.0, 'image'),
])
def test_conv2d_refuses_bad_images(image, message):
    with pytest.raises(ValueError, match=message):
        Conv2d(1, 1, 2)(image)


@pytest.mark.parametrize('kwargs', [{'kernel_size': 0}, {'stride': 0}, {'padding': -1},
                                    {'in_channels': 0}, {'activation': 'softmax'}])
def test_conv2d_refuses_bad_settings(kwargs):
    settings = dict(in_channels=1, out_channels=1, kernel_size=2)
    settings.update(kwargs)
    with pytest.raises(ValueError):
        Conv2d(**settings)


# ---- pooling ---------------------------------------------------------------------------------

images = st.integers(2, 5).flatmap(lambda h: st.integers(2, 5).flatmap(
    lambda w: st.lists(st.lists(st.lists(finite, min_size=w, max_size=w), min_size=h,
                                max_size=h), min_size=1, max_size=2)))


@given(images)
def test_maxpool_picks_each_windows_largest_value_exactly(image):
    out = data(MaxPool2d(2)(values(image)))
    for c, channel in enumerate(out):
        for i, row in enumerate(channel):
            for j, v in enumerate(row):
                window = [image[c][2 * i + a][2 * j + b] for a in (0, 1) for b in (0, 1)]
                assert v == max(window)


@given(images)
def test_maxpool_sends_the_gradient_to_the_first_largest_input_only(image):
    xs = values(image)
    out = MaxPool2d(2, stride=1)(xs)
    sum(Flatten()(out), Value(0.0)).backward()
    expected = [[[0.0] * len(image[0][0]) for _ in image[0]] for _ in image]
    for c, channel in enumerate(out):
        for i, row in enumerate(channel):
            for j, _ in enumerate(row):
                window = [(i + a, j + b) for a in (0, 1) for b in (0, 1)]
                r, q = max(window, key=lambda p: (image[c][p[0]][p[1]], -window.index(p)))
                expected[c][r][q] += 1.0
    assert [[[v.grad for v in row] for row in ch] for ch in xs] == expected


@given(images)
def test_avgpool_takes_each_windows_mean_and_spreads_the_gradient_evenly(image):
    xs = values(image)
    out = AvgPool2d(2)(xs)
    for c, channel in enumerate(out):
        for i, row in enumerate(channel):
            for j, v in enumerate(row):
                window = [image[c][2 * i + a][2 * j + b] for a in (0, 1) for b in (0, 1)]
                assert math.isclose(v.data, sum(window) / 4, rel_tol=1e-12, abs_tol=1e-12)
    sum(Flatten()(out), Value(0.0)).backward()
    used = {(c, 2 * i + a, 2 * j + b) for c, ch in enumerate(out) for i, row in enumerate(ch)
            for j, _ in enumerate(row) for a in (0, 1) for b in (0, 1)}
    for c, channel in enumerate(xs):
        for r, row in enumerate(channel):
            for q, x in enumerate(row):
                assert x.grad == (0.25 if (c, r, q) in used else 0.0)


def test_maximum_is_exact_and_propagates_nan():
    assert maximum(Value(1e16 + 2), Value(1.0)).data == 1e16 + 2
    assert math.isnan(maximum(Value(math.nan), Value(1.0)).data)
    assert math.isnan(maximum(Value(1.0), Value(math.nan)).data)
    assert maximum(2.0, 3.0) == 3.0


def test_pooling_refuses_images_smaller_than_the_window():
    with pytest.raises(ValueError, match='smaller than the window'):
        MaxPool2d(3)([[[1.0, 2.0], [3.0, 4.0]]])


# ---- Flatten, Residual, Sequential -----------------------------------------------------------

def test_flatten_reads_channels_then_rows_then_columns():
    assert Flatten()([[[1, 2], [3, 4]], [[5, 6], [7, 8]]]) == [1, 2, 3, 4, 5, 6, 7, 8]


def test_residual_adds_its_input_and_passes_gradient_through_the_skip():
    block = Layer(2, 2, activation='linear')
    block.set_parameter_values([0.0] * 6)  # f(x) = 0, so only the skip connection is left
    x = [Value(3.0), Value(-1.0)]
    out = Residual(block)(x)
    assert data(out) == [3.0, -1.0]
    sum(out, Value(0.0)).backward()
    assert [v.grad for v in x] == [1.0, 1.0]


def test_residual_refuses_a_block_that_changes_the_length():
    with pytest.raises(ValueError, match=r'maps shape \(2,\) to \(3,\)'):
        Residual(Layer(2, 3))([1.0, 2.0])


def test_sequential_applies_modules_in_order_and_names_them():
    first, second = Layer(2, 3, rng=random.Random(0)), Layer(3, 1, rng=random.Random(1))
    model = Sequential(first, second)
    x = [0.5, -0.25]
    assert model(x).data == second(first(x)).data
    assert model.parameters() == first.parameters() + second.parameters()
    assert first.parameters()[0].label == 'L0.N0.w0'
    assert second.parameters()[-1].label == 'L1.N0.b'


def test_sequential_refuses_what_is_not_callable():
    with pytest.raises(TypeError, match='Sequential takes modules'):
        Sequential(Layer(2, 2), 3)


# ---- a small LeNet on 8x8 images -------------------------------------------------------------

def lenet(rng):
    return Sequential(
        Conv2d(1, 4, 3, padding=1, activation='relu', rng=rng),   # 1x8x8 -> 4x8x8
        MaxPool2d(2),                                             # -> 4x4x4
        Conv2d(4, 6, 3, activation='relu', rng=rng),              # -> 6x2x2
        AvgPool2d(2),                                             # -> 6x1x1
        Flatten(),                                                # -> 6
        MLP(6, [8, 3], rng=rng))                                  # -> 3 class scores


def test_a_small_lenet_learns_three_8x8_images():
    rng = random.Random(0)
    model = lenet(rng)
    images = [[[[rng.uniform(0, 1) for _ in range(8)] for _ in range(8)]] for _ in range(3)]
    optimizer = SGD(model.parameters(), lr=0.05)
    losses = []
    for _ in range(8):
        loss = sum(softmax_cross_entropy(model(img), label) for label, img in enumerate(images))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.data)
    assert len(model(images[0])) == 3
    assert losses[-1] < losses[0]


# ---- Residual on images ----------------------------------------------------------------------

def test_residual_adds_an_image_to_its_block_output_pixel_by_pixel():
    conv = Conv2d(2, 2, 3, padding=1, rng=random.Random(0))  # 2x4x4 -> 2x4x4
    image = [[[0.1 * (c + 1) * (r - q) for q in range(4)] for r in range(4)] for c in range(2)]
    out = data(Residual(conv)(image))
    block_out = data(conv(image))
    expected = [[[image[c][r][q] + block_out[c][r][q] for q in range(4)] for r in range(4)]
                for c in range(2)]
    assert out == expected  # 2x4x4, not the 2x8x4 of channel lists joined with +


def test_residual_gradient_reaches_every_input_pixel_through_the_skip():
    conv = Conv2d(1, 1, 1, rng=random.Random(0))
    conv.set_parameter_values([0.0, 0.0])  # the block outputs 0: only the skip is left
    image = values([[[1.0, 2.0], [3.0, 4.0]]])
    out = Residual(conv)(image)
    sum(Flatten()(out), Value(0.0)).backward()
    assert [[v.grad for v in row] for row in image[0]] == [[1.0, 1.0], [1.0, 1.0]]


@pytest.mark.parametrize('block, x, message', [
    (Conv2d(2, 2, 3, rng=random.Random(0)), [[[1.0] * 4] * 4] * 2,   # 2x4x4 -> 2x2x2
     r'shape \(2, 4, 4\) to \(2, 2, 2\)'),
    (Conv2d(2, 3, 1, rng=random.Random(0)), [[[1.0] * 4] * 4] * 2,   # 2x4x4 -> 3x4x4
     r'shape \(2, 4, 4\) to \(3, 4, 4\)'),
    (Flatten(), [[[1.0] * 2] * 2], r'shape \(1, 2, 2\) to \(4,\)'),
])
def test_residual_refuses_a_block_that_changes_the_shape(block, x, message):
    with pytest.raises(ValueError, match=message):
        Residual(block)(x)
