"""The CNNs of the tutorials' architecture chapter, built from micrograd.nn layers.

    lenet5()                LeNet-5, the common modern variant (LeCun et al., 1998)
    alexnet()               AlexNet as torchvision builds it (Krizhevsky et al., 2012)
    vgg(11 | 13 | 16 | 19)  VGG, configurations A, B, D, E (Simonyan & Zisserman, 2014)
    googlenet()             GoogLeNet / Inception v1 as torchvision builds it (Szegedy et al., 2014)
    resnet(18 | 34)         ResNet with basic blocks (He et al., 2015)

Each model is a Sequential of stages, so `model.modules[i]` is the i-th row of the paper's
table and `summary(model, input_shape)` prints it layer by layer. At full size a model has
millions of weights, so build it under `shapes_only()` to count and shape it:

    with shapes_only():
        print(summary(vgg(16), (3, 224, 224)))

`width` scales every channel count and hidden width (at least 1 each), and every model takes
any input size its pools allow, so a reduced model runs through the engine: vgg(11,
width=1/64, in_channels=1) on a 1x32x32 image, say. Weights are drawn as a Neuron draws them,
then scaled to He initialisation (variance 2 / fan-in): micrograd's uniform(-1, 1) would make
the activations grow with depth.

Where torchvision departs from the paper, these follow torchvision, whose parameter counts are
the published oracle (see tests/test_architectures.py): AlexNet has torchvision's 64-192-384-
256-256 channels (the single-GPU variant of "One weird trick", Krizhevsky 2014) and no local
response normalisation (not implemented here); GoogLeNet has batch norm after every convolution,
no auxiliary classifiers and, in its "5x5" branch, a 3x3 convolution (torchvision's documented
deviation, kept for its pretrained weights; `branch_kernel=5` gives the paper's 5x5).
"""
import math
import random

from micrograd.nn import (Activation, AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Concat, Conv2d,
                          Dropout, Flatten, GlobalAvgPool2d, Layer, MaxPool2d, Neuron, Residual,
                          Sequential, UnbuiltWeights)


def scaled(channels, width):
    """A channel count times the width multiplier, at least 1."""
    return max(1, round(channels * width))


def he_initialise(model):
    """Scale every neuron's uniform(-1, 1) weights to variance 2 / fan-in (He et al., 2015)."""
    stack = [model]
    while stack:
        module = stack.pop()
        if isinstance(module, Neuron) and not isinstance(module.w, UnbuiltWeights):
            gain = math.sqrt(6.0 / len(module.w))
            for w in module.w:
                w.data *= gain
        stack.extend(module.children())
    return model


# ---- LeNet-5 ---------------------------------------------------------------------------------

def lenet5(num_classes=10, in_channels=1, activation='relu', width=1.0, input_size=32,
           rng=None):
    """The common modern LeNet-5 on 32x32 images: conv 6@5x5, 2x2 average pool, conv 16@5x5,
    2x2 average pool, then 120, 84 and `num_classes` fully connected. 61,706 parameters for
    10 classes. The 1998 paper differs in three places: C3 connects each of its 16 maps to
    only some of S2's 6 (1,516 parameters, not 2,416), the subsampling layers S2 and S4 have a
    trainable coefficient and bias per map (12 and 32 parameters), and the output is a layer
    of fixed RBF units, not a trained linear layer; it uses a scaled tanh throughout.
    `input_size` (at least 16) other than 32 changes C5's number of inputs."""
    rng = rng or random
    c1, c3, c5, f6 = (scaled(n, width) for n in (6, 16, 120, 84))
    features = [Conv2d(in_channels, c1, 5, activation=activation, rng=rng),   # C1: 6@28x28
                AvgPool2d(2),                                                 # S2: 6@14x14
                Conv2d(c1, c3, 5, activation=activation, rng=rng),            # C3: 16@10x10
                AvgPool2d(2)]                                                 # S4: 16@5x5
    _, height, width_ = Sequential(*features).output_shape((in_channels, input_size, input_size))
    return he_initialise(Sequential(
        *features, Flatten(),
        Layer(c3 * height * width_, c5, activation=activation, rng=rng),     # C5: 120
        Layer(c5, f6, activation=activation, rng=rng),                        # F6: 84
        Layer(f6, num_classes, activation='linear', rng=rng)))                # output


# ---- AlexNet ---------------------------------------------------------------------------------

