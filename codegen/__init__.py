"""codegen: lower a recorded micrograd graph to a linear Program and emit Python or C.

    program = trace(loss, inputs)        # Value graph -> Program   (lower.py)
    program = grad(program, wrt)         # + gradient outputs       (grad.py)
    program = optimize(program)          # exact IEEE passes        (passes.py)
    source  = to_python(program) / to_c(program)                    (emit_*.py)
    f       = build(program, backend='c')                           (build.py)
    f       = jit(loss, inputs)          # all of the above
"""
VERSION = '0.2.0'  # part of every cache key: bump it when generated code changes

from codegen.ir import Instr, Program, check, evaluate, format  # noqa: E402
from codegen.lower import trace  # noqa: E402
from codegen.grad import grad  # noqa: E402
from codegen.passes import optimize  # noqa: E402
from codegen.emit_python import to_python  # noqa: E402
from codegen.emit_c import to_c  # noqa: E402
from codegen import loops  # noqa: E402,F401  (the loop level: codegen.loops.lower(program))
from codegen.build import (BuildError, CompileError, CompilerNotFound, Compiled,  # noqa: E402
                           build, jit, save)

__all__ = ['Instr', 'Program', 'check', 'evaluate', 'format', 'trace', 'grad', 'optimize',
           'to_python', 'to_c', 'build', 'jit', 'save', 'Compiled', 'BuildError',
           'CompileError', 'CompilerNotFound', 'VERSION']
