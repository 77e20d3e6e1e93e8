"""The named CNNs: parameter counts against the published ones, stage shapes against the papers'
tables, and a reduced version of each that trains one SGD step with a gradient check.

Reference numbers and their sources:
- torchvision's model documentation, "Table of all available classification weights"
  (https://pytorch.org/vision/stable/models.html), column "Params"; the same numbers are the
  `num_params` of each weight enum's meta, e.g. torchvision.models.VGG16_Weights.IMAGENET1K_V1.
  They count model.parameters() of the model that loads those weights: batch-norm running
  statistics are buffers, not counted; GoogLeNet without its auxiliary classifiers (the
  builder drops them after loading unless aux_logits=True), with batch norm, and with a 3x3
  convolution in its "5x5" branch (torchvision's documented deviation from the paper).
- LeNet-5: LeCun, Bottou, Bengio, Haffner, "Gradient-based learning applied to document
  recognition", Proc. IEEE 1998, section II.B, and the common modern variant's arithmetic.
- Shapes: AlexNet as torchvision builds it (its features / avgpool modules); VGG: Simonyan &
  Zisserman 2014, section 2.1 and Table 1, parameter totals in Table 2; GoogLeNet: Szegedy et
  al. 2014, Table 1; ResNet: He et al. 2015, Table 1.
"""
import math
import random

import pytest

from micrograd.architectures import alexnet, googlenet, lenet5, resnet, vgg
from micrograd.engine import Value
from micrograd.losses import softmax_cross_entropy
from micrograd.nn import BatchNorm2d, Conv2d, Dropout, shapes_only
from micrograd.optim import SGD
from micrograd.summary import summary

IMAGENET = (3, 224, 224)

TORCHVISION_PARAMS = {   # torchvision's documentation, column "Params"
    'alexnet': 61_100_840,
    'vgg11': 132_863_336,
    'vgg13': 133_047_848,
    'vgg16': 138_357_544,
    'vgg19': 143_667_240,
    'googlenet': 6_624_904,
    'resnet18': 11_689_512,
    'resnet34': 21_797_672,
}

BUILDERS = {
    'alexnet': alexnet,
    'vgg11': lambda **kw: vgg(11, **kw),
    'vgg13': lambda **kw: vgg(13, **kw),
    'vgg16': lambda **kw: vgg(16, **kw),
    'vgg19': lambda **kw: vgg(19, **kw),
    'googlenet': googlenet,
    'resnet18': lambda **kw: resnet(18, **kw),
    'resnet34': lambda **kw: resnet(34, **kw),
}


def full_size(name):
    with shapes_only():
        return BUILDERS[name]()


def stage_shapes(model, input_shape):
    """The output shape after each top-level stage of the model."""
    shapes = []
    for stage in model.modules:
        input_shape = stage.output_shape(input_shape)
        shapes.append(input_shape)
    return shapes


# ---- counts ----------------------------------------------------------------------------------

@pytest.mark.parametrize('name', sorted(TORCHVISION_PARAMS))
def test_parameter_count_equals_torchvisions_published_count(name):
    model = full_size(name)
    assert model.parameter_count() == TORCHVISION_PARAMS[name]
    assert summary(model, IMAGENET).parameters == TORCHVISION_PARAMS[name]


def test_vgg_counts_round_to_the_papers_table_2():
    # Table 2 of the VGG paper: "Number of parameters (in millions)": A 133, B 133, D 138, E 144
    for depth, millions in [(11, 133), (13, 133), (16, 138), (19, 144)]:
        with shapes_only():
            assert round(vgg(depth).parameter_count() / 1e6) == millions


def test_googlenet_with_the_papers_5x5_branch_has_more_parameters():
    # Not a published number: the same network with 5x5 convolutions where torchvision has 3x3.
    # Each inception module gains 16 * c5_reduce * c5 weights (25 - 9 per pair of channels).
    with shapes_only():
        paper = googlenet(branch_kernel=5).parameter_count()
    pairs = [16 * 32, 32 * 96, 16 * 48, 24 * 64, 24 * 64, 32 * 64, 32 * 128, 32 * 128, 48 * 128]
    assert paper - TORCHVISION_PARAMS['googlenet'] == 16 * sum(pairs) == 380_928


# ---- LeNet-5 ---------------------------------------------------------------------------------

