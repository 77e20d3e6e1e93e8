"""The linear IR: the printed listing, the checker, and the reference interpreter."""
import dataclasses

import pytest
from hypothesis import given, settings

import codegen
from codegen import Instr, Program
from codegen_support import assert_same, engine, slots_on_values, traced
from micrograd import Value
from micrograd.ops import ADD, MUL, NEG, OPS, POW, TANH, Op
from strategies import recipes_with_inputs


def neuron_program():
    w, x, b = Value(0.5, label='w'), Value(2.0, label='x'), Value(-1.0, label='b')
    return codegen.trace((w * x + b).tanh(), [w, x, b], 'neuron')


# ---- the printer -----------------------------------------------------------------------------

def test_the_listing_shows_inputs_one_instruction_per_line_and_outputs():
    assert str(neuron_program()) == '''\
{ lambda w x b .
  let v0 = mul w x
      v1 = add v0 b
      v2 = tanh v1
  in ( v2 ) }'''


def test_the_listing_shows_gradient_notes_literals_and_parameters():
    x = Value(2.0, label='x')
    program = codegen.grad(codegen.trace(x ** 3 - 1.5, [x]))
    assert codegen.format(program) == '''\
{ lambda x .
  let v0 = pow[p=3.0] x
      v1 = sub v0 1.5
      # grad of: v0 = pow[p=3.0] x
      t0 = pow[p=2.0] x
      t1 = mul 3.0 t0
      g_x = add 0.0 t1
  in ( v1, g_x ) }'''


def test_literal_outputs_and_special_literals_print_as_python_floats():
    program = Program('f', ('x',), (Instr('y', MUL, ('x', float('-inf'))),),
                      ('y', float('nan'), -0.0))
    assert codegen.format(program).splitlines()[1:] == [
        '  let y = mul x -inf', '  in ( y, nan, -0.0 ) }']


# ---- the checker -----------------------------------------------------------------------------

def program_with(*instrs, inputs=('x',), outputs=None):
    outputs = (instrs[-1].out,) if outputs is None else outputs
    return Program('f', inputs, tuple(instrs), outputs)


def test_traced_and_differentiated_programs_pass_the_checker():
    program = neuron_program()
    assert codegen.check(program) is program
    codegen.check(codegen.grad(program))
    codegen.check(codegen.optimize(codegen.grad(program)))


@pytest.mark.parametrize('program, complaint', [
    (program_with(Instr('y', TANH, ('z',))), 'z, which is not defined'),
    (program_with(Instr('y', TANH, ('y',))), 'y, which is not defined'),   # used before defined
    (program_with(Instr('y', TANH, ('x',)), outputs=('q',)), 'output list uses q'),
    (program_with(Instr('y', TANH, ('x',)), Instr('y', NEG, ('x',))), 'defined twice'),
    (program_with(Instr('x', TANH, ('x',))), 'defined twice'),             # redefines an input
    (program_with(Instr('y', TANH, ('x',)), inputs=('x', 'x')), 'defined twice'),
    (program_with(Instr('y', MUL, ('x',))), 'takes 2 arguments'),
    (program_with(Instr('y', TANH, ('x', 'x'))), 'takes 1 arguments'),
    (program_with(Instr('y', POW, ('x',))), 'parameter'),                  # pow without exponent
    (program_with(Instr('y', TANH, ('x',), 2.0)), 'parameter'),
    (program_with(Instr('y', TANH, (2,))), 'neither a register nor a float'),
    (program_with(Instr('2y', TANH, ('x',))), 'invalid register name'),
    (program_with(Instr('y z', TANH, ('x',))), 'invalid register name'),
    (program_with(Instr('lambda', TANH, ('x',))), 'invalid register name'),
    (program_with(Instr('_y', TANH, ('x',))), 'invalid register name'),
    (program_with(Instr('y', TANH, ('x',)), inputs=('x\n',)), 'invalid register name'),
    (program_with(Instr('y', Op('tanh', 'tanh', 1, None, None, 'evil({0})'), ('x',))),
     'unknown op'),
])
def test_the_checker_rejects_malformed_programs(program, complaint):
    with pytest.raises(ValueError, match=complaint):
        codegen.check(program)


@pytest.mark.parametrize('name', ['int', 'double', 'static', 'mg_p', 'exp', 'NAN'])
def test_the_checker_rejects_register_names_the_generated_c_or_python_cannot_use(name):
    # The emitters write register names as they are: `const double int = ...` is not C.
    with pytest.raises(ValueError, match='invalid register name'):
        codegen.check(program_with(Instr(name, TANH, ('x',))))


def test_the_checker_rejects_a_program_name_that_is_not_an_identifier():
    # The name becomes `def <name>(...)` and C function names.
    program = dataclasses.replace(neuron_program(), name='f(): pass\nimport os #')
    with pytest.raises(ValueError):
        codegen.check(program)


def test_programs_are_immutable_values():
    program = neuron_program()
    with pytest.raises(dataclasses.FrozenInstanceError):
        program.name = 'g'
    assert program == neuron_program()
    assert program.digest() == neuron_program().digest()
    assert program.digest() != codegen.grad(program).digest()


# ---- the interpreter -------------------------------------------------------------------------

@settings(max_examples=200)
@given(recipes_with_inputs())
def test_the_interpreter_computes_what_the_engine_computes(recipe_and_xs):
    recipe, xs = recipe_and_xs
    inputs, slots = slots_on_values(recipe, xs)
    forward_only = codegen.check(codegen.trace(slots[-1], inputs))
    assert_same((slots[-1].data,), codegen.evaluate(forward_only, xs), str(recipe))
    assert_same(engine(recipe, xs), codegen.evaluate(traced(recipe), xs), str(recipe))


def test_the_interpreter_checks_the_number_of_inputs():
    with pytest.raises(TypeError, match='takes 3 inputs, got 2'):
        codegen.evaluate(neuron_program(), [1.0, 2.0])


def test_the_interpreter_uses_each_ops_forward_so_it_never_raises_on_specials():
    def expression(x):
        return (x.log() / x) ** 0.5 + 2.0 ** (-x).exp()
    x = Value(0.0, label='x')
    program = codegen.grad(codegen.trace(expression(x), [x]))
    for value in (0.0, -0.0, float('inf'), float('-inf'), float('nan'), 1e308, -5e-324):
        x = Value(value)
        out = expression(x)
        out.backward()
        assert_same((out.data, x.grad), codegen.evaluate(program, [value]), f'x = {value}')


def test_every_op_of_the_table_can_be_an_instruction():
    for name, op in OPS.items():
        args = ('x', 'x')[:op.arity]
        program = program_with(Instr('y', op, args, 2.0 if op.param else None))
        codegen.check(program)
        assert len(codegen.evaluate(program, [0.5])) == 1


def test_inputs_may_be_outputs_and_outputs_may_be_literals():
    program = Program('f', ('x',), (Instr('y', ADD, ('x', 1.0)),), ('x', 'y', 3.0))
    assert codegen.evaluate(codegen.check(program), [2.0]) == (2.0, 3.0, 3.0)
