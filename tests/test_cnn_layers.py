"""The layers the named CNNs need: BatchNorm2d, pooling with padding and ceil_mode, adaptive and
global average pooling, Concat, Activation, Dropout, Residual with a projection shortcut,
convolution without bias, and shapes_only(). PyTorch is the oracle where it is installed."""
import math
import random

import pytest

import torch_oracle
from micrograd.engine import Value
from micrograd.nn import (Activation, AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Concat, Conv2d,
                          Dropout, Flatten, GlobalAvgPool2d, Layer, MaxPool2d, Residual,
                          Sequential, nested_shape, shapes_only)


def image(shape, seed=0):
    rng = random.Random(seed)
    channels, height, width = shape
    return [[[rng.uniform(-2, 2) for _ in range(width)] for _ in range(height)]
            for _ in range(channels)]


def values(nested):
    return [values(x) for x in nested] if isinstance(nested, list) else Value(nested)


def data(nested):
    return [data(x) for x in nested] if isinstance(nested, list) else nested.data


def grads(nested):
    return [grads(x) for x in nested] if isinstance(nested, list) else nested.grad


def close(a, b, tol=1e-9):
    flat_a, flat_b = Flatten()(a), Flatten()(b)
    return len(flat_a) == len(flat_b) and all(
        math.isclose(x, y, rel_tol=tol, abs_tol=tol) for x, y in zip(flat_a, flat_b))


@pytest.fixture(scope='module')
def torch():
    torch = torch_oracle.import_torch()
    torch.set_default_dtype(torch.float64)
    return torch


# ---- pooling, against PyTorch ----------------------------------------------------------------

@pytest.mark.parametrize('k, stride, padding, ceil_mode, shape', [
    (3, 2, 1, False, (2, 7, 6)),
    (3, 2, 0, True, (1, 6, 6)),       # GoogLeNet's pools: the last window cut by the edge
    (3, 2, 1, True, (1, 8, 5)),
    (2, 2, 0, True, (1, 5, 7)),
    (3, 1, 1, True, (2, 4, 3)),       # the Inception pool branch keeps the size
    (3, 3, 1, True, (1, 4, 4)),
    (2, 2, 1, True, (1, 5, 5)),       # the last window would start in the padding: dropped
    (3, 2, 0, True, (1, 2, 2)),       # in ceil mode one window larger than the image
])
def test_pooling_with_padding_and_ceil_mode_equals_pytorch(torch, k, stride, padding, ceil_mode,
                                                           shape):
    x = image(shape)
    t = torch.tensor([x])
    want_max = torch.nn.functional.max_pool2d(t, k, stride, padding, ceil_mode=ceil_mode)[0]
    want_avg = torch.nn.functional.avg_pool2d(t, k, stride, padding, ceil_mode=ceil_mode,
                                              count_include_pad=False)[0]
    got_max = data(MaxPool2d(k, stride, padding=padding, ceil_mode=ceil_mode)(values(x)))
    got_avg = data(AvgPool2d(k, stride, padding=padding, ceil_mode=ceil_mode)(values(x)))
    assert got_max == want_max.tolist()  # a max is exact
    assert close(got_avg, want_avg.tolist(), 1e-12)
    assert MaxPool2d(k, stride, padding=padding, ceil_mode=ceil_mode).output_shape(shape) == \
        tuple(want_max.shape)


@pytest.mark.parametrize('size, shape', [(6, (2, 13, 13)), (7, (1, 7, 7)), (3, (1, 5, 8)),
                                         (6, (1, 1, 1)), (4, (1, 3, 2)), (1, (3, 4, 5))])
def test_adaptive_average_pooling_equals_pytorch(torch, size, shape):
    x = image(shape)
    want = torch.nn.functional.adaptive_avg_pool2d(torch.tensor([x]), size)[0].tolist()
    assert close(data(AdaptiveAvgPool2d(size)(values(x))), want, 1e-12)
    if size == 1:
        assert close(data(GlobalAvgPool2d()(values(x))), want, 1e-12)