def test_lenet5_against_the_classic_papers_layer_table():
    model = lenet5()
    assert model.parameter_count() == 61_706 == len(model.parameters())
    # the paper's maps: C1 6@28x28, S2 6@14x14, C3 16@10x10, S4 16@5x5, C5 120, F6 84, 10 outputs
    assert stage_shapes(model, (1, 32, 32)) == [(6, 28, 28), (6, 14, 14), (16, 10, 10),
                                                (16, 5, 5), (400,), (120,), (84,), (10,)]
    c1, s2, c3, s4, _, c5, f6, output = (m.parameter_count() for m in model.modules)
    # equal to the paper: C1 156 trainable parameters, C5 48,120, F6 10,164
    assert (c1, c5, f6) == (156, 48_120, 10_164)
    # the modern variant's departures: C3 fully connected (the paper's connection table gives
    # 1,516), S2 and S4 plain average pools (the paper trains a coefficient and a bias per
    # map: 12 and 32), and a trained linear output where the paper has fixed RBF units
    assert (c3, s2, s4, output) == (16 * (6 * 25 + 1), 0, 0, 84 * 10 + 10) == (2_416, 0, 0, 850)


# ---- stage shapes against the papers' tables -------------------------------------------------

def test_alexnet_stage_shapes():
    # torchvision's AlexNet: 64@55x55 pooled to 27x27, 192@27x27 pooled to 13x13, 384, 256 and
    # 256 @13x13 pooled to 6x6 (the paper's 96-256-384-384-256 split over two GPUs has the
    # same spatial sizes)
    model = full_size('alexnet')
    assert model.modules[0].modules[0].output_shape(IMAGENET) == (64, 55, 55)
    assert stage_shapes(model, IMAGENET) == [(64, 27, 27), (192, 13, 13), (384, 13, 13),
                                             (256, 13, 13), (256, 6, 6), (256, 6, 6), (9216,),
                                             (1000,)]


@pytest.mark.parametrize('depth', [11, 13, 16, 19])
def test_vgg_stage_shapes(depth):
    # Table 1: five blocks of 64, 128, 256, 512, 512 channels, each closed by a 2x2 max pool
    # halving 224 -> 112 -> 56 -> 28 -> 14 -> 7; FC-4096, FC-4096, FC-1000
    model = full_size(f'vgg{depth}')
    assert stage_shapes(model, IMAGENET) == [(64, 112, 112), (128, 56, 56), (256, 28, 28),
                                             (512, 14, 14), (512, 7, 7), (512, 7, 7),
                                             (25088,), (1000,)]
    convolutions = sum(len(block.modules) - 1 for block in model.modules[:5])
    assert convolutions + 3 == depth  # weight layers: convolutions and 3 fully connected


def test_googlenet_stage_shapes_follow_table_1():
    # Table 1, "output size" column, row by row (our extra row: the flatten before dropout)
    table_1 = [(64, 112, 112),   # convolution 7x7/2
               (64, 56, 56),     # max pool 3x3/2
               (192, 56, 56),    # convolution 3x3/1 (with its 1x1 reduce)
               (192, 28, 28),    # max pool 3x3/2
               (256, 28, 28),    # inception (3a)
               (480, 28, 28),    # inception (3b)
               (480, 14, 14),    # max pool 3x3/2
               (512, 14, 14), (512, 14, 14), (512, 14, 14), (528, 14, 14),  # (4a)-(4d)
               (832, 14, 14),    # inception (4e)
               (832, 7, 7),      # max pool
               (832, 7, 7),      # inception (5a)
               (1024, 7, 7),     # inception (5b)
               (1024, 1, 1),     # avg pool 7x7/1
               (1024,),          # flatten
               (1024,),          # dropout
               (1000,)]          # linear
    assert stage_shapes(full_size('googlenet'), IMAGENET) == table_1


@pytest.mark.parametrize('depth', [18, 34])
def test_resnet_stage_shapes_follow_table_1(depth):
    # Table 1: conv1 112x112, conv2_x 56x56 (after the 3x3/2 max pool), conv3_x 28x28,
    # conv4_x 14x14, conv5_x 7x7, then average pool and a 1000-d fc; 64 to 512 channels
    model = full_size(f'resnet{depth}')
    assert stage_shapes(model, IMAGENET) == [(64, 112, 112), (64, 56, 56), (128, 28, 28),
                                             (256, 14, 14), (512, 7, 7), (512, 1, 1), (512,),
                                             (1000,)]
    blocks = [len(stage.modules) - (i == 0) for i, stage in enumerate(model.modules[1:5])]
    assert blocks == {18: [2, 2, 2, 2], 34: [3, 4, 6, 3]}[depth]


