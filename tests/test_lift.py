"""codegen/lift.py: the loop level of a gradient, built from the forward trace with each dense
layer differentiated whole, computes the bits of the scalar gradient program on every
evaluator (interpreter, C with one and two threads, per row and summed); and what it does not
cover is refused, so the Trainer takes the scalar path."""
import platform
import random

import pytest
from hypothesis import Phase, example, given, settings, strategies as st

import codegen
from codegen import emit_loops, lift, loops, recover
from codegen.build import Compiled, compile_source
from codegen.grad import _depends_on, _topo_order
from codegen.train import FAST_FLAGS, Trainer
from micrograd.engine import Value
from micrograd.nn import MLP

from codegen_support import STRICT_FLAGS, use_private_cache
from exact import assert_same
from test_loops import (LOSSES, assert_trainers_agree, hand_built_layer, hostile_layer,
                        layer_with_scalar_tail, ordered_sum, random_rows)


def forward_and_gradient(model, loss, n_in):
    """The traced per-sample loss (lift's input) and the scalar gradient program (the
    reference), as the Trainer makes them."""
    trainer = Trainer(model, LOSSES[loss] if isinstance(loss, str) else loss,
                      n_features=n_in, backend='python')
    return trainer.traced_sample, trainer.sample, trainer.n_params


def check_lift(forward, gradient, n_params, params, rows, tmp_path, monkeypatch):
    """lift(forward) on the interpreter and in C (1 and 2 threads; vector kernels and plain
    ones; batch and sum) against the scalar gradient program evaluated row by row."""
    use_private_cache(tmp_path, monkeypatch)
    lifted = lift.lift(forward, n_params)
    assert lifted is not None, 'lift refused a program it should cover'
    # a trace's instructions are in the engine's order already (the Trainer says so)
    assert _topo_order({i.out: i for i in forward.instrs}, forward.outputs[0]) == \
        list(forward.instrs)
    assert str(lift.lift(forward, n_params, traced=True)) == str(lifted)
    loops.check(lifted)
    expected_rows = [codegen.evaluate(gradient, list(params) + row) for row in rows]
    expected_sum = ordered_sum(gradient, params, rows)
    assert_same(expected_sum, loops.evaluate_sum(lifted, params, rows), 'interpreter sum')
    for got, want in zip(loops.evaluate_batch(lifted, params, rows), expected_rows):
        assert_same(want, got, 'interpreter batch')
    builds = [(1, STRICT_FLAGS), (2, FAST_FLAGS)]
    if platform.machine() in ('x86_64', 'AMD64'):  # without AVX-512: the plain kernels
        builds.append((1, STRICT_FLAGS + ('-mno-avx512f',)))
    for threads, flags in builds:
        source = emit_loops.to_c(lifted, threads=threads)
        compiled = Compiled(lifted.program, source, 'c', n_params,
                            compile_source(source, flags))
        assert_same(expected_sum, compiled.sum(params, rows), f'C sum, {threads} threads')
        for got, want in zip(compiled.batch(params, rows), expected_rows):
            assert_same(want, got, f'C batch, {threads} threads')
    return lifted


def test_w2_is_lifted_into_the_same_listing_without_a_scalar_gradient():
    random.seed(1337)
    trainer = Trainer(MLP(2, [64, 64, 1]), LOSSES['margin'], n_features=2, backend='python')
    lifted = lift.lift(trainer.traced_sample, trainer.n_params)
    listing = str(lifted)
    assert len(listing.splitlines()) < 40, listing
    dense = [s for s in lifted.body if isinstance(s, loops.Dense)]
    # forward 64x2, 64x64, 1x64; backward: the adjoints of both hidden layers (64x1, 64x64)
    assert sorted(s.group.shape for s in dense) == [(1, 64), (64, 1), (64, 2), (64, 64),
                                                    (64, 64)]
    # the weight gradients, each layer's biases with them as the weights of an input of 1.0
    assert sorted(o.group.shape for o in lifted.outers) == [(1, 65), (3, 64), (65, 64)]
    assert [k for k, slot in enumerate(lifted.outputs) if slot is not None] == [0]  # the loss
    assert len(lifted.program.instrs) < 1000  # against 25,863 in the scalar gradient


