"""The loop level: dense layers recovered from the scalar trace run as loop nests, and every
evaluator still computes the scalar program's bits.

The oracle is the scalar program itself (`codegen.evaluate`, row by row, and its batch sum in
row order), which the other tests tie to the engine. Compared with it, bit for bit (sign of zero
and nan included): the loop level's reference interpreter, its C (default flags, and on two
threads), generated Python, and the engine rebuilt at each row.
"""
import math
import platform
import random
import re

import pytest
from hypothesis import Phase, given, settings, strategies as st

import codegen
from codegen import emit_loops, loops, recover
from codegen.build import Compiled, compile_source
from codegen.train import FAST_FLAGS, Trainer
from micrograd.engine import Value
from micrograd.nn import MLP

from codegen_support import STRICT_FLAGS, use_private_cache
from exact import assert_same

pytestmark = pytest.mark.needs_cc


def ordered_sum(program, params, rows):
    """The scalar program's batch sum: 0.0 + row 0 + row 1 + ..., each output on its own."""
    total = [0.0] * len(program.outputs)
    for row in rows:
        total = [t + o for t, o in zip(total, codegen.evaluate(program, list(params) + row))]
    return total


def mlp_sample(n_in, sizes, activation, loss='margin'):
    """A model's per-sample loss and its parameter gradients, as the Trainer builds them."""
    random.seed(len(sizes) * 7 + n_in)
    model = MLP(n_in, sizes, activation=activation) if activation else MLP(n_in, sizes)
    trainer = Trainer(model, LOSSES[loss], n_features=n_in, backend='python')
    return trainer.sample, trainer.n_params, model


LOSSES = {
    'margin': lambda m, x, y: (1 + -y * m(x)).relu(),
    'square': lambda m, x, y: (m(x) - y) ** 2,
}


def random_rows(rng, n_rows, n_features, specials=False):
    values = [0.0, -0.0, math.inf, -math.inf, math.nan, 1e300, -1e-300] if specials else []
    return [[rng.choice(values) if values and rng.random() < 0.2 else rng.uniform(-3, 3)
             for _ in range(n_features)] + [rng.choice([-1.0, 1.0])] for _ in range(n_rows)]


def check_every_evaluator(program, n_params, params, rows, tmp_path, monkeypatch, threads=2):
    """Loop interpreter, C (1 and `threads` threads; scalar statements as code and as tables;
    vector kernels and plain ones), batch and sum, against the scalar program."""
    use_private_cache(tmp_path, monkeypatch)
    lowered = loops.check(loops.lower(program, n_params))
    expected_rows = [codegen.evaluate(program, list(params) + row) for row in rows]
    expected_sum = ordered_sum(program, params, rows)
    assert_same(expected_sum, loops.evaluate_sum(lowered, params, rows), 'loop interpreter sum')
    for got, want in zip(loops.evaluate_batch(lowered, params, rows), expected_rows):
        assert_same(want, got, 'loop interpreter batch')
    # (C options, MAP_TABLE_LIMIT): 0 makes every run of scalar statements a table
    builds = [({'flags': STRICT_FLAGS}, None), ({'threads': threads}, None),
              ({'threads': threads, 'flags': STRICT_FLAGS + ('-fopenmp',)}, 0)]
    if platform.machine() in ('x86_64', 'AMD64'):  # without AVX-512: the plain kernels
        builds.append(({'flags': STRICT_FLAGS + ('-mno-avx512f',)}, None))
    for options, table_limit in builds:
        with monkeypatch.context() as patch:
            if table_limit is not None:
                patch.setattr(emit_loops, 'MAP_TABLE_LIMIT', table_limit)
            compiled = codegen.build(program, 'c', n_params, loop_level=True, **options)
            # and as the Trainer builds it: kernels, tables and code in units of their own
            patch.setattr(emit_loops, 'SPLIT_TABLES', 0)
            threads_ = options.get('threads', 1)
            flags = options.get('flags', STRICT_FLAGS + ('-fopenmp',) * (threads_ > 1))
            units = emit_loops.to_units(lowered, threads_)
            split = Compiled(program, units[-1], 'c', n_params, compile_source(units, flags))
        for c, what in ((compiled, 'C'), (split, f'{len(units)} C units')):
            assert_same(expected_sum, c.sum(params, rows), f'{what} sum {options}')
            for got, want in zip(c.batch(params, rows), expected_rows):
                assert_same(want, got, f'{what} batch {options}')
    return lowered


