"""Opt-in fast batch entry points: several rows per SIMD vector, and rows split across threads.

The row function is emitted once more over a GCC vector type holding `lanes` rows. Arithmetic
ops use the op table's C template unchanged (GCC applies + - * / lane by lane); every other op
applies its scalar C template to each lane in a small helper. So each row still gets exactly
the scalar result; only the order in which `_sum` adds rows changes: lane by lane, then lanes
in order, then threads' partial sums in order, so the result is still the same on every run.

This is GNU C (vector extensions, OpenMP when compiled with -fopenmp), not ISO C99: the
default build (`emit_c` alone) stays portable and bit-equal to the engine.
"""
from codegen.c_common import literal, row_by_row_batch

NATIVE = {'add', 'sub', 'mul', 'div', 'neg'}  # C templates that are valid on GCC vectors


def lane_helper(op):
    """`static inline mg_vd mg_v_<op>(mg_vd a0, mg_vd a1, double p)`: the scalar template per
    lane."""
    params = ', '.join(f'mg_vd a{i}' for i in range(op.arity)) + (', double p' if op.param else '')
    expr = op.c.format(*(f'a{i}[l]' for i in range(op.arity)), p='p')
    return (f'static inline mg_vd mg_v_{op.name}({params}) {{\n'
            f'  mg_vd r; int l;\n  for (l = 0; l < MG_LANES; l++) r[l] = {expr};\n'
            '  return r;\n}\n')


def _vector_atom(a, in_call):
    if isinstance(a, str):
        return a
    return f'mg_splat({literal(a)})' if in_call else literal(a)


def _statement(instr):
    if instr.op.name in NATIVE:
        return instr.op.c.format(*(_vector_atom(a, False) for a in instr.args))
    args = [_vector_atom(a, True) for a in instr.args]
    if instr.op.param:
        args.append(literal(instr.param))
    return f'mg_v_{instr.op.name}({", ".join(args)})'


def vector_row(program, n_params, lanes):
    """`NAME_rowv`: the program on `lanes` consecutive data rows at once."""
    name, n_data = program.name, len(program.inputs) - n_params
    ops = {i.op.name: i.op for i in program.instrs if i.op.name not in NATIVE}
    lines = [f'#define MG_LANES {lanes}',
             f'typedef double mg_vd __attribute__((vector_size({8 * lanes})));',
             'static inline mg_vd mg_splat(double x) { mg_vd r; int l; '
             'for (l = 0; l < MG_LANES; l++) r[l] = x; return r; }']
    lines += [lane_helper(op) for _, op in sorted(ops.items())]
    lines.append(f'static void {name}_rowv(const double *mg_p, const double *mg_x, '
                 'mg_vd *mg_out) {')
    lines.append('  (void)mg_p; (void)mg_x;')
    used = {a for i in program.instrs for a in i.args} | set(program.outputs)
    for i, reg in enumerate(program.inputs):
        if reg not in used:
            continue
        if i < n_params:
            lines.append(f'  const mg_vd {reg} = mg_splat(mg_p[{i}]);')
        else:
            lanes_of = ', '.join(f'mg_x[{n_data * lane + i - n_params}]'
                                 for lane in range(lanes))
            lines.append(f'  const mg_vd {reg} = {{{lanes_of}}};')
    for instr in program.instrs:
        lines.append(f'  const mg_vd {instr.out} = {_statement(instr)};')
    for k, a in enumerate(program.outputs):
        lines.append(f'  mg_out[{k}] = {_vector_atom(a, True)};')
    return '\n'.join(lines) + '\n}\n'


def batch_and_sum(program, n_params, lanes, threads):
    """`NAME_batch` and `NAME_sum` over vectors of rows, rows split into `threads` chunks."""
    name, n_out = program.name, len(program.outputs)
    n_data = len(program.inputs) - n_params
    return f'''
#ifdef _OPENMP
#include <omp.h>
#endif
#define MG_THREADS {threads}
#define MG_MIN_ROWS_PER_THREAD 64
{row_by_row_batch(program, n_params)}
/* Rows [begin, end) added up: lane by lane, then the lanes, then the leftover rows. */
static void {name}_sum_range(const double *params, const double *data, double *sum,
                             long begin, long end) {{
  mg_vd acc[{n_out}], rows[{n_out}];
  double row[{n_out}];
  long i = begin, k;
  int l;
  for (k = 0; k < {n_out}; k++) acc[k] = mg_splat(0.0);
  for (; i + MG_LANES <= end; i += MG_LANES) {{
    {name}_rowv(params, data + {n_data} * i, rows);
    for (k = 0; k < {n_out}; k++) acc[k] += rows[k];
  }}
  for (k = 0; k < {n_out}; k++) {{
    sum[k] = 0.0;
    for (l = 0; l < MG_LANES; l++) sum[k] += acc[k][l];
  }}
  for (; i < end; i++) {{
    {name}_row(params, data + {n_data} * i, row);
    for (k = 0; k < {n_out}; k++) sum[k] += row[k];
  }}
}}

void {name}_sum(const double *params, const double *data, double *sum, long n) {{
  double part[MG_THREADS][{n_out}];
  long k;
  int t, used = (int)(n / MG_MIN_ROWS_PER_THREAD);
  if (used > MG_THREADS) used = MG_THREADS;
  if (used < 1) used = 1;
#ifdef _OPENMP
#pragma omp parallel for num_threads(used) schedule(static)
#endif
  for (t = 0; t < used; t++) {{
    long chunk = (n / used + MG_LANES - 1) / MG_LANES * MG_LANES;
    long begin = chunk * t, end = t == used - 1 ? n : chunk * (t + 1);
    if (begin > n) begin = n;
    if (end > n) end = n;
    {name}_sum_range(params, data, part[t], begin, end);
  }}
  for (k = 0; k < {n_out}; k++) {{
    sum[k] = part[0][k];
    for (t = 1; t < used; t++) sum[k] += part[t][k];
  }}
}}
'''