def test_pooling_refuses_an_image_smaller_than_the_window_as_pytorch_does(torch):
    for pool in (MaxPool2d(3, 2), MaxPool2d(3, 1, ceil_mode=True), MaxPool2d(4, 2, ceil_mode=True)):
        with pytest.raises(ValueError, match='smaller than the window'):
            pool.output_shape((1, 1, 1))
        with pytest.raises(RuntimeError):
            torch.nn.functional.max_pool2d(torch.zeros(1, 1, 1, 1), pool.kernel_size, pool.stride,
                                           ceil_mode=pool.ceil_mode)


def test_pooling_refuses_padding_over_half_the_window():
    with pytest.raises(ValueError, match='padding must be an integer from 0 to half'):
        MaxPool2d(3, padding=2)


# ---- BatchNorm2d, against PyTorch ------------------------------------------------------------

def test_batchnorm2d_training_output_gradients_and_running_stats_equal_pytorch(torch):
    batch = [image((2, 3, 2), seed) for seed in range(3)]
    upstream = [image((2, 3, 2), 10 + seed) for seed in range(3)]
    layer = BatchNorm2d(2, momentum=0.1)
    layer.set_parameter_values([1.5, -0.5, 0.25, 2.0])  # gamma, then beta
    xs = values(batch)
    out = layer.batch(xs)
    sum((o * g for o, g in zip(Flatten()(out), Flatten()(upstream))), Value(0.0)).backward()

    reference = torch.nn.BatchNorm2d(2, momentum=0.1)
    with torch.no_grad():
        reference.weight.copy_(torch.tensor([1.5, -0.5]))
        reference.bias.copy_(torch.tensor([0.25, 2.0]))
    t = torch.tensor(batch, requires_grad=True)
    t_out = reference(t)
    t_out.backward(torch.tensor(upstream))
    assert close(data(out), t_out.tolist())
    assert close(grads(xs), t.grad.tolist())
    assert close([p.grad for p in layer.parameters()],
                 reference.weight.grad.tolist() + reference.bias.grad.tolist())
    assert close(layer.running_mean, reference.running_mean.tolist(), 1e-12)
    assert close(layer.running_var, reference.running_var.tolist(), 1e-12)


def test_batchnorm2d_eval_mode_uses_the_running_statistics_per_channel():
    layer = BatchNorm2d(2, eps=0.0).eval()
    layer.running_mean, layer.running_var = [1.0, -1.0], [4.0, 0.25]
    x = [[[3.0, 5.0]], [[0.0, -2.0]]]
    assert data(layer(values(x))) == [[[1.0, 2.0]], [[2.0, -2.0]]]


def test_batchnorm2d_one_image_is_a_batch_of_one():
    layer, x = BatchNorm2d(2), image((2, 2, 3))
    assert data(layer(x)) == data(BatchNorm2d(2).batch([x])[0])


@pytest.mark.parametrize('images, message', [
    ([[[[1.0]]]], 'at least 2 numbers per channel'),
    ([image((1, 2, 2)), image((1, 2, 3))], 'differ in shape'),
    ([image((2, 2, 2))], 'expects 1 channels, got 2'),
    ([], 'non-empty batch'),
])
def test_batchnorm2d_refuses_bad_batches(images, message):
    with pytest.raises(ValueError, match=message):
        BatchNorm2d(1).batch(images)


# ---- Concat, Activation, Dropout -------------------------------------------------------------

def test_concat_stacks_the_branches_channels_in_order():
    rng = random.Random(0)
    first, second = Conv2d(2, 1, 1, rng=rng), Conv2d(2, 3, 3, padding=1, rng=rng)
    x = image((2, 4, 4))
    out = data(Concat(first, second)(x))
    assert out == data(first(x)) + data(second(x))
    assert nested_shape(out) == (4, 4, 4)


def test_concat_refuses_branches_of_different_sizes():
    with pytest.raises(ValueError, match='one height and width'):
        Concat(Conv2d(1, 1, 1), Conv2d(1, 1, 3))(image((1, 4, 4)))
    with pytest.raises(ValueError, match='one height and width'):
        Concat(Conv2d(1, 1, 1), Conv2d(1, 1, 3)).output_shape((1, 4, 4))


