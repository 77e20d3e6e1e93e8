"""Differentiate with the layers kept whole: the loop level of a gradient, from the forward trace.

`grad` then `loops.lower` writes every product of every layer as scalar instructions (W2:
25,863 of them) only for `recover` to find the layers again. Here the dense layers are found
in the forward program (8,708 instructions for W2), and the reverse pass treats each as one
unit, applying to it what `grad` would apply to each of its scalar instructions:

    forward     y[m] = init[m] + sum_j W[m,j] * x[j]                         (a Dense)
    backward    dW[m,j] = 0.0 + x[j] * g[m]                                   (an Outer)
                dinit[m] = 0.0 + g[m]          when init[m] is a parameter     (scalars,
                           or the Outer's x[L] = 1.0 when each sits after its neuron's weights)
                dx[j] = W[m0,j]*g[m0] + W[m1,j]*g[m1] + ...                   (a Dense)

where g[m] is the adjoint of y[m] and m0, m1, ... is the order in which the engine's backward
visits the neurons (read from its topological order, e.g. descending). Everything else goes
through the op table's rules exactly as in `grad`. The result computes the same operations
in the same order as `loops.lower(optimize(grad(program)))`, so the same bits; tests compare
the two on every evaluator.

Convolutions (dense groups over the same weights, one per pixel) are taken whole the same
way; see `_flush_convolution`. `lift` returns None, and the caller takes the scalar path,
whenever a layer is used in a way this does not cover: a weight or bias read anywhere else, or
an input of a layer read by anything but that layer.
"""
import collections

from codegen import loops, recover
from codegen.grad import _atom, _first_term, _name_adjoint, _topo_order, backward_step
from codegen.ir import Program
from codegen.lower import Builder, Sym


def lift(program, n_params, traced=False):
    """The loop level of d program.outputs[0] / d (first n_params inputs), with the loss as
    output 0 and the gradients after it (the layout of grad's), or None (see above).

    traced: the program is `lower.trace` of its one output (as the Trainer's is), so its
    instructions are already in the order the engine's backward takes, and that order is not
    worked out again (LeNet-5: 850k instructions, 0.6 s)."""
    params = program.inputs[:n_params]
    param_set = set(params)
    flow = recover.Dataflow(program)
    groups = [g for g in recover.find_dense(program, n_params, flow) if _covered(g, param_set)]
    if not groups or len(program.outputs) != 1 or not isinstance(program.outputs[0], str):
        return None
    shared = {}  # dense groups over the same weights: one convolution, a group per pixel
    for g in groups:
        shared.setdefault((g.shape, g.base, g.stride_m, g.stride_j, g.init), []).append(g)
    layers = [family[0] for family in shared.values() if len(family) == 1]
    convolutions = [tuple(family) for family in shared.values() if len(family) > 1]
    walk = _Walk(program, flow, params, param_set, layers, convolutions)
    if not walk.run(traced):
        return None
    return walk.loops()


def _covered(group, param_set):
    """The cases the reverse pass below handles: no parameter in the vector, and a start of
    each chain that is nothing, a literal or a parameter."""
    if any(isinstance(v, str) and v in param_set for v in group.vector):
        return False
    return group.init is None or all(not isinstance(a, str) or a in param_set
                                     for a in group.init)