def alexnet(num_classes=1000, in_channels=3, width=1.0, dropout=0.5, rng=None):
    """torchvision's AlexNet: five convolutions (11x11 stride 4, 5x5, three 3x3) with ReLU and
    three 3x3 stride-2 max pools, average pooled to 6x6, then 4096, 4096, classes. Needs an
    input of at least 63x63."""
    rng = rng or random
    c = [scaled(n, width) for n in (64, 192, 384, 256, 256)]
    hidden = scaled(4096, width)
    return he_initialise(Sequential(
        Sequential(Conv2d(in_channels, c[0], 11, stride=4, padding=2, activation='relu',
                          rng=rng), MaxPool2d(3, stride=2)),
        Sequential(Conv2d(c[0], c[1], 5, padding=2, activation='relu', rng=rng),
                   MaxPool2d(3, stride=2)),
        Conv2d(c[1], c[2], 3, padding=1, activation='relu', rng=rng),
        Conv2d(c[2], c[3], 3, padding=1, activation='relu', rng=rng),
        Sequential(Conv2d(c[3], c[4], 3, padding=1, activation='relu', rng=rng),
                   MaxPool2d(3, stride=2)),
        AdaptiveAvgPool2d(6),
        Flatten(),
        Sequential(Dropout(dropout, rng), Layer(c[4] * 6 * 6, hidden, activation='relu', rng=rng),
                   Dropout(dropout, rng), Layer(hidden, hidden, activation='relu', rng=rng),
                   Layer(hidden, num_classes, activation='linear', rng=rng))))


# ---- VGG -------------------------------------------------------------------------------------

# convolutions per block in configurations A (VGG-11), B (13), D (16) and E (19) of the paper
VGG_BLOCKS = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
VGG_CHANNELS = (64, 128, 256, 512, 512)


def vgg(depth, num_classes=1000, in_channels=3, width=1.0, dropout=0.5, rng=None):
    """VGG-11/13/16/19: five blocks of 3x3 convolutions (padding 1, ReLU), each closed by a
    2x2 max pool, average pooled to 7x7 (torchvision's addition; the identity at 224x224),
    then 4096, 4096, classes. Needs an input of at least 32x32."""
    if depth not in VGG_BLOCKS:
        raise ValueError(f'VGG depth must be one of {sorted(VGG_BLOCKS)}, got {depth!r}')
    rng = rng or random
    blocks, channels = [], in_channels
    for convs, out in zip(VGG_BLOCKS[depth], VGG_CHANNELS):
        out = scaled(out, width)
        layers = []
        for _ in range(convs):
            layers.append(Conv2d(channels, out, 3, padding=1, activation='relu', rng=rng))
            channels = out
        blocks.append(Sequential(*layers, MaxPool2d(2)))
    hidden = scaled(4096, width)
    head = Sequential(Layer(channels * 7 * 7, hidden, activation='relu', rng=rng),
                      Dropout(dropout, rng), Layer(hidden, hidden, activation='relu', rng=rng),
                      Dropout(dropout, rng),
                      Layer(hidden, num_classes, activation='linear', rng=rng))
    return he_initialise(Sequential(*blocks, AdaptiveAvgPool2d(7), Flatten(), head))


# ---- GoogLeNet -------------------------------------------------------------------------------

def conv_bn_relu(in_channels, out_channels, kernel_size, rng, stride=1, padding=0, eps=1e-3):
    """Convolution without bias, batch norm, ReLU: torchvision's BasicConv2d."""
    return Sequential(Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                             padding=padding, bias=False, rng=rng),
                      BatchNorm2d(out_channels, eps=eps), Activation('relu'))