def test_activation_applies_to_every_pixel():
    x = [[[-1.0, 2.0]], [[0.5, -3.0]]]
    assert data(Activation('relu')(values(x))) == [[[0.0, 2.0]], [[0.5, 0.0]]]
    assert data(Activation('tanh')(x)) == [[[math.tanh(v) for v in row] for row in ch] for ch in x]
    with pytest.raises(ValueError, match='unknown activation'):
        Activation('softmax')


def test_dropout_zeroes_about_p_and_scales_the_rest_and_is_the_identity_in_eval_mode():
    layer = Dropout(0.25, rng=random.Random(0))
    x = values([[[1.0] * 40 for _ in range(25)]])
    out = Flatten()(data(layer(x)))
    zeros = out.count(0.0)
    assert set(out) == {0.0, 1.0 / 0.75}
    assert 0.2 < zeros / len(out) < 0.3   # 1000 draws: within about 4 standard deviations
    layer.eval()
    assert layer(x) is x


@pytest.mark.parametrize('p', [-0.1, 1.0, 'half', True])
def test_dropout_refuses_a_bad_probability(p):
    with pytest.raises(ValueError, match='dropout probability'):
        Dropout(p)


# ---- Residual with a projection shortcut, Conv2d without bias --------------------------------

def test_residual_with_a_shortcut_adds_the_shortcut_not_the_input():
    rng = random.Random(0)
    block = Conv2d(2, 4, 3, stride=2, padding=1, rng=rng)
    shortcut = Conv2d(2, 4, 1, stride=2, bias=False, rng=rng)
    x = image((2, 5, 5))
    out = data(Residual(block, shortcut=shortcut)(x))
    assert close(out, [[[a + b for a, b in zip(ra, rb)] for ra, rb in zip(ca, cb)]
                       for ca, cb in zip(data(shortcut(x)), data(block(x)))], 1e-15)
    assert Residual(block, shortcut=shortcut).output_shape((2, 5, 5)) == (4, 3, 3)
    assert len(Residual(block, shortcut).parameters()) == 4 * (18 + 1) + 4 * 2


def test_residual_refuses_a_shortcut_of_another_shape():
    residual = Residual(Conv2d(2, 4, 3, stride=2, padding=1), shortcut=Conv2d(2, 4, 1))
    with pytest.raises(ValueError, match=r'the block gives \(4, 3, 3\) and the shortcut '
                                         r'\(4, 5, 5\)'):
        residual(image((2, 5, 5)))


def test_conv2d_without_bias_has_only_kernel_weights():
    conv = Conv2d(2, 3, 3, bias=False, rng=random.Random(0))
    assert len(conv.parameters()) == conv.parameter_count() == 3 * 2 * 9
    assert 'bias=False' in repr(conv)
    x = image((2, 3, 3))
    expected = [sum(w.data * v for w, v in zip(kernel.w, Flatten()(x))) for kernel in conv.kernels]
    assert close(Flatten()(data(conv(x))), expected, 1e-12)


def test_nested_sequentials_label_their_parameters_by_path():
    model = Sequential(Sequential(Layer(2, 2)), Sequential(Layer(2, 1)))
    labels = [p.label for p in model.parameters()]
    assert labels[0] == 'L0.L0.N0.w0' and labels[-1] == 'L1.L0.N0.b'
    assert len(set(labels)) == len(labels)


# ---- shapes_only -----------------------------------------------------------------------------

def test_shapes_only_builds_sizes_without_weights_and_refuses_to_run():
    with shapes_only():
        model = Sequential(Conv2d(3, 64, 3, padding=1), Flatten(), Layer(64 * 4, 10))
    assert model.parameter_count() == 64 * 28 + 10 * 257
    assert model.output_shape((3, 2, 2)) == (10,)
    with pytest.raises(RuntimeError, match='built under shapes_only'):
        model(image((3, 2, 2)))
    with pytest.raises(RuntimeError, match='built under shapes_only'):
        model.parameters()
    built = Sequential(Conv2d(3, 4, 3))  # outside the block, weights again
    assert len(built.parameters()) == 4 * 28