class _Walk:
    """grad's reverse pass over the forward program, with each layer taken as one unit."""

    def __init__(self, program, flow, params, param_set, layers, convolutions=()):
        self.program, self.params, self.param_set = program, params, param_set
        self.layers = layers
        self.convolutions = convolutions
        self.pixels = [g for family in convolutions for g in family]
        self.family = {g: family for family in convolutions for g in family}
        self.defined, self.readers = flow.defined, flow.readers
        self.builder = Builder(prefix='t', taken=program.inputs, reserved=self.defined)
        self.adjoint = {}
        self.transposed = []    # (where in the builder's instructions, Dense): dx per layer
        self.outers = []
        self.owner = {}         # chain register -> its layer (or pixel of a convolution)
        self.finals = set()     # the chains' last registers: y[m] of every layer and pixel
        self.chain_of = {}      # y[m] -> (its layer or pixel, m)
        for layer in list(layers) + self.pixels:
            self.owner.update(dict.fromkeys(layer.internal, layer))
            self.owner.update(dict.fromkeys(layer.outs, layer))
            self.finals.update(layer.outs)
            self.chain_of.update((y, (layer, m)) for m, y in enumerate(layer.outs))
        self.corrs = []         # the convolutions' weight and bias gradients, and dx
        self.done = set()       # convolutions whose backward has run
        self.vector_of = {}     # a layer's vector register -> that layer
        for layer in layers:
            for v in layer.vector:
                if isinstance(v, str):
                    self.vector_of[v] = layer
        self.pending = {}       # layer -> {y[m]: its adjoint} while its chains are visited
        self.param_index = {p: k for k, p in enumerate(params)}
        self.flushed = 0
        # The chains' products and partial sums have no step of their own in the walk
        # (nothing waits on them; their layer's is taken whole), nor any place of their own
        # in the loop program: the instructions left, with the chains' last, and their
        # places in the program, are picked once (LeNet-5: 150k of 850k instructions)
        self.outside = [(k, instr) for k, instr in enumerate(program.instrs)
                        if instr.out not in self.owner or instr.out in self.finals]
        self.needs = self._depends_on_params()

    def run(self, traced=False):
        """The reverse pass; False when the program leaves what `lift` covers. traced: see
        `lift`."""
        for layer in self.layers:
            needed = [v for v in layer.vector if isinstance(v, str) and v in self.needs]
            if len(set(needed)) != len(needed):
                return False  # one input twice in a neuron: its adjoint is not one product's row
        if not all(self._only_its_products_read(family) for family in
                   [(layer,) for layer in self.layers] + list(self.convolutions)):
            return False
        target = self.program.outputs[0]
        if target not in self.needs:
            return False
        self.adjoint[target] = 1.0
        # trace walks the engine's topo_order of its output: the order _topo_order finds
        self.order = list(self.program.instrs) if traced else _topo_order(self.defined, target)
        # (for a trace, the program's order: readers are listed in it, so no sorting by it)
        self.position = None if traced else {instr.out: k for k, instr in enumerate(self.order)}
        self.upstream = {}  # convolution -> what its inputs are computed from
        for family in self.convolutions:
            if any(isinstance(v, str) and v in self.needs for g in family for v in g.vector):
                upstream = self._upstream(family)
                if upstream is None:
                    return False
                self.upstream[family] = upstream
        self.deferred = {family: [] for family in self.upstream}
        # the instructions outside the chains, and the chains' last (see __init__)
        owner, finals, needs, visit = self.owner, self.finals, self.needs, self._visit
        walk = (instr for _, instr in reversed(self.outside)) if traced else \
            (instr for instr in reversed(self.order)
             if instr.out not in owner or instr.out in finals)
        for instr in walk:
            if instr.out in needs and not visit(instr):
                return False
        for layer in [g for g in self.pending if g not in self.family]:
            if not self._flush(layer):
                return False
        for family in self.convolutions:
            if family not in self.done and not self._flush_convolution(family):
                return False
        return self.flushed == len(self.layers) + len(self.convolutions)

    def _visit(self, instr):
        """grad's step for one instruction, or its part in a layer's or convolution's."""
        for family, upstream in self.upstream.items():
            # a convolution's input is reached before all of its pixels may be (the last
            # pixels' windows are computed last): what it is computed from waits until the
            # convolution's backward has run, then goes in the walk's order
            if family not in self.done and instr.out in upstream:
                self.deferred[family].append(instr)
                return True
        # a layer's inputs are defined before all of its products: reaching one, every
        # chain of that layer has been visited, so its backward can run whole
        if instr.out in self.vector_of and self.vector_of[instr.out] in self.pending:
            if not self._flush(self.vector_of[instr.out]):
                return False
        layer = self.owner.get(instr.out)  # the chains' inner registers are not visited
        if layer is None:
            self._scalar(instr)
            return True
        self.pending.setdefault(layer, {})[instr.out] = self.adjoint.get(instr.out)
        family = self.family.get(layer)
        if family in self.upstream and all(
                len(self.pending.get(g, ())) == len(g.outs) for g in family):
            if not self._flush_convolution(family):
                return False
            return all(self._visit(later) for later in self.deferred.pop(family))
        return True

    def _depends_on_params(self):
        """The registers whose value depends on a parameter (only they need adjoints), as
        grad's _depends_on finds them, but asked about outside the chains only: a chain's
        last register does (each product has a weight), and the instructions outside the
        chains are looked at in order (the products and sums inside are never asked about)."""
        needs = set(self.param_set) | self.finals
        for _, instr in self.outside:
            if not needs.isdisjoint(instr.args):
                needs.add(instr.out)
        return needs

    def _upstream(self, family):
        """The instructions a convolution's inputs depend on (that need adjoints), if nothing
        else reads what they compute: then running their backward after the convolution's
        changes no order of any sum. Else None.

        A chain met on the way (an earlier layer's or convolution's y[m]) is crossed in one
        step, to its inputs: its products and partial sums are read by the chain alone and
        have no step of their own in the walk (LeNet-5's first convolution has 235k). So that
        nothing else reads what they compute is checked by counting: the reads of each
        register by the instructions found, the chains crossed and the family's products
        must be all of its reads."""
        M = family[0].shape[0]
        stack = [v for g in family for v in g.vector if isinstance(v, str) and v in self.needs]
        upstream, reads = set(), collections.Counter()
        for g in family:  # each of its M chains reads each input once
            for v in g.vector:
                reads[v] += M
        while stack:
            r = stack.pop()
            if r in upstream or r not in self.defined or r not in self.needs:
                continue
            upstream.add(r)
            if r in self.chain_of:  # the inputs its chain reads: x[j] (each once), init[m]
                layer, m = self.chain_of[r]
                args = layer.vector + (() if layer.init is None else (layer.init[m],))
            else:
                args = self.defined[r].args
            stack.extend(args)  # literals too: no register defines them
            reads.update(args)
        if any(reads[r] != len(self.readers.get(r, ())) for r in upstream):
            return None  # read by something else (or an output)
        return upstream

    def _only_its_products_read(self, family):
        """Each weight and bias of a layer (a family of one) or a convolution is read once per
        pixel, by that pixel's chain, and each input that needs an adjoint only by the family's
        products (so their transposed product is its whole adjoint)."""
        # Counted, not looked at (LeNet-5's second convolution's weights have 240k reads):
        # each pixel's chains read each weight once (a group's weights are distinct), each
        # bias once (its chain's first add), and each input once per neuron (a product), so
        # any read beyond those is someone else's.
        first = family[0]
        M, L = first.shape
        params = [self.params[first.weight_index(m, j)] for m in range(M) for j in range(L)]
        params += [a for a in first.init or () if isinstance(a, str)]
        if any(len(self.readers.get(p, ())) != len(family) for p in params):
            return False
        needed = collections.Counter(v for g in family for v in g.vector
                                     if isinstance(v, str) and v in self.needs)
        if needed and L == 1 and first.init is None:
            return False  # each chain one product: the neurons' own outputs read the inputs
        return all(len(self.readers[v]) == M * n for v, n in needed.items())

    def _scalar(self, instr):
        """grad's own step for one instruction (the builder holds only the backward)."""
        backward_step(self.builder, instr, self.adjoint, self.needs, self.param_set, 0)

    def _flush(self, layer):
        """The layer's backward, once every chain's adjoint is known."""
        seen = self.pending.pop(layer)
        g = [seen.get(y) for y in layer.outs]
        if any(not isinstance(a, Sym) for a in g):
            return False  # a neuron no gradient reaches: left to the scalar path
        g = [a.name for a in g]
        self.flushed += 1
        M, L = layer.shape
        with_bias = self._bias_in_line(layer)
        if not with_bias:
            for m, a in enumerate(layer.init or ()):  # a bias: 0.0 + g, as for any parameter
                if isinstance(a, str):
                    total = _first_term(self.builder, Sym(g[m], self.builder), True)
                    self.adjoint[a] = _name_adjoint(self.builder, total, a, 0)
        # the weights' gradients, and the biases' as the weights of an input of 1.0
        columns = L + with_bias
        names = tuple(self.builder.fresh('', fallback=f'g_{self.params[layer.weight_index(m, j)]}')
                      for m in range(M) for j in range(columns))
        for (m, j), name in zip(((m, j) for m in range(M) for j in range(columns)), names):
            self.adjoint[self.params[layer.weight_index(m, j)]] = Sym(name, self.builder)
        self.outers.append((layer, tuple(g), names, with_bias))
        needed = [j for j, v in enumerate(layer.vector) if isinstance(v, str) and v in self.needs]
        if not needed:
            return True
        if len(needed) != L:
            return False
        orders = self._visit_orders(layer)
        outs = tuple(self.builder.fresh('', fallback=f'g_{v}') for v in layer.vector)
        visits = orders[0]
        if len(set(orders)) == 1 and loops.stride(visits) is not None:
            base = layer.weight_index(visits[0], 0)
            step = visits[1] - visits[0] if M > 1 else 0
            dx = recover.Dense(outs, tuple(g[m] for m in visits), None, base, layer.stride_j,
                               step * layer.stride_m, ())
        else:  # the neurons in an order no loop over m follows (a loss reading its logits
            # in its own order): each input's terms listed
            dx = recover.Gather(outs, tuple(tuple((layer.weight_index(m, j), g[m])
                                                  for m in orders[j]) for j in range(L)))
        self.transposed.append((len(self.builder.instrs), dx))
        for v, out in zip(layer.vector, outs):
            self.adjoint[v] = Sym(out, self.builder)
        return True

    def _bias_in_line(self, layer):
        """Whether every neuron's bias is a parameter right where its weights would go on
        (micrograd's Neuron: w[0..L-1], then b): then it is the weight of one more input, of
        1.0, and its gradient, 0.0 + g[m] = 0.0 + 1.0 * g[m], one more sum of the layer's
        Outer (W2: 128 of its 130 plain batch sums move there, and each row's 0.0 + g is no
        longer stored)."""
        M, L = layer.shape
        return layer.init is not None and all(
            isinstance(a, str) and self.param_index.get(a) == layer.weight_index(m, L)
            for m, a in enumerate(layer.init))

    def _flush_convolution(self, family):
        """A convolution's gradients, once every pixel's chains are visited: per row, each
        weight's is 0.0 + the sum over pixels of x * g, and each bias's 0.0 + the sum of g,
        the pixels in the order the engine's backward visits them (the same for every weight,
        else None)."""
        first = family[0]
        M, L = first.shape
        g = {}
        for pixel in family:
            seen = self.pending.pop(pixel, {})
            adjoints = [seen.get(y) for y in pixel.outs]
            if any(not isinstance(a, Sym) for a in adjoints):
                return False
            g[pixel] = tuple(a.name for a in adjoints)
        weights = [self.params[first.weight_index(m, j)] for m in range(M) for j in range(L)]
        orders = {self._pixel_order(w) for w in weights}
        if len(orders) != 1:
            return False
        order = orders.pop()
        outs = tuple(self.builder.fresh('', fallback=f'g_{w}') for w in weights)
        self.corrs.append(recover.Corr(outs, tuple(p.vector for p in order),
                                       tuple(g[p] for p in order), M, L))
        for w, out in zip(weights, outs):
            self.adjoint[w] = Sym(out, self.builder)
        biases = [a for a in first.init or () if isinstance(a, str)]
        if biases:
            if len(biases) != M or any(self._pixel_order(b) != order for b in biases):
                return False
            outs = tuple(self.builder.fresh('', fallback=f'g_{b}') for b in biases)
            self.corrs.append(recover.Corr(outs, None, tuple(g[p] for p in order), M, 1))
            for b, out in zip(biases, outs):
                self.adjoint[b] = Sym(out, self.builder)
        self._inputs_adjoint(family, g)
        self.done.add(family)
        self.flushed += 1
        return True

    def _inputs_adjoint(self, family, g):
        """Each input's adjoint: its terms W[m, j] * g[p][m] in the order the engine's backward
        visits the products (the first taken as it is), as one Gather over all inputs."""
        wanted = {v for pixel in family for v in pixel.vector
                  if isinstance(v, str) and v in self.needs}
        if not wanted:
            return
        first = family[0]
        M, L = first.shape
        row = {first.weight_index(m, j): m for m in range(M) for j in range(L)}
        # An input's readers are the family's products (counted), W[m, j] * x: each is the
        # term (k, g[its pixel][m]) of the input's adjoint
        inputs, terms = self._in_topological_order(wanted), []
        for v in inputs:
            terms.append([])
            for r in self._readers_in_visit_order(v):
                k = self.param_index.get(r.args[0])
                k = self.param_index[r.args[1]] if k is None else k
                terms[-1].append((k, g[self.owner[r.out]][row[k]]))
        outs = tuple(self.builder.fresh('', fallback=f'g_{v}') for v in inputs)
        self.corrs.append(recover.Gather(outs, tuple(tuple(t) for t in terms)))
        for v, out in zip(inputs, outs):
            self.adjoint[v] = Sym(out, self.builder)

    def _visit_orders(self, layer):
        """For each input j, the neurons in the order the engine's backward adds them into
        its adjoint: descending topological position of their products."""
        M, L = layer.shape
        orders = []
        for j, v in enumerate(layer.vector):  # v's readers: the M products of column j
            neuron = {self.readers[self.params[layer.weight_index(m, j)]][0].out: m
                      for m in range(M)}
            orders.append(tuple(neuron[r.out] for r in self._readers_in_visit_order(v)))
        return orders

    def _readers_in_visit_order(self, register):
        """The instructions reading `register`, in the order the engine's backward reaches
        them: descending topological position (no two have the same). Those of a trace are
        listed in its order, which is the engine's: reversed, they are in it."""
        readers = self.readers[register]
        if self.position is None:
            return readers[::-1]
        return sorted(readers, key=lambda r: self.position[r.out], reverse=True)

    def _in_topological_order(self, registers):
        """`registers`, registers of the program, in ascending topological position."""
        if self.position is not None:
            return sorted(registers, key=self.position.__getitem__)
        return [instr.out for instr in self.program.instrs if instr.out in registers]

    def _pixel_order(self, parameter):
        """The pixels whose chains read `parameter`, in the order the backward visits them."""
        return tuple([self.owner[r.out] for r in self._readers_in_visit_order(parameter)])

    def loops(self):
        """The Loops program: the forward scalar code and layers, then the backward."""
        scalar_backward = self.builder.instrs
        backward_dense = [dense for _, dense in self.transposed]
        # sort keys: the program's order, then the walk's (a layer's dx before the
        # instruction that followed it); none for the chains' inner registers, which no
        # schedule places (their groups replace them)
        forward = [instr for _, instr in self.outside if instr.out not in self.owner]
        position = {instr.out: k for k, instr in self.outside}
        start = len(self.program.instrs)
        for k, instr in enumerate(scalar_backward):
            position[instr.out] = start + k
        for k, dense in self.transposed:  # just before the instruction emitted after it
            for name in dense.outs:
                position[name] = start + k - 0.5
        for k, corr in enumerate(self.corrs):  # last: they read every pixel's adjoint
            for name in corr.outs:
                position[name] = start + len(scalar_backward) + k
        outputs = (self.program.outputs[0],) + tuple(
            _atom(self.adjoint.get(p, 0.0)) for p in self.params)
        loss = (self.program.output_names or ('out0',))[0]
        names = (loss,) + tuple(f'd{loss}/d{p}' for p in self.params)
        whole = Program(self.program.name, self.program.inputs,
                        tuple(forward + scalar_backward), outputs, names)
        outers = [self._outer(*outer) for outer in self.outers]
        convs = [recover.Conv(family) for family in self.convolutions]
        dense = self.layers + convs + backward_dense
        summed = set().union(*(o.registers for o in outers)) if outers else set()
        # a convolution's outputs, all pixels together, are one family: its activation is one
        # loop over pixels and channels, and so is each step of the pooling after it
        seeds = self.layers + backward_dense + convs
        seeds += [g for g in self.corrs if isinstance(g, recover.Gather)]  # a conv's dx
        groups = dense + self.corrs + recover.find_elementwise(whole, seeds, summed)
        order = loops.schedule(whole.instrs, groups, position)
        if order is None:
            order = loops.schedule(whole.instrs, dense + self.corrs, position)
        if order is None:
            return None
        return loops.allocate(whole, len(self.params), order, outers)

    def _outer(self, layer, g, registers, with_bias):
        """dW[m, j] = 0.0 + x[j] * g[m]: an Outer whose vector lanes run over the longer side,
        over the adjoints g on a tie (just computed, they are still in the L1 cache: W2's
        64 x 64 weight gradient took 0.13 ms longer per step with x in the lanes). With_bias:
        x ends with 1.0, whose weights are the biases (see _bias_in_line)."""
        M, L = layer.shape
        base = 1 + layer.base  # output 0 is the loss; output 1 + k is d/d param k
        x = layer.vector + (1.0,) * with_bias
        if L > M:
            return recover.Outer(x, g, base, layer.stride_m, layer.stride_j,
                                 frozenset(registers), True)
        return recover.Outer(g, x, base, layer.stride_j, layer.stride_m,
                             frozenset(registers), True)