def test_full_size_summaries_need_no_values():
    # a model built under shapes_only() refuses to run, so the summary never ran it
    for name in BUILDERS:
        assert summary(full_size(name), IMAGENET).output_shape == (1000,)


# ---- reduced models train one step, with a gradient check ------------------------------------

# name: (the reduced model, its input shape, batch size). Near the smallest inputs the pools
# allow and at most a few channels per layer, so that each forward pass records 15,000 to
# 120,000 nodes. Models with batch norm get a batch of 4: their last stages see 1x1 images, and
# batch norm maps a channel of only 2 numbers to -1 and +1 whatever they are, so almost no
# gradient would reach the layers before it (measured: 1e-8 at the first convolution).
REDUCED = {
    'lenet5': (lambda: lenet5(num_classes=3, width=1 / 2, input_size=16, rng=random.Random(0)),
               (1, 16, 16), 1),
    'alexnet': (lambda: alexnet(num_classes=3, in_channels=1, width=1 / 64,
                                rng=random.Random(0)), (1, 63, 63), 1),
    **{f'vgg{depth}': ((lambda depth=depth: vgg(depth, num_classes=3, in_channels=1,
                                                width=1 / 128, rng=random.Random(0))),
                       (1, 32, 32), 1) for depth in (11, 13, 16, 19)},
    'googlenet': (lambda: googlenet(num_classes=3, in_channels=1, width=1 / 64,
                                    rng=random.Random(0)), (1, 17, 17), 4),
    'resnet18': (lambda: resnet(18, num_classes=3, in_channels=1, width=1 / 64,
                                rng=random.Random(0)), (1, 9, 9), 4),
    'resnet34': (lambda: resnet(34, num_classes=3, in_channels=1, width=1 / 64,
                                rng=random.Random(0)), (1, 9, 9), 4),
}


def walk(model):
    """Every module of the model, in the order of its parameters."""
    stack = [model]
    while stack:
        module = stack.pop()
        yield module
        stack.extend(reversed(module.children()))


def batch_loss(model, images, labels):
    """Mean cross-entropy over the batch; every dropout draws the same mask on each call, so
    the loss is a deterministic function of the parameters."""
    for module in walk(model):
        if isinstance(module, Dropout):
            module.rng = random.Random(7)
    logits = model.batch(images)
    return sum((softmax_cross_entropy(z, y) for z, y in zip(logits, labels)),
               Value(0.0)) / len(labels)


def checked_parameters(model):
    """From the first convolution (the farthest from the loss), the middle convolution and the
    last batch norm if any, the parameter with the largest gradient: a ReLU that is off for
    every pixel leaves many weights with none, and a check of 0 against 0 would prove little."""
    modules = list(walk(model))
    convolutions = [m for m in modules if isinstance(m, Conv2d)]
    groups = [convolutions[0], convolutions[len(convolutions) // 2]]
    groups += [m for m in modules if isinstance(m, BatchNorm2d)][-1:]
    return [max(group.parameters(), key=lambda p: abs(p.grad)) for group in groups]


@pytest.mark.parametrize('name', sorted(REDUCED))
def test_reduced_model_trains_one_step_and_passes_a_gradient_check(name):
    build, shape, batch_size = REDUCED[name]
    model = build()
    rng = random.Random(1)
    images = [[[[rng.uniform(0, 1) for _ in range(shape[2])] for _ in range(shape[1])]]
              for _ in range(batch_size)]
    labels = [0, 2, 1, 0][:batch_size]
    assert summary(model, shape).parameters == len(model.parameters())

    loss = batch_loss(model, images, labels)
    model.zero_grad()
    loss.backward()
    assert math.isfinite(loss.data)
    for p in checked_parameters(model):
        analytic, start = p.grad, p.data
        h = 1e-6 * max(1.0, abs(start))
        p.data = start + h
        up = batch_loss(model, images, labels).data
        p.data = start - h
        down = batch_loss(model, images, labels).data
        p.data = start
        numeric = (up - down) / (2 * h)
        assert abs(analytic) > 1e-3, (p.label, analytic)  # the gradient reaches it
        assert abs(analytic - numeric) <= 1e-6 + 1e-4 * abs(numeric), (p.label, analytic, numeric)

    before = model.parameter_values()
    SGD(model.parameters(), lr=0.01).step()
    after = model.parameter_values()
    assert after != before and all(math.isfinite(v) for v in after)