def inception(in_channels, c1, c3_reduce, c3, c5_reduce, c5, pool_proj, rng, branch_kernel=3):
    """Four parallel branches, their channels concatenated: 1x1; 1x1 then 3x3; 1x1 then the
    "5x5" (see the module docstring); 3x3 max pool then 1x1."""
    return Concat(
        conv_bn_relu(in_channels, c1, 1, rng),
        Sequential(conv_bn_relu(in_channels, c3_reduce, 1, rng),
                   conv_bn_relu(c3_reduce, c3, 3, rng, padding=1)),
        Sequential(conv_bn_relu(in_channels, c5_reduce, 1, rng),
                   conv_bn_relu(c5_reduce, c5, branch_kernel, rng, padding=branch_kernel // 2)),
        Sequential(MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                   conv_bn_relu(in_channels, pool_proj, 1, rng)))


# name: (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj), Table 1 of the paper
INCEPTION = {
    '3a': (64, 96, 128, 16, 32, 32), '3b': (128, 128, 192, 32, 96, 64),
    '4a': (192, 96, 208, 16, 48, 64), '4b': (160, 112, 224, 24, 64, 64),
    '4c': (128, 128, 256, 24, 64, 64), '4d': (112, 144, 288, 32, 64, 64),
    '4e': (256, 160, 320, 32, 128, 128),
    '5a': (256, 160, 320, 32, 128, 128), '5b': (384, 192, 384, 48, 128, 128),
}


def googlenet(num_classes=1000, in_channels=3, width=1.0, dropout=0.2, branch_kernel=3,
              rng=None):
    """GoogLeNet as torchvision builds it (without the auxiliary classifiers): one stage per
    row of the paper's Table 1. Needs an input of at least 17x17."""
    rng = rng or random
    stages, channels = [], scaled(192, width)
    for name, sizes in INCEPTION.items():
        if name in ('4a', '5a'):  # a max pool between the groups of inception modules
            stages.append(MaxPool2d(3, stride=2, ceil_mode=True) if name == '4a'
                          else MaxPool2d(2, stride=2, ceil_mode=True))
        sizes = [scaled(n, width) for n in sizes]
        stages.append(inception(channels, *sizes, rng=rng, branch_kernel=branch_kernel))
        channels = sizes[0] + sizes[2] + sizes[4] + sizes[5]
    c64 = scaled(64, width)
    return he_initialise(Sequential(
        conv_bn_relu(in_channels, c64, 7, rng, stride=2, padding=3),     # conv 7x7/2
        MaxPool2d(3, stride=2, ceil_mode=True),                          # max pool 3x3/2
        Sequential(conv_bn_relu(c64, c64, 1, rng),                       # conv 3x3/1,
                   conv_bn_relu(c64, scaled(192, width), 3, rng, padding=1)),  # 1x1 reduce
        MaxPool2d(3, stride=2, ceil_mode=True),                          # max pool 3x3/2
        *stages,                                  # 3a, 3b, max pool, 4a-4e, max pool, 5a, 5b
        GlobalAvgPool2d(),                                               # avg pool 7x7/1
        Flatten(),
        Dropout(dropout, rng),                                           # dropout (40% paper)
        Layer(channels, num_classes, activation='linear', rng=rng)))     # linear


# ---- ResNet ----------------------------------------------------------------------------------

RESNET_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
RESNET_CHANNELS = (64, 128, 256, 512)


def basic_block(in_channels, out_channels, stride, rng):
    """relu(shortcut(x) + bn(conv3x3(relu(bn(conv3x3(x)))))): the shortcut is the identity,
    or a 1x1 convolution and batch norm where the block changes the shape."""
    body = Sequential(
        Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False, rng=rng),
        BatchNorm2d(out_channels), Activation('relu'),
        Conv2d(out_channels, out_channels, 3, padding=1, bias=False, rng=rng),
        BatchNorm2d(out_channels))
    shortcut = None
    if stride != 1 or in_channels != out_channels:
        shortcut = Sequential(Conv2d(in_channels, out_channels, 1, stride=stride, bias=False,
                                     rng=rng), BatchNorm2d(out_channels))
    return Sequential(Residual(body, shortcut=shortcut), Activation('relu'))


def resnet(depth, num_classes=1000, in_channels=3, width=1.0, rng=None):
    """ResNet-18/34 (torchvision's): conv 7x7/2 with batch norm, then conv2_x (a 3x3/2 max
    pool and the first blocks) to conv5_x, each later stage halving the image and doubling
    the channels, then global average pooling and one linear layer. Needs 32x32 or more."""
    if depth not in RESNET_BLOCKS:
        raise ValueError(f'ResNet depth must be one of {sorted(RESNET_BLOCKS)}, got {depth!r}')
    rng = rng or random
    channels = scaled(64, width)
    stages = [Sequential(Conv2d(in_channels, channels, 7, stride=2, padding=3, bias=False,
                                rng=rng), BatchNorm2d(channels), Activation('relu'))]
    for i, (blocks, out) in enumerate(zip(RESNET_BLOCKS[depth], RESNET_CHANNELS)):
        out = scaled(out, width)
        layers = [MaxPool2d(3, stride=2, padding=1)] if i == 0 else []
        for b in range(blocks):
            layers.append(basic_block(channels, out, 2 if b == 0 and i > 0 else 1, rng))
            channels = out
        stages.append(Sequential(*layers))
    return he_initialise(Sequential(*stages, GlobalAvgPool2d(), Flatten(),
                                    Layer(channels, num_classes, activation='linear', rng=rng)))

