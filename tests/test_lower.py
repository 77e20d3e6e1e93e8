"""codegen.trace: a recorded Value graph becomes a Program, one instruction per interior node."""
import math

import pytest

import codegen
from micrograd import Value


def test_inputs_keep_their_order_and_labels_name_the_registers():
    a, b = Value(1.0, label='alpha'), Value(2.0, label='beta')
    out = a * b
    out.label = 'product'
    program = codegen.trace(out, [b, a])
    assert program.inputs == ('beta', 'alpha')
    assert program.instrs[0].out == 'product'
    assert program.output_names == ('product',)


def test_unlabelled_inputs_and_nodes_get_numbered_names():
    a, b = Value(1.0), Value(2.0)
    program = codegen.trace((a + b).exp(), [a, b])
    assert program.inputs == ('x0', 'x1')
    assert [i.out for i in program.instrs] == ['v0', 'v1']
    assert program.output_names == ('out0',)


def test_leaves_that_are_not_inputs_become_literals_with_their_current_value():
    x, w = Value(1.0, label='x'), Value(-0.0, label='w')
    program = codegen.trace(x * w + float('inf'), [x])
    assert program.inputs == ('x',)
    assert program.instrs[0].args == ('x', -0.0)
    assert math.copysign(1.0, program.instrs[0].args[1]) == -1.0
    assert program.instrs[1].args == ('v0', float('inf'))


def test_every_interior_node_is_one_instruction_and_shared_nodes_are_lowered_once():
    x = Value(0.5, label='x')
    shared = x.tanh()
    out = shared * shared + shared
    program = codegen.trace(out, [x])
    assert [str(i) for i in program.instrs] == ['v0 = tanh x', 'v1 = mul v0 v0', 'v2 = add v1 v0']


def test_lowering_mirrors_the_graph_without_folding_anything():
    # Folding is optimize()'s job; the listing shows what the user built (and viz draws).
    x = Value(0.5, label='x')
    out = x * 1.0 + Value(2.0) * Value(3.0) - x * 0.0
    program = codegen.trace(out, [x])
    assert [i.op.name for i in program.instrs] == ['mul', 'mul', 'add', 'mul', 'sub']


def test_several_outputs_including_an_input_and_a_constant():
    x = Value(0.5, label='x')
    y = x.exp()
    program = codegen.trace([y, x, Value(4.0)], [x])
    assert program.outputs == ('v0', 'x', 4.0)
    assert codegen.evaluate(program, [0.0]) == (1.0, 0.0, 4.0)


def test_an_input_the_outputs_do_not_use_is_still_an_input():
    x, unused = Value(0.5, label='x'), Value(9.0, label='unused')
    program = codegen.trace(x.tanh(), [x, unused])
    assert program.inputs == ('x', 'unused')
    assert codegen.evaluate(program, [0.0, 1.0]) == (0.0,)


# ---- labels are user text ----------------------------------------------------------------------

@pytest.mark.parametrize('label, name', [
    ('my weight', 'my_weight'),
    ('w[0]', 'w_0_'),
    ('x' * 40, 'x' * 32),
])
def test_labels_are_sanitised_into_identifiers(label, name):
    x = Value(1.0, label=label)
    assert codegen.trace(x.exp(), [x]).inputs == (name,)


@pytest.mark.parametrize('label', [
    '', '0x', '_x', 'λ', 'def', 'return', 'in', 'int', 'double', 'NAN', 'INFINITY', 'exp', 'tanh',
    'pow', 'math', 'nan', 'inf', 'mg_p', 'mg_x', 'mg_out', 'v0', 'v12', 'g_x',
])
def test_labels_that_are_not_safe_in_python_and_c_fall_back_to_numbered_names(label):
    x = Value(1.0, label=label)
    y = x.exp()
    y.label = label
    program = codegen.trace(y, [x])
    assert program.inputs == ('x0',)
    assert program.instrs[0].out == 'v0'
    assert codegen.check(program)  # the Trainer lifts a trace without checking it again


def test_a_label_used_twice_names_only_the_first_register():
    a, b = Value(1.0, label='w'), Value(2.0, label='w')
    c = a + b
    c.label = 'w'
    program = codegen.trace(c, [a, b])
    names = list(program.inputs) + [program.instrs[0].out]
    assert names[0] == 'w' and len(set(names)) == 3


# ---- what cannot be lowered ----------------------------------------------------------------------

def test_a_leaf_listed_twice_is_refused():
    x = Value(1.0)
    with pytest.raises(ValueError, match='listed twice'):
        codegen.trace(x * 2.0, [x, x])


def test_an_interior_node_as_input_is_refused():
    x = Value(1.0)
    y = x * 2.0
    with pytest.raises(ValueError, match='not a leaf'):
        codegen.trace(y.exp(), [x, y])


def test_an_input_that_is_not_a_value_is_refused():
    x = Value(1.0)
    with pytest.raises(TypeError, match='not a Value'):
        codegen.trace(x * 2.0, [1.0])


def test_an_output_that_is_not_a_value_is_refused_by_name():
    x = Value(1.0)
    with pytest.raises(TypeError, match='output 1 is a float, not a Value'):
        codegen.trace([x * 2.0, 1.5], [x])


def micrograd_style_square(a):
    """An op written the way micrograd's lecture does: data, children and a closure."""
    out = Value(a.data ** 2, (a,), 'square')

    def _backward():
        a.grad += 2 * a.data * out.grad
    out._backward = _backward
    return out


def test_an_op_with_a_hand_written_backward_is_refused_with_a_pointer_to_the_op_table():
    x = Value(3.0)
    with pytest.raises(ValueError, match=r"'square'.*hand-written _backward.*micrograd/ops\.py"):
        codegen.trace(micrograd_style_square(x) + 1.0, [x])


def test_a_table_op_whose_backward_was_replaced_by_hand_is_refused():
    # The engine runs the replacement; code generated from the table row would silently
    # compute a different gradient.
    x = Value(0.5)
    y = x.tanh()

    def _backward():
        x.grad += 42.0 * y.grad
    y._backward = _backward
    with pytest.raises(ValueError, match='hand-written _backward'):
        codegen.trace(y, [x])


@pytest.mark.parametrize('label', [None, 7, 3.5])
def test_a_label_that_is_not_text_is_treated_as_text_or_ignored_not_a_crash(label):
    # The engine accepts any label (viz formats it); tracing must not fail inside re.sub.
    x = Value(1.0, label=label)
    y = x.exp()
    y.label = label
    program = codegen.trace(y, [x])
    assert codegen.check(program) and codegen.evaluate(program, [0.0]) == (1.0,)


def test_an_op_that_is_no_row_of_the_table_is_refused_when_traced():
    # the Trainer does not run ir.check on a trace: trace refuses what check would
    from micrograd.ops import TANH, Op
    x = Value(0.5)
    evil = Op('tanh', 'tanh', 1, TANH.fwd, TANH.grad, 'evil({0})')
    with pytest.raises(ValueError, match='unknown op'):
        codegen.trace(x._record(evil, (x,)), [x])
    y = x.tanh()
    y._param = 2.0  # tanh takes no parameter
    with pytest.raises(ValueError, match='parameter'):
        codegen.trace(y, [x])
    z = x.tanh()
    z._args = (x, x)
    with pytest.raises(ValueError, match='arguments'):
        codegen.trace(z, [x])