# ---- recovery --------------------------------------------------------------------------------

def test_an_mlp_is_recovered_as_dense_layers_their_gradients_and_weight_gradient_sums():
    program, n_params, _ = mlp_sample(2, [8, 8, 1], None)
    dense = recover.find_dense(program, n_params)
    shapes = sorted(g.shape for g in dense)
    # forward (8 x 2 inputs, 8 x 8), the adjoints of the hidden units (8 x 8: the transposed
    # product, neurons summed in descending order); the 1 x 8 output layer is below the minimum
    assert shapes == [(8, 2), (8, 8), (8, 8)]
    backward = [g for g in dense if g.init is None]
    assert len(backward) == 1 and backward[0].stride_j < 0  # descending neuron order
    outer = recover.find_outer(program, dense)
    # the weights' gradient sums, and each layer's biases' as the weights of an input of 1.0
    assert sorted(o.shape for o in outer) == [(3, 8), (9, 8)]
    assert all(1.0 in o.vector + o.rows for o in outer)


def test_the_w2_listing_fits_on_one_screen():
    program, n_params, _ = mlp_sample(2, [64, 64, 1], None)
    listing = str(loops.lower(program, n_params))
    assert len(listing.splitlines()) < 150, listing
    assert listing.count('sum j < 64') >= 3  # forward, backward, output layer


def test_parameters_that_are_not_at_affine_positions_stay_scalar_and_exact(
        tmp_path, monkeypatch):
    rng = random.Random(3)
    weights = [[Value(rng.uniform(-1, 1)) for _ in range(4)] for _ in range(5)]
    shuffled = [w for row in weights for w in row]
    rng.shuffle(shuffled)  # the parameter list no longer follows the matrix
    x = [Value(0.0, label=f'x{i}') for i in range(4)]
    outs = [sum((w * xi for w, xi in zip(row, x)), Value(0.0)).tanh() for row in weights]
    program = codegen.optimize(codegen.grad(codegen.trace(sum(outs), shuffled + x)))
    assert not loops.has_structure(loops.lower(program, len(shuffled)))
    params = [w.data for w in shuffled]
    rows = [[rng.uniform(-2, 2) for _ in range(4)] for _ in range(5)]
    compiled = codegen.build(program, 'c', len(shuffled))
    assert_same(ordered_sum(program, params, rows), compiled.sum(params, rows), 'scalar C')


# ---- every evaluator, random layers --------------------------------------------------------