# each example compiles C twice: no shrinking, which would compile hundreds more
@settings(max_examples=12, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(n_in=st.integers(1, 5), hidden=st.lists(st.integers(2, 9), min_size=1, max_size=3),
       activation=st.sampled_from([None, 'tanh', 'sigmoid', 'linear']),
       loss=st.sampled_from(sorted(LOSSES)), n_rows=st.integers(1, 70),
       specials=st.booleans(), seed=st.integers(0, 2**16))
# linear layers: two layers' input adjoints made with no instruction between them (their
# biases' gradients are their Outers' now), which once shared one place in the schedule
@example(n_in=5, hidden=[4, 8, 9], activation='linear', loss='square', n_rows=8,
         specials=True, seed=1678)
def test_random_mlps_lift_to_the_scalar_gradients_bits(n_in, hidden, activation, loss, n_rows,
                                                       specials, seed, tmp_path_factory):
    random.seed(seed)
    model = MLP(n_in, hidden + [1], activation=activation) if activation else \
        MLP(n_in, hidden + [1])
    forward, gradient, n_params = forward_and_gradient(model, loss, n_in)
    if lift.lift(forward, n_params) is None:  # every layer below MIN_GROUP_WORK products
        assert all(a * b < 16 for a, b in zip([n_in] + hidden, hidden + [1]))
        return
    rows = random_rows(random.Random(seed), n_rows, n_in, specials)
    with pytest.MonkeyPatch.context() as monkeypatch:
        check_lift(forward, gradient, n_params, [p.data for p in model.parameters()], rows,
                   tmp_path_factory.mktemp('lift'), monkeypatch)


def test_three_hidden_layers_with_tanh_and_nan_rows(tmp_path, monkeypatch):
    """Adjoints into two hidden layers, each summed over the next layer's neurons in the
    engine's (descending) order: the case where summing in any other order changes bits."""
    random.seed(4)
    model = MLP(3, [12, 9, 7, 1], activation='tanh')
    forward, gradient, n_params = forward_and_gradient(model, 'square', 3)
    rows = random_rows(random.Random(4), 45, 3, specials=True)
    lifted = check_lift(forward, gradient, n_params, [p.data for p in model.parameters()], rows,
                        tmp_path, monkeypatch)
    # the adjoints of the first two hidden layers (the 1 x 7 output layer stays scalar)
    backward = [s for s in lifted.body if isinstance(s, loops.Dense) and s.group.init is None]
    assert len(backward) == 2


@pytest.mark.parametrize('column_major', [False, True])
def test_a_layer_built_by_hand_lifts_too(column_major, tmp_path, monkeypatch):
    rng = random.Random(5)
    params, inputs, loss = layer_with_scalar_tail(rng, column_major)
    forward = codegen.trace(loss, params + inputs, 'sample')
    gradient = codegen.optimize(codegen.grad(forward, forward.inputs[:len(params)]))
    rows = [[rng.uniform(-2, 2) for _ in range(7)] for _ in range(40)]
    check_lift(forward, gradient, len(params), [p.data for p in params], rows, tmp_path,
               monkeypatch)


def two_layers(rng):
    """x (4 data) -> layer A (5 neurons, relu) -> layer B (6 neurons): weights, biases and
    the hidden Values, to be combined into losses lift does or does not cover."""
    A, a_bias, a_params = hand_built_layer(rng, 5, 4, False)
    B, b_bias, b_params = hand_built_layer(rng, 6, 5, False)
    x = [Value(0.0, label=f'x{j}') for j in range(4)]
    hidden = [sum((A[i][j] * x[j] for j in range(4)), a_bias[i]).relu() for i in range(5)]
    out = [sum((B[i][j] * hidden[j] for j in range(5)), b_bias[i]) for i in range(6)]
    return a_params + b_params, x, hidden, out, A


@pytest.mark.parametrize('case', ['a weight read twice', 'a hidden unit read elsewhere'])
def test_what_lift_does_not_cover_is_refused_and_the_trainer_stays_exact(case, tmp_path,
                                                                         monkeypatch):
    rng = random.Random(8)
    params, x, hidden, out, A = two_layers(rng)
    loss = sum(o.tanh() for o in out)
    loss = loss + A[0][0] * A[0][0] if case == 'a weight read twice' else loss + hidden[2]
    forward = codegen.trace(loss, params + x, 'sample')
    assert lift.lift(forward, len(params)) is None


def test_the_trainer_builds_w1_without_the_scalar_gradient_program(tmp_path, monkeypatch):
    use_private_cache(tmp_path, monkeypatch)
    random.seed(1337)
    trainer = Trainer(MLP(2, [16, 16, 1]), LOSSES['margin'], n_features=2,
                      batch_loss=lambda ps: 1e-4 * sum(p * p for p in ps))
    assert 'sample' not in trainer.__dict__  # the cached property was never computed
    assert 'sample_part0' in ''.join(trainer.source)  # and the loop level was emitted


def test_hostile_labels_reach_no_lifted_source(tmp_path, monkeypatch):
    """Labels are user text: lifting names new registers after parameters (g_<name>), so
    every hostile label is tried as a parameter's and an input's, with one and two threads."""
    rng = random.Random(2)
    params, x, loss = hostile_layer(rng)
    forward = codegen.trace(loss, params + x, 'sample')
    gradient = codegen.optimize(codegen.grad(forward, forward.inputs[:len(params)]))
    rows = [[rng.uniform(-2, 2) for _ in range(5)] for _ in range(3)]
    lifted = check_lift(forward, gradient, len(params), [p.data for p in params], rows,
                        tmp_path, monkeypatch)
    for threads in (1, 2):
        source = emit_loops.to_c(lifted, threads=threads)
        assert 'evil' not in source and 'stdio' not in source


# ---- convolutions --------------------------------------------------------------------------

def conv_net(rng, channels, out_channels, kernel, stride, padding, size, pool):
    """Conv2d (relu) [-> MaxPool2d(2)] -> Flatten -> 5 (relu) -> 1, on a channels x size x size
    image given as data inputs; returns (net, its parameters, the flattened width)."""
    from micrograd.nn import Conv2d, Flatten, Layer, MaxPool2d, Sequential
    conv = Conv2d(channels, out_channels, kernel, stride=stride, padding=padding,
                  activation='relu', rng=rng)
    shape = conv.output_shape((channels, size, size))
    layers = [conv]
    if pool and min(shape[1:]) >= 2:
        layers.append(MaxPool2d(2))
        shape = layers[-1].output_shape(shape)
    width = shape[0] * shape[1] * shape[2]
    net = Sequential(*layers, Flatten(), Layer(width, 5, activation='relu', rng=rng),
                     Layer(5, 1, activation='linear', rng=rng))
    return net, net.parameters()


def conv_forward(net, params, channels, size):
    pixels = [Value(0.0, label=f'x{i}') for i in range(channels * size * size)]
    image = [[pixels[(c * size + r) * size:(c * size + r + 1) * size] for r in range(size)]
             for c in range(channels)]
    y = Value(0.0, label='y')
    out = net(image)
    loss = (1 + -y * (out[0] if isinstance(out, list) else out)).relu()
    forward = codegen.trace(loss, params + pixels + [y], 'sample')
    return forward, codegen.optimize(codegen.grad(forward, forward.inputs[:len(params)]))


@settings(max_examples=10, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(channels=st.integers(1, 2), out_channels=st.integers(2, 5), kernel=st.integers(2, 3),
       stride=st.integers(1, 2), padding=st.integers(0, 1), size=st.integers(4, 7),
       pool=st.booleans(), specials=st.booleans(), seed=st.integers(0, 2**16))
def test_random_convolutions_lift_to_the_scalar_gradients_bits(
        channels, out_channels, kernel, stride, padding, size, pool, specials, seed,
        tmp_path_factory):
    """A convolution's weights and biases get their gradients per row as sums over pixels
    (in the engine's pixel order), then the batch sum; max pooling's windows become
    elementwise families reading the convolution's outputs through tables."""
    rng = random.Random(seed)
    net, params = conv_net(rng, channels, out_channels, kernel, stride, padding, size, pool)
    forward, gradient = conv_forward(net, params, channels, size)
    lifted = lift.lift(forward, len(params))
    if lifted is None:  # nothing as big as MIN_GROUP_WORK products: the scalar path's job
        assert not recover.find_dense(forward, len(params))
        return
    pixels = ((size + 2 * padding - kernel) // stride + 1) ** 2
    if pixels > 1 and out_channels * channels * kernel * kernel >= recover.MIN_GROUP_WORK:
        assert any(isinstance(s, loops.Corr) for s in lifted.body)
    n_in = channels * size * size  # specials: in 2 rows (a nan in each would hide any order)
    rows = [row[:-1] for row in random_rows(rng, 35, n_in) + random_rows(rng, 2, n_in, specials)]
    rows = [row + [rng.choice([-1.0, 1.0])] for row in rows]
    with pytest.MonkeyPatch.context() as monkeypatch:
        check_lift(forward, gradient, len(params), [p.data for p in params], rows,
                   tmp_path_factory.mktemp('conv'), monkeypatch)


def test_long_runs_of_pooling_families_compile_right(tmp_path, monkeypatch):
    """Found by the test above: max pooling's backward made ~200 elementwise families in a
    row, and gcc 12 -O3 left some elements unwritten when they shared one loop (the first call
    then read whatever malloc returned). Runs of fused families are now short."""
    rng = random.Random(17622)
    net, params = conv_net(rng, 1, 5, 2, 1, 1, 7, True)
    forward, gradient = conv_forward(net, params, 1, 7)
    rows = [row[:-1] for row in random_rows(rng, 37, 49, False)]
    rows = [row + [rng.choice([-1.0, 1.0])] for row in rows]
    check_lift(forward, gradient, len(params), [p.data for p in params], rows[:1], tmp_path,
               monkeypatch)


@pytest.mark.parametrize('pool', ['max', 'avg'])
def test_a_convolution_after_a_convolution(pool, tmp_path, monkeypatch):
    """The second convolution's inputs (the pooled outputs of the first) get their adjoints
    as one Gather, each input's terms in the engine's order; what they are computed from is
    differentiated after it."""
    from micrograd.nn import AvgPool2d, Conv2d, Flatten, Layer, MaxPool2d, Sequential
    rng = random.Random(3)
    net = Sequential(Conv2d(1, 4, 3, activation='relu', rng=rng),
                     (MaxPool2d if pool == 'max' else AvgPool2d)(2),
                     Conv2d(4, 6, 3, activation='tanh', rng=rng, padding=1), Flatten(),
                     Layer(54, 5, activation='tanh', rng=rng),
                     Layer(5, 1, activation='linear', rng=rng))
    forward, gradient = conv_forward(net, net.parameters(), 1, 8)
    # mostly finite rows (a row with a nan makes every sum nan, whatever its order), two not
    rows = [row[:-1] for row in random_rows(rng, 38, 64) + random_rows(rng, 2, 64, True)]
    rows = [row + [rng.choice([-1.0, 1.0])] for row in rows]
    lifted = check_lift(forward, gradient, len(net.parameters()),
                        [p.data for p in net.parameters()], rows, tmp_path, monkeypatch)
    assert sum(isinstance(s, loops.Gather) for s in lifted.body) == 1
    assert sum(isinstance(s, loops.Corr) for s in lifted.body) == 4
    # tanh everywhere after the pooling: every term is nonzero, so the order of each input's
    # up to 54 terms shows in its bits


def test_the_digits_cnn_trains_lifted_with_the_scalar_paths_bits(tmp_path, monkeypatch):
    import importlib.util
    import os
    use_private_cache(tmp_path, monkeypatch)
    path = os.path.join(os.path.dirname(__file__), '..', 'examples', 'digits_cnn.py')
    spec = importlib.util.spec_from_file_location('digits_cnn', path)
    digits = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(digits)
    rng = random.Random(0)
    rows = [[rng.random() for _ in range(64)] + [1.0 if k == i % 10 else 0.0 for k in range(10)]
            for i in range(70)]
    trainers = [Trainer(digits.Digits(random.Random(0)), digits.cross_entropy, 64,
                        n_targets=10, loop_level=loop_level) for loop_level in (None, False)]
    assert [('sample' in t.__dict__) for t in trainers] == [False, True]  # lifted: never built
    assert_trainers_agree(trainers, rows, 0.1, 3)


def test_a_small_lenet5_lifts_to_the_scalar_gradients_bits(tmp_path, monkeypatch):
    """LeNet-5's structure at half width on 16x16 images: conv, average pool, conv (its inputs'
    adjoints a Gather), average pool, three dense layers, softmax cross-entropy."""
    from micrograd.architectures import lenet5
    from micrograd.nn import maximum, total
    rng = random.Random(6)
    net = lenet5(num_classes=4, width=0.5, input_size=16, rng=rng)
    params = net.parameters()
    pixels = [Value(0.0, label=f'x{i}') for i in range(256)]
    targets = [Value(0.0, label=f'y{k}') for k in range(4)]
    logits = net([[pixels[16 * r:16 * r + 16] for r in range(16)]])
    shift = logits[0]
    for z in logits[1:]:
        shift = maximum(z, shift)
    loss = total([(z - shift).exp() for z in logits]).log() - \
        total([y * (z - shift) for y, z in zip(targets, logits)])
    forward = codegen.trace(loss, params + pixels + targets, 'sample')
    gradient = codegen.optimize(codegen.grad(forward, forward.inputs[:len(params)]))
    rows = [[rng.random() for _ in range(256)] + [1.0 if k == i % 4 else 0.0 for k in range(4)]
            for i in range(33)]
    lifted = check_lift(forward, gradient, len(params), [p.data for p in params], rows,
                        tmp_path, monkeypatch)
    kinds = {type(s).__name__ for s in lifted.body}
    assert {'Conv', 'Corr', 'Gather'} <= kinds


def reader_based_checks(walk, family):
    """_only_its_products_read and _upstream as they were first written, looking at every
    reader of every register (and what depends on a parameter found over every instruction,
    as grad does), for the counting versions to be compared with."""
    needs = _depends_on(walk.program, walk.param_set)
    owned = set().union(*(g.internal for g in family))
    outs = set().union(*(g.outs for g in family))
    first = family[0]
    M, L = first.shape
    params = [walk.params[first.weight_index(m, j)] for m in range(M) for j in range(L)]
    params += [a for a in first.init or () if isinstance(a, str)]
    only = all(len(walk.readers.get(p, ())) == len(family) and all(
        r is not None and (r.out in owned or r.out in outs) for r in walk.readers.get(p, ()))
        for p in params) and all(
        all(r is not None and r.out in owned for r in walk.readers[v])
        for v in {v for g in family for v in g.vector if isinstance(v, str) and v in needs})
    stack = [v for g in family for v in g.vector if isinstance(v, str) and v in needs]
    upstream = set()
    while stack:
        r = stack.pop()
        if r in upstream or r not in walk.defined or r not in needs:
            continue
        upstream.add(r)
        stack.extend(walk.defined[r].args)
    if any(reader is None or (reader.out not in upstream and reader.out not in owned)
           for r in upstream for reader in walk.readers.get(r, ())):
        upstream = None
    return only, upstream


@pytest.mark.parametrize('extra', [None, 'pooled', 'first conv output', 'bias', 'weight', 'image'])
def test_the_counting_checks_agree_with_looking_at_every_reader(extra):
    """A convolution after a convolution, with one more read of some register added to the
    loss: the checks that count reads (_only_its_products_read, _upstream) decide as the ones
    that look at each reader, and their upstream is that one without the chains' insides."""
    from micrograd.nn import AvgPool2d, Conv2d, Flatten, Layer, Sequential
    rng = random.Random(5)
    conv1 = Conv2d(1, 3, 3, activation='relu', rng=rng)
    pool, conv2 = AvgPool2d(2), Conv2d(3, 4, 2, activation='tanh', rng=rng)
    head = Sequential(Flatten(), Layer(36, 1, activation='linear', rng=rng))
    pixels = [Value(0.0, label=f'x{i}') for i in range(100)]
    first = conv1([[pixels[10 * r:10 * r + 10] for r in range(10)]])
    pooled = pool(first)
    loss = head(conv2(pooled))
    loss = loss[0] if isinstance(loss, list) else loss
    params = conv1.parameters() + conv2.parameters() + head.parameters()
    loss = loss + {None: 0.0, 'pooled': pooled[1][2][2], 'first conv output': first[2][3][4],
                   'bias': conv2.parameters()[-1], 'weight': conv1.parameters()[4],
                   'image': pixels[33]}[extra]
    forward = codegen.trace(loss, params + pixels, 'sample')
    flow = recover.Dataflow(forward)
    param_set = set(forward.inputs[:len(params)])
    groups = recover.find_dense(forward, len(params), flow)
    families = {}
    for g in groups:
        families.setdefault((g.shape, g.base, g.stride_m, g.stride_j, g.init), []).append(g)
    convolutions = [tuple(f) for f in families.values() if len(f) > 1]
    assert len(convolutions) == 2
    walk = lift._Walk(forward, flow, forward.inputs[:len(params)], param_set, [], convolutions)
    full = _depends_on(forward, param_set)  # over every instruction: the same outside chains
    assert walk.needs == {r for r in full if r not in walk.owner or r in walk.finals}
    for family in convolutions:
        only, upstream = reader_based_checks(walk, family)
        assert walk._only_its_products_read(family) == only
        counted = walk._upstream(family)
        if upstream is None or counted is None:
            assert counted is upstream
        else:
            inside = set().union(*(p.internal for f in convolutions for p in f))
            assert counted == upstream - inside