# each example compiles C: no shrinking, which would compile hundreds more
@settings(max_examples=12, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(n_in=st.integers(1, 5), hidden=st.lists(st.integers(2, 9), max_size=2),
       activation=st.sampled_from([None, 'tanh', 'sigmoid', 'linear']),
       loss=st.sampled_from(sorted(LOSSES)), n_rows=st.integers(1, 70),
       specials=st.booleans(), seed=st.integers(0, 2**16))
def test_random_mlps_agree_bit_for_bit(n_in, hidden, activation, loss, n_rows, specials, seed,
                                       tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp('loops')
    with pytest.MonkeyPatch.context() as monkeypatch:
        program, n_params, model = mlp_sample(n_in, hidden + [1], activation, loss)
        rng = random.Random(seed)
        params = [p.data for p in model.parameters()]
        rows = random_rows(rng, n_rows, n_in, specials)
        check_every_evaluator(program, n_params, params, rows, tmp_path, monkeypatch)


def test_the_engine_agrees_with_the_loop_level_row_by_row(tmp_path, monkeypatch):
    """The engine's loss and gradients at each row equal the loop level's batch outputs."""
    use_private_cache(tmp_path, monkeypatch)
    program, n_params, model = mlp_sample(3, [6, 5, 1], 'tanh')
    params = model.parameters()
    rows = random_rows(random.Random(1), 9, 3)
    compiled = codegen.build(program, 'c', n_params, loop_level=True)
    got = compiled.batch([p.data for p in params], rows)
    for row, outputs in zip(rows, got):
        model.zero_grad()
        loss = LOSSES['margin'](model, [Value(v) for v in row[:3]], Value(row[3]))
        loss.backward()
        assert_same([loss.data] + [p.grad for p in params], outputs, f'engine at {row}')


def hand_built_layer(rng, n_out, n_in, column_major):
    """A dense layer written with Values only: weights listed row- or column-major."""
    W = [[Value(rng.uniform(-1, 1), label=f'W{i}_{j}') for j in range(n_in)] for i in range(n_out)]
    b = [Value(rng.uniform(-1, 1), label=f'b{i}') for i in range(n_out)]
    order = [W[i][j] for j in range(n_in) for i in range(n_out)] if column_major else \
        [w for row in W for w in row]
    return W, b, order + b


def layer_with_scalar_tail(rng, column_major):
    """A 7 x 6 dense layer built by hand, its sigmoids summed with scalar code that is no layer:
    (parameters, inputs x0..x5 and z, loss)."""
    W, b, params = hand_built_layer(rng, 7, 6, column_major)
    x = [Value(0.0, label=f'x{j}') for j in range(6)]
    z = Value(0.0, label='z')
    h = [sum((W[i][j] * x[j] for j in range(6)), b[i]) for i in range(7)]
    scalar_tail = (h[0] * h[3] - z / (h[6].exp() + 1.0)).log()  # not a layer: stays scalar
    return params, x + [z], sum((hi.sigmoid() for hi in h), scalar_tail)


@pytest.mark.parametrize('column_major', [False, True])
def test_a_layer_built_by_hand_mixed_with_scalar_code(column_major, tmp_path, monkeypatch):
    rng = random.Random(5)
    params, inputs, loss = layer_with_scalar_tail(rng, column_major)
    program = codegen.optimize(codegen.grad(codegen.trace(loss, params + inputs)))
    lowered = loops.lower(program, len(params))
    assert loops.has_structure(lowered)
    rows = [[rng.uniform(-2, 2) for _ in range(7)] for _ in range(40)] + \
        [[math.nan] + [0.5] * 6, [math.inf, -math.inf] + [-0.0] * 5]
    check_every_evaluator(program, len(params), [p.data for p in params], rows, tmp_path,
                          monkeypatch)


def test_a_family_reading_another_in_reverse_is_not_fused_into_its_loop(tmp_path, monkeypatch):
    """b[m] = a[m] - a[M-1-m], with a = relu(layer): one loop over m computing a[m] and then
    b[m] would read a[M-1-m] before it is computed (for m < M/2). Same-index families share a
    loop; this one must get its own."""
    rng = random.Random(11)
    W, b, params = hand_built_layer(rng, 8, 3, False)
    x = [Value(0.0, label=f'x{j}') for j in range(3)]
    h = [sum((W[i][j] * x[j] for j in range(3)), b[i]) for i in range(8)]
    a = [hi.relu() for hi in h]
    loss = sum(((a[m] - a[7 - m]).tanh() + a[m] for m in range(8)), Value(0.0))
    program = codegen.optimize(codegen.grad(codegen.trace(loss, params + x)))
    lowered = loops.lower(program, len(params))
    reversed_reads = [s for s in lowered.body if isinstance(s, loops.Each) and any(
        isinstance(arg, tuple) and loops.stride(arg) == -1 for arg in s.args)]
    assert reversed_reads, 'the program no longer has the case this test is about'
    rows = [[rng.uniform(-2, 2) for _ in range(3)] for _ in range(40)]
    check_every_evaluator(program, len(params), [p.data for p in params], rows, tmp_path,
                          monkeypatch)


def test_neurons_without_bias_start_from_a_literal(tmp_path, monkeypatch):
    """sum(w*x, 0.0): each chain starts from the literal 0.0, which the loop level reads as a
    row-constant slot (the bits of 0.0 + w0*x0: a -0.0 product becomes 0.0)."""
    rng = random.Random(9)
    W, _, _ = hand_built_layer(rng, 5, 4, False)
    params = [w for row in W for w in row]
    x = [Value(0.0, label=f'x{j}') for j in range(4)]
    loss = sum(sum((W[i][j] * x[j] for j in range(4)), 0.0).tanh() for i in range(5))
    program = codegen.optimize(codegen.grad(codegen.trace(loss, params + x)))
    lowered = loops.lower(program, len(params))
    assert any(isinstance(s, loops.Dense) and s.init is not None for s in lowered.body)
    rows = [[rng.uniform(-2, 2) for _ in range(4)] for _ in range(10)] + [[-0.0] * 4, [0.0] * 4]
    check_every_evaluator(program, len(params), [p.data for p in params], rows, tmp_path,
                          monkeypatch)


@pytest.mark.parametrize('n_out, n_in', [(20, 3), (3, 6)])
def test_a_bias_of_minus_zero_stays_minus_zero(n_out, n_in, tmp_path, monkeypatch):
    """Biases of -0.0 with weights of one sign: in a row of zeros of the other sign every
    product is -0.0, and so is the sum only when the bias starts it as it is (0.0 + -0.0 is
    0.0: a kernel that made its start by adding to zero would flip the sign). 20 outputs go
    to tiles of 16 and 4 outputs, 3 to the one-output tile."""
    rng = random.Random(13)
    W, b, params = hand_built_layer(rng, n_out, n_in, False)
    for w in (w for row in W for w in row):
        w.data = rng.uniform(0.5, 1.0)
    for bias in b:
        bias.data = -0.0
    x = [Value(0.0, label=f'x{j}') for j in range(n_in)]
    h = [sum((W[i][j] * x[j] for j in range(n_in)), b[i]) for i in range(n_out)]
    program = codegen.optimize(codegen.trace(h, params + x))
    assert any(isinstance(s, loops.Dense) for s in loops.lower(program, len(params)).body)
    rows = [[-0.0] * n_in, [0.0, -0.0] * (n_in // 2) + [0.0] * (n_in % 2),
            [rng.uniform(-1, 1) for _ in range(n_in)]]
    expected = codegen.evaluate(program, [p.data for p in params] + rows[0])
    assert all(math.copysign(1.0, y) == -1.0 for y in expected)  # the case this test is about
    check_every_evaluator(program, len(params), [p.data for p in params], rows, tmp_path,
                          monkeypatch)


HOSTILE = ['*/ int evil; /*', 'vd', 'v_tanh', 'w', 'r', 'm', 'mg_x', 'S', 'xt', 'rows', 'g_b0',
           't0', 'sample_chunk', '\n#include <stdio.h>', 'NAN']


def hostile_layer(rng):
    """A 6 x 5 relu layer whose parameters and inputs carry every label of HOSTILE (names of
    the generated code, comment ends, preprocessor lines): (parameters, inputs, loss)."""
    W, b, params = hand_built_layer(rng, 6, 5, False)
    for k, p in enumerate(params):
        p.label = HOSTILE[k % len(HOSTILE)]
    x = [Value(0.0, label=HOSTILE[j]) for j in range(5)]
    loss = sum(sum((W[i][j] * x[j] for j in range(5)), b[i]).relu() for i in range(6))
    return params, x, loss


def test_hostile_labels_reach_no_source(tmp_path, monkeypatch):
    """Labels are user text: none of them may break or enter the generated C or Python."""
    use_private_cache(tmp_path, monkeypatch)
    rng = random.Random(2)
    params, x, loss = hostile_layer(rng)
    traced = codegen.trace(loss, params + x)
    program = codegen.optimize(codegen.grad(traced))
    rows = [[rng.uniform(-2, 2) for _ in range(5)] for _ in range(3)]
    want = [codegen.evaluate(program, [p.data for p in params] + row) for row in rows]
    for options in ({'loop_level': True}, {'loop_level': True, 'threads': 2},
                    {'lanes': 4, 'threads': 2}, {'loop_level': False}):
        compiled = codegen.build(program, 'c', len(params), **options)
        assert 'evil' not in compiled.source and 'stdio' not in compiled.source
        for got, expected in zip(compiled.batch([p.data for p in params], rows), want):
            assert_same(expected, got, f'{options}')
    python = codegen.build(program, 'python')
    assert_same(want[0], python(*([p.data for p in params] + rows[0])), 'python')


# ---- the checker and the printer ---------------------------------------------------------

def test_the_checker_refuses_a_slot_read_before_it_is_written():
    program, n_params, _ = mlp_sample(2, [8, 8, 1], None)
    lowered = loops.lower(program, n_params)
    first = lowered.body[0]
    broken = lowered.__class__(**{**lowered.__dict__, 'body': lowered.body[1:] + (first,)})
    with pytest.raises(ValueError, match='read before it is written'):
        loops.check(broken)


@pytest.mark.parametrize('corner', [(0, 0), (-1, -1)])
def test_the_checker_refuses_a_weight_out_of_range(corner):
    # the checker looks at a Dense group's corners only (its weights are affine in m, j)
    program, n_params, _ = mlp_sample(2, [8, 8, 1], None)
    lowered = loops.lower(program, n_params)
    dense = next(s for s in lowered.body if isinstance(s, loops.Dense))
    M, L = dense.group.shape
    index = dense.group.weight_index(range(M)[corner[0]], range(L)[corner[1]])
    assert index in (min(dense.group.weight_index(m, j) for m in range(M) for j in range(L)),
                     max(dense.group.weight_index(m, j) for m in range(M) for j in range(L)))
    group = dense.group.__class__(**{**dense.group.__dict__,
                                     'base': dense.group.base - index - 1 if corner == (0, 0)
                                     else dense.group.base + n_params - index})
    body = tuple(loops.Dense(group, s.out, s.vector, s.init) if s is dense else s
                 for s in lowered.body)
    broken = lowered.__class__(**{**lowered.__dict__, 'body': body})
    with pytest.raises(ValueError, match='parameter -?[0-9]+ out of range'):
        loops.check(broken)


def test_the_checker_refuses_an_output_summed_twice():
    program, n_params, _ = mlp_sample(2, [8, 8, 1], None)
    lowered = loops.lower(program, n_params)
    outputs = list(lowered.outputs)
    outputs[1] = next(s for s in outputs if s is not None) if outputs[1] is None else outputs[1]
    doubled = lowered.outers + lowered.outers[:1]
    broken = lowered.__class__(**{**lowered.__dict__, 'outers': doubled})
    with pytest.raises(ValueError, match='exactly once'):
        loops.check(broken)


# ---- training --------------------------------------------------------------------------------

def assert_trainers_agree(trainers, rows, lr, steps):
    """Each Trainer takes `steps` SGD steps (momentum 0.9) on `rows`: all give the first's
    losses and parameters, bit for bit."""
    results = []
    for trainer in trainers:
        batch = trainer.rows(rows)
        losses = [trainer.step(batch, lr, momentum=0.9) for _ in range(steps)]
        results.append((losses, list(trainer.params)))
    for losses, params in results[1:]:
        assert_same(results[0][0], losses, 'losses')
        assert_same(results[0][1], params, 'parameters')


@pytest.mark.parametrize('fast', [False, True])
@pytest.mark.parametrize('sizes, n_rows', [([16, 16, 1], 100), ([64, 64, 1], 1000)])  # W1, W2
def test_training_on_the_loop_level_equals_the_scalar_path_bit_for_bit(sizes, n_rows, fast,
                                                                       tmp_path, monkeypatch):
    """10 SGD steps with momentum and L2: every loss and every parameter equal."""
    use_private_cache(tmp_path, monkeypatch)
    rng = random.Random(0)
    rows = random_rows(rng, n_rows, 2)
    trainers = []
    for loop_level, fast_build in ((False, False), (None, fast)):
        random.seed(1337)
        model = MLP(2, sizes)
        trainers.append(Trainer(model, LOSSES['margin'], n_features=2, fast=fast_build,
                                batch_loss=lambda ps: 1e-4 * sum(p * p for p in ps),
                                loop_level=loop_level))
    assert_trainers_agree(trainers, rows, 0.5, 10)


@pytest.mark.parametrize('sizes', [[24, 33, 1], [35, 19, 1]])
def test_two_threads_give_the_bits_of_one(sizes, tmp_path, monkeypatch):
    """Enough rows for both threads (4 chunks each at least): the rows split between threads,
    then the sums split by output, each adding its rows in order, the outer groups' over all
    rows at once (tiles of 16, 4 and 1 rows of sums, and the columns past the last 8; one
    chunk at a time, 1 row of 32 sums where a group has fewer than 4 rows: 1 x 33, 2 x 35); by
    blocks of 3 chunks (11 chunks: 3, 3, 3, 2); and on one thread, which the threaded sum
    takes when it times faster. With ordinary numbers, as most of the sums are nan once a row
    has one, whatever their order; then with specials; in vectors and in the plain loops."""
    use_private_cache(tmp_path, monkeypatch)
    program, n_params, model = mlp_sample(2, sizes, None)
    params = [p.data for p in model.parameters()]
    one = codegen.build(program, 'c', n_params, loop_level=True)
    twos = [codegen.build(program, 'c', n_params, loop_level=True, threads=2)]
    monkeypatch.setattr(emit_loops, 'BLOCK_CHUNKS', 3)
    twos.append(codegen.build(program, 'c', n_params, loop_level=True, threads=2))
    if platform.machine() in ('x86_64', 'AMD64'):
        twos.append(codegen.build(program, 'c', n_params, loop_level=True, threads=2,
                                  flags=FAST_FLAGS + ('-mno-avx512f',)))
    for specials in (False, True):
        rows = random_rows(random.Random(4), 333, 2, specials=specials)
        expected = ordered_sum(program, params, rows)
        assert specials or not any(map(math.isnan, expected))  # every sum's order counts
        for two in twos:
            assert 'omp parallel' in two.source and 'mg_outer_all(block_rows' in two.source
            assert_same(expected, one.sum(params, rows), 'one thread')
            # calls 1, 2, 3: threads, one thread (each timed), the faster (see to_c's MG_RETRY)
            for call in range(4):
                assert_same(expected, two.sum(params, rows), f'call {call} of {two.path}')


@pytest.mark.parametrize('exponent, x', [(2.0, -0.8843031552730771), (-1.0, 1.7057948661909368)])
def test_powers_the_compiler_could_fold_stay_libms_pow(exponent, x, tmp_path, monkeypatch):
    """gcc turns pow(x, 2.0) into x*x and pow(x, -1.0) into 1.0/x; at these x libm's pow (the
    engine's, micrograd's) differs from those in the last bit, so the C must still call pow."""
    use_private_cache(tmp_path, monkeypatch)
    assert math.pow(x, exponent) != (x * x if exponent == 2.0 else 1.0 / x)  # the witness
    a, b = Value(x, label='a'), Value(exponent, label='b')
    outs = [a ** exponent, a ** b]  # a constant exponent (pow) and a Value one (powv)
    program = codegen.trace(outs, [a, b])
    for options in ({'loop_level': False}, {'lanes': 4}, {'loop_level': True}):
        compiled = codegen.build(program, 'c', **options)
        assert_same([o.data for o in outs], compiled(x, exponent), f'{options}')
        assert_same([o.data for o in outs], compiled.batch([], [[x, exponent]] * 5)[4],
                    f'{options} batch')


@pytest.mark.parametrize('kind', ['mixed', 'shuffled'])
def test_neurons_whose_starts_are_not_one_bias_vector(kind, tmp_path, monkeypatch):
    """Chains over one vector whose starting values are parameters for some neurons and a data
    input for others, or parameters out of order: read from slots, still exact."""
    rng = random.Random(11)
    W, b, params = hand_built_layer(rng, 6, 5, False)
    x = [Value(0.0, label=f'x{j}') for j in range(5)]
    c = Value(0.0, label='c')
    if kind == 'mixed':
        starts = b[:3] + [c] * 3
    else:
        starts = [b[k] for k in (2, 0, 5, 1, 4, 3)]
    loss = sum(sum((W[i][j] * x[j] for j in range(5)), starts[i]).tanh() for i in range(6))
    program = codegen.optimize(codegen.grad(codegen.trace(loss, params + x + [c])))
    lowered = loops.lower(program, len(params))
    assert any(isinstance(s, loops.Dense) and s.init is not None for s in lowered.body)
    rows = [[rng.uniform(-2, 2) for _ in range(6)] for _ in range(9)]
    check_every_evaluator(program, len(params), [p.data for p in params], rows, tmp_path,
                          monkeypatch)


def test_the_units_keep_kernels_and_big_tables_apart_from_the_code(monkeypatch):
    """to_units (the Trainer's build) compiles apart from the code the kernels that gcc does
    not specialise for each call (in a small program, mg_dense_once, mg_outer, mg_sum_rows:
    declared in the code, hidden in the library) and, past SPLIT_TABLES characters, the
    tables (extern). check_every_evaluator compares their numbers with the one file's."""
    program, n_params, _ = mlp_sample(3, [9, 7, 1], 'tanh')
    lowered = loops.lower(program, n_params)
    kernels, code = emit_loops.to_units(lowered)
    for name in ('mg_dense_once', 'mg_outer', 'mg_sum_rows'):
        assert re.search(rf'MG_SHARED (MG_ONCE )?void {name}\(', kernels)  # defined
        assert f'MG_SHARED void {name}(' in code  # declared
        assert not re.search(rf'static (MG_ONCE )?void {name}\(', kernels + code)  # not private
    assert 'mg_dense_v16' in kernels and 'mg_dense_v16' not in code
    assert emit_loops.TABLE.search(code) and not emit_loops.TABLE.search(kernels)  # tables: small
    monkeypatch.setattr(emit_loops, 'SPLIT_TABLES', 0)
    kernels, tables, code = emit_loops.to_units(lowered)
    assert 'extern const int' in code and 'static const int' not in code
    assert 'mg_' not in tables and tables.count('const int') > 3
    fast_kernels, code = emit_loops.to_units(lowered, threads=2)[::2]
    for name in ('mg_dense', 'mg_outer'):  # specialised for each call: with the code
        assert f'void {name}(' in code and f'void {name}(' not in fast_kernels
    assert 'MG_SHARED void mg_sum_rows(' in code


def test_the_listing_at_the_top_of_the_c_stays_short(monkeypatch):
    """A big program's listing would be megabytes of comment (LeNet-5's convolution windows
    printed 33,000-character lines): the C keeps its first lines, each cut to a width."""
    program, n_params, _ = mlp_sample(3, [6, 5, 1], 'tanh')
    monkeypatch.setattr(emit_loops, 'HEADER_LINES', 5)
    monkeypatch.setattr(emit_loops, 'HEADER_WIDTH', 40)
    comment = emit_loops.to_c(loops.lower(program, n_params)).split('*/')[0].rstrip().splitlines()
    assert len(comment) == 1 + 5 + 1 and comment[-1].endswith('lines more)')
    assert all(len(line) <= 3 + 40 for line in comment[1:])  # ' * ' + the listing's line


# ---- sums and the batch term -----------------------------------------------------------------

def l2_term(n_params, rng, specials=False):
    """The scalar program of an L2 penalty and its gradient over n_params parameters, as the
    Trainer builds it, and values for the parameters (a fifth of them special)."""
    values = [0.0, -0.0, math.inf, -math.inf, math.nan, 1e300, -1e300]
    params = [Value(rng.choice(values) if specials and rng.random() < 0.2 else
                    rng.uniform(-3, 3), label=f'p{k}') for k in range(n_params)]
    model = type('Parameters', (), {'parameters': lambda self: params})()
    trainer = Trainer(model, lambda m, x, y: y * 1.0, n_features=0, backend='python',
                      batch_loss=lambda ps: 1e-4 * sum(p * p for p in ps))
    return trainer.extra, [p.data for p in params]


def test_an_l2_term_is_families_over_the_parameters_and_one_sum():
    """A batch term reads parameters alone: its one row is a chunk, the squares and the
    gradients are elementwise loops over the parameters, their total one Sum in order."""
    program, params = l2_term(40, random.Random(0))
    lowered = loops.check(loops.lower(program, len(params)))
    kinds = [type(s).__name__ for s in lowered.body]
    assert kinds.count('Sum') == 1 and kinds.count('Map') == 1, kinds
    assert kinds.count('Each') >= 3 and loops.chunk_rows(lowered) == 1
    summed = next(s for s in lowered.body if isinstance(s, loops.Sum))
    assert len(summed.terms) == 40 and summed.init == 0.0


@settings(max_examples=6, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(n_params=st.integers(8, 60), specials=st.booleans(), seed=st.integers(0, 2**16))
def test_batch_terms_agree_bit_for_bit(n_params, specials, seed, tmp_path_factory):
    program, params = l2_term(n_params, random.Random(seed), specials)
    with pytest.MonkeyPatch.context() as monkeypatch:
        check_every_evaluator(program, n_params, params, [[]], tmp_path_factory.mktemp('c'),
                              monkeypatch)


def test_a_long_sum_in_each_row_keeps_its_order(tmp_path, monkeypatch):
    """A loss that adds 24 squares: one Sum statement, its terms added left to right in
    every row (another order rounds differently in most rows)."""
    xs = [Value(0.0, label=f'x{i}') for i in range(24)]
    program = codegen.trace(sum((x * x for x in xs), Value(0.0)), xs, 'squares')
    lowered = loops.lower(program, 0)
    assert [len(s.terms) for s in lowered.body if isinstance(s, loops.Sum)] == [24]
    rng = random.Random(2)  # mostly plain rows: a nan or inf in a row hides the order
    rows = random_rows(rng, 66, 23) + random_rows(rng, 4, 23, specials=True)
    check_every_evaluator(program, 0, [], rows, tmp_path, monkeypatch)


def test_the_trainers_batch_term_on_the_loop_level_gives_the_scalar_bits(tmp_path, monkeypatch):
    """W1 with its L2 term, 5 steps: the term as loops (default) and as scalar code
    (loop_level=False) give the same losses and parameters."""
    use_private_cache(tmp_path, monkeypatch)
    trainers = []
    for loop_level in (False, None):
        random.seed(1337)
        trainers.append(Trainer(MLP(2, [16, 16, 1]), LOSSES['margin'], n_features=2,
                                batch_loss=lambda ps: 1e-4 * sum(p * p for p in ps),
                                loop_level=loop_level))
    assert 'extra_term_part0' in trainers[1].source[-1]
    assert 'extra_term_part0' not in trainers[0].source[-1]
    assert_trainers_agree(trainers, random_rows(random.Random(3), 100, 2), 0.5, 5)
