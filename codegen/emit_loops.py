"""Loops -> one standalone C99 file: the loop level rendered as C, with the ABI of abi.py.

Rows run in chunks of MG_CHUNK: slot s of row r is w[s][r]. A Map is one loop over the rows of
the chunk; a Dense group calls `mg_dense`, an Outer group `mg_outer`: two small kernels, register
tiled, whose innermost loops run across rows or across independent sums, never inside one sum.
So the file is ISO C99 and computes the scalar program's bits under any flags that keep
-ffp-contract=off; gcc vectorises the row loops at -O3 with the host's vector instructions.
With AVX-512 the two kernels and an outer group's transpose are GNU C vector code doing the
same operations in the same order (gcc's own vectorising of the plain loops left the
floating-point pipes spreading weights over registers); elsewhere the plain loops.
"""
import functools
import re

from micrograd.ops import ADD

from codegen import VERSION
from codegen.c_common import helpers, literal
from codegen.loops import (Conv, Corr, Dense, Each, Gather, Map, Param, Sum, check, chunk_rows,
                           format as format_loops, slots_read, slots_written, stride)

DEFINITIONS = r'''
#define MG_CHUNK %(chunk)d
#define MG_MB 4   /* outputs of a dense group per register tile (with all rows of the chunk) */
#define MG_JB 32  /* sums of an outer group per register tile */
#define MG_MIN_CHUNKS_PER_THREAD 4  /* fewer chunks a thread: starting threads costs more */

/* With AVX-512, some kernels are GNU C vector code (8 doubles a vector) doing the same
 * operations in the same order as their plain loops; elsewhere the plain loops. gcc only:
 * clang says it is GNU C too but has neither __builtin_shuffle nor the noclone attribute. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__AVX512F__) && MG_CHUNK %% 8 == 0
#define MG_VECTORS 1
typedef double mg_v8 __attribute__((vector_size(64), aligned(8)));
typedef long long mg_i8 __attribute__((vector_size(64)));
/* Compiled once, not specialised by gcc for each call (a clone with the call's constants):
 * the outer tiles and the transpose ran no faster so, and cost W1's build 0.1 s. The dense
 * tiles are specialised in a big program (W2's step 6%% faster), not in a small one, where
 * mg_dense_once calls them (W1: build 0.52 -> 0.43 s, step 11.4 -> 12.8 us). */
#define MG_ONCE __attribute__((noinline, noclone))
#else
#define MG_ONCE
#endif

'''

# The code's own helper (not the kernels').
LINE_START = r'''#include <stdint.h>

/* `raw` (from malloc, with 8 doubles to spare) from its first 64-byte line on. malloc's 16
 * bytes would let a vector of 8 rows straddle two cache lines, or not, from one process to
 * the next (W1 steps took 12 to 17 us); and two threads writing one line slow each other (W2:
 * the halves of its weight-gradient sums shared a line in every row). */
static double *mg_line_start(double *raw) {
  return raw ? raw + (8 - (long)((uintptr_t)raw / sizeof *raw % 8)) % 8 : NULL;
}

'''

# Fetching a slot ahead of its use, where slots are read through a table (no hardware
# prefetcher guesses those): a hint, no value changes, and nothing at all without GNU C.
AHEAD = 8  # terms; a Gather's slot table ends with this many spare entries
PREFETCH = r'''#if defined(__GNUC__)
#define MG_PREFETCH_SLOT(p) do { int mg_q; for (mg_q = 0; mg_q < MG_CHUNK; mg_q += 8) \
  __builtin_prefetch((p) + mg_q); } while (0)
#else
#define MG_PREFETCH_SLOT(p) do { } while (0)
#endif
#define MG_AHEAD %(ahead)d

'''

DENSE = r'''/* Dense, the M outputs of a group for every row r of the chunk:
 * y[m][r] = init + sum over j < L, in order, of W[m*sm + j*sj] * w[x[j]][r].
 * init is bias[m*bs] if bias, else w[init[m]][r] if init, else none: the first product is
 * then taken as it is, as the scalar program does. The rows run in the vector lanes. A tile
 * is always full, so its sums stay in registers: past the last output (M-1), it computes the
 * last output again and writes the same value again. */
#ifdef MG_VECTORS
%(vector_tiles)s
/* One output for the chunk's rows, 8 at a time side by side: a layer of fewer than 4
 * outputs (a last layer of one) would otherwise compute its output 4 times in a tile of 4,
 * one chain of additions after the other. */
static void mg_dense_one(double (*w)[MG_CHUNK], int out, int L, const double *W, long sj,
                         const int *x, const double *bias, const int *init) {
  mg_v8 a[MG_CHUNK / 8];
  int j = 0, v;
  for (v = 0; v < MG_CHUNK / 8; v++)
    if (bias) a[v] = (mg_v8){*bias, *bias, *bias, *bias, *bias, *bias, *bias, *bias};
    else if (init) a[v] = *(const mg_v8 *)(w[*init] + 8 * v);
    else a[v] = W[0] * *(const mg_v8 *)(w[x[0]] + 8 * v);
  if (!bias && !init) j = 1;
  for (; j < L; j++)
    for (v = 0; v < MG_CHUNK / 8; v++)
      a[v] = a[v] + W[j * sj] * *(const mg_v8 *)(w[x[j]] + 8 * v);
  for (v = 0; v < MG_CHUNK / 8; v++) *(mg_v8 *)(w[out] + 8 * v) = a[v];
}

/* Tiles of 16 outputs (then 4; or 1 when there are fewer than 4) x 8 rows: a weight is used
 * by one multiplication, which then reads it from memory itself (an embedded broadcast)
 * instead of the floating-point pipes spreading it over a register: W2's 64 x 64 products
 * ran at 55 GFLOP/s, not 44. */
static void mg_dense(double (*w)[MG_CHUNK], int out, int M, int L, const double *W, long sm,
                     long sj, const int *x, const double *bias, long bs, const int *init) {
  int m = 0;
  for (; m + 16 <= M; m += 16) mg_dense_v16(w, out, m, M, L, W, sm, sj, x, bias, bs, init);
  if (M >= 4)
    for (; m < M; m += 4) mg_dense_v4(w, out, m, M, L, W, sm, sj, x, bias, bs, init);
  else
    for (; m < M; m++) mg_dense_one(w, out + m, L, W + m * sm, sj, x,
                                    bias ? bias + m * bs : NULL, init ? init + m : NULL);
}
#else
static void mg_dense_tile(double (*w)[MG_CHUNK], int out, int m, int M, int L,
                          const double *W, long sm, long sj, const int *x,
                          const double *bias, long bs, const int *init) {
  double a[MG_MB][MG_CHUNK];
  int r, k, j = 0, row[MG_MB];
  for (k = 0; k < MG_MB; k++) row[k] = m + k < M ? m + k : M - 1;
  if (bias) {
    for (k = 0; k < MG_MB; k++)
      for (r = 0; r < MG_CHUNK; r++) a[k][r] = bias[row[k] * bs];
  } else if (init) {
    for (k = 0; k < MG_MB; k++)
      for (r = 0; r < MG_CHUNK; r++) a[k][r] = w[init[row[k]]][r];
  } else {
    for (k = 0; k < MG_MB; k++)
      for (r = 0; r < MG_CHUNK; r++) a[k][r] = W[row[k] * sm] * w[x[0]][r];
    j = 1;
  }
  for (; j < L; j++) {
    const double *xj = w[x[j]];
    for (k = 0; k < MG_MB; k++) {
      const double c = W[row[k] * sm + j * sj];
      for (r = 0; r < MG_CHUNK; r++) a[k][r] = a[k][r] + c * xj[r];
    }
  }
  for (k = 0; k < MG_MB; k++)
    for (r = 0; r < MG_CHUNK; r++) w[out + row[k]][r] = a[k][r];
}

static void mg_dense(double (*w)[MG_CHUNK], int out, int M, int L, const double *W, long sm,
                     long sj, const int *x, const double *bias, long bs, const int *init) {
  int m;
  for (m = 0; m < M; m += MG_MB)
    mg_dense_tile(w, out, m, M, L, W, sm, sj, x, bias, bs, init);
}
#endif
%(dense_once)s
'''

# The dense groups' call in a small program (see MG_ONCE).
DENSE_ONCE = r'''
static MG_ONCE void mg_dense_once(double (*w)[MG_CHUNK], int out, int M, int L,
                                  const double *W, long sm, long sj, const int *x,
                                  const double *bias, long bs, const int *init) {
  mg_dense(w, out, M, L, W, sm, sj, x, bias, bs, init);
}
'''
SPECIALISE_WORK = 4096  # multiply-adds per row in layers from which the tiles are specialised

# One tile of the vector Dense, for `nb` outputs (16 and 4): a template, so both keep their
# sums in registers (gcc kept a variable number of them in memory).
DENSE_VECTOR_TILE = r'''
/* Dense, outputs m .. m+%(nb)d-1 (past M-1: the last again) for every row of the chunk, 8 at
 * a time: the tile's weights are found once for all of them (W2's first layer, 2 inputs,
 * spent more time finding them than multiplying). */
static void mg_dense_v%(nb)d(double (*w)[MG_CHUNK], int out, int m, int M, int L,
                          const double *W, long sm, long sj, const int *x,
                          const double *bias, long bs, const int *init) {
  mg_v8 a[%(nb)d];
  const double *wk[%(nb)d];
  int k, j, r, row[%(nb)d];
  for (k = 0; k < %(nb)d; k++) {
    row[k] = m + k < M ? m + k : M - 1;
    wk[k] = W + row[k] * sm;
  }
  for (r = 0; r < MG_CHUNK; r += 8) {
    j = 0;
    if (bias) {
      for (k = 0; k < %(nb)d; k++) {
        const double b = bias[row[k] * bs];  /* copied, not added to 0.0: -0.0 stays */
        a[k] = (mg_v8){b, b, b, b, b, b, b, b};
      }
    } else if (init) {
      for (k = 0; k < %(nb)d; k++) a[k] = *(const mg_v8 *)(w[init[row[k]]] + r);
    } else {
      const mg_v8 x0 = *(const mg_v8 *)(w[x[0]] + r);
      for (k = 0; k < %(nb)d; k++) a[k] = wk[k][0] * x0;
      j = 1;
    }
    for (; j < L; j++) {
      const mg_v8 xj = *(const mg_v8 *)(w[x[j]] + r);
      const long o = j * sj;
      for (k = 0; k < %(nb)d; k++) a[k] = a[k] + wk[k][o] * xj;
    }
    for (k = 0; k < %(nb)d; k++) *(mg_v8 *)(w[out + row[k]] + r) = a[k];
  }
}
'''

SUM_ROWS = r'''/* sum[k[i]] = sum[k[i]] + w[slot[i]][r] for the first `rows` rows, in row order:
 * the batch sums of the plain outputs, MG_KB of them side by side so their additions overlap
 * (a full block keeps its sums in registers; the last few go one at a time). */
#define MG_KB 8
static void mg_sum_rows(double (*w)[MG_CHUNK], long rows, int n, const int *slot,
                        const int *k, double *sum) {
  int i = 0, b;
  long r;
  for (; i + MG_KB <= n; i += MG_KB) {
    double a[MG_KB];
    for (b = 0; b < MG_KB; b++) a[b] = sum[k[i + b]];
    for (r = 0; r < rows; r++)
      for (b = 0; b < MG_KB; b++) a[b] = a[b] + w[slot[i + b]][r];
    for (b = 0; b < MG_KB; b++) sum[k[i + b]] = a[b];
  }
  for (; i < n; i++) {
    double a = sum[k[i]];
    for (r = 0; r < rows; r++) a = a + w[slot[i]][r];
    sum[k[i]] = a;
  }
}

'''

OUTER = r'''/* Outer: S[m*ld + j] = S[m*ld + j] + w[x[j]][r] * w[g[m]][r] for j < L and the first
 * `rows` rows, in row order: a batch sum of products (weight gradients); ld is L unless the
 * caller sums some columns of a wider group (threads split groups by columns). Tiles of
 * independent sums stay in registers, each adding its rows in order; xt is scratch for the
 * chunk's x transposed. */
/* xt[r*L + j] = w[x[j]][r] for the first `rows` rows: the chunk's x transposed, so that a
 * tile reads consecutive x. In vectors, 8 x 8 blocks go through registers (8 loads,
 * 24 shuffles, 8 stores; W2: 3x faster than one double at a time); the values are only
 * moved, so the bits are the same either way. */
#ifdef MG_VECTORS
static MG_ONCE void mg_transpose(double (*w)[MG_CHUNK], long rows, int L, const int *x,
                                 double *xt) {
  const mg_i8 even = {0, 8, 2, 10, 4, 12, 6, 14}, odd = {1, 9, 3, 11, 5, 13, 7, 15};
  const mg_i8 pairs_lo = {0, 1, 8, 9, 4, 5, 12, 13}, pairs_hi = {2, 3, 10, 11, 6, 7, 14, 15};
  const mg_i8 half_lo = {0, 1, 2, 3, 8, 9, 10, 11}, half_hi = {4, 5, 6, 7, 12, 13, 14, 15};
  const int blocks = L - L % 8;
  const long row_blocks = rows - rows % 8;
  long r;
  int j, i;
  for (j = 0; j < blocks; j += 8) {
    for (r = 0; r < row_blocks; r += 8) {
      mg_v8 v[8], t[8], u[8];  /* v[i] = x[j+i], rows r..r+7 */
      for (i = 0; i < 8; i++) v[i] = *(const mg_v8 *)(w[x[j + i]] + r);
      for (i = 0; i < 8; i += 2) {  /* pairs of x interleaved */
        t[i] = __builtin_shuffle(v[i], v[i + 1], even);
        t[i + 1] = __builtin_shuffle(v[i], v[i + 1], odd);
      }
      for (i = 0; i < 8; i += 4) {  /* then fours */
        u[i] = __builtin_shuffle(t[i], t[i + 2], pairs_lo);
        u[i + 2] = __builtin_shuffle(t[i], t[i + 2], pairs_hi);
        u[i + 1] = __builtin_shuffle(t[i + 1], t[i + 3], pairs_lo);
        u[i + 3] = __builtin_shuffle(t[i + 1], t[i + 3], pairs_hi);
      }
      for (i = 0; i < 4; i++) {  /* then eights: row r+i, and row r+i+4 */
        *(mg_v8 *)(xt + (r + i) * L + j) = __builtin_shuffle(u[i], u[i + 4], half_lo);
        *(mg_v8 *)(xt + (r + i + 4) * L + j) = __builtin_shuffle(u[i], u[i + 4], half_hi);
      }
    }
    for (i = 0; i < 8; i++) {  /* the last rows */
      const double *xi = w[x[j + i]];
      for (r = row_blocks; r < rows; r++) xt[r * L + j + i] = xi[r];
    }
  }
  for (j = blocks; j < L; j++) {  /* the last columns */
    const double *xj = w[x[j]];
    for (r = 0; r < rows; r++) xt[r * L + j] = xj[r];
  }
}

#else
static void mg_transpose(double (*w)[MG_CHUNK], long rows, int L, const int *x, double *xt) {
  long r;
  int j;
  for (j = 0; j < L; j++) {
    const double *xj = w[x[j]];
    for (r = 0; r < rows; r++) xt[r * L + j] = xj[r];
  }
}
#endif

/* The nb slots g[0..nb-1] of w as consecutive rows of MG_CHUNK: w[g[0]] itself when they are
 * (an outer group's usually are), else their first `rows` rows copied into buf. So a tile
 * reads its g through one pointer: with one per row of sums, gcc had too few registers for
 * them and reloaded them in every row (W2's weight gradients: 37 GFLOP/s). */
static const double *mg_rows(double (*w)[MG_CHUNK], const int *g, int nb, long rows,
                             double (*buf)[MG_CHUNK]) {
  int k = 1;
  while (k < nb && g[k] == g[0] + k) k++;
  if (k == nb) return w[g[0]];
  for (k = 0; k < nb; k++) memcpy(buf[k], w[g[k]], rows * sizeof **buf);
  return buf[0];
}

/* The chunk's sums: its x transposed, then mg_outer_all over its rows, 16 rows of sums (then
 * 4, then 1) at a time. */
static void mg_outer(double (*w)[MG_CHUNK], long rows, int M, int L, const int *x,
                     const int *g, double *S, long ld, double *xt) {
  double buf[16][MG_CHUNK];
  int m, nb;
  mg_transpose(w, rows, L, x, xt);
  for (m = 0; m < M; m += nb) {
    nb = M - m >= 16 ? 16 : M - m >= 4 ? 4 : 1;
    mg_outer_all(rows, nb, L, xt, L, mg_rows(w, g + m, nb, rows, buf), S + (long)m * ld, ld);
  }
}
'''

# An outer group's sums over the rows of one chunk (OUTER's mg_outer) or of all of them (the
# threaded sum, see _threaded_sum: there a tile of sums stays in registers over all n rows, not
# loaded and stored again for every chunk).
OUTER_ALL = r'''/* Outer over all n rows: S[m*ld + j] = S[m*ld + j] + xt[R*xs + j] * g of row R, for
 * j < L, R = 0 .. n-1 in order; row R = c*MG_CHUNK + r of chunk c has its g at
 * G[(c*M + m)*MG_CHUNK + r] (each chunk's M rows of g one after the other) and its x,
 * transposed, at xt + R*xs. */
#ifdef MG_VECTORS
%(vector_tiles)s
static void mg_outer_all(long n, int M, int L, const double *xt, long xs, const double *G,
                         double *S, long ld) {
  const int blocks = L - L % 8;
  long c, r, R;
  int m, j, k, nb;
  for (m = 0; m < M; m += nb) {
    nb = M - m >= 16 ? 16 : M - m >= 4 ? 4 : 1;
    j = 0;
    /* one row of sums: 4 vectors side by side, where one would wait for each addition
     * before the next (W2's last layer, one output, and its first, two inputs: its default
     * step 2% faster). Over a chunk only: over all rows (the threaded sum) memory is what
     * they wait for, and W2's fast sum took 3% longer so */
    if (nb == 1 && n <= MG_CHUNK)
      for (; j + 32 <= blocks; j += 32)
        mg_outer_all_1x4(n, M, xt + j, xs, G + m * MG_CHUNK, S + m * ld + j, ld);
    for (; j < blocks; j += 8) {
      if (nb == 16) mg_outer_all_16x1(n, M, xt + j, xs, G + m * MG_CHUNK, S + m * ld + j, ld);
      else if (nb == 4) mg_outer_all_4x1(n, M, xt + j, xs, G + m * MG_CHUNK, S + m * ld + j, ld);
      else mg_outer_all_1x1(n, M, xt + j, xs, G + m * MG_CHUNK, S + m * ld + j, ld);
    }
    for (k = m; k < m + nb; k++)
      for (j = blocks; j < L; j++) {  /* the last few sums, one at a time */
        double a = S[k * ld + j];
        for (c = 0, R = 0; R < n; c++)
          for (r = 0; r < MG_CHUNK && R < n; r++, R++)
            a = a + xt[R * xs + j] * G[(c * M + k) * MG_CHUNK + r];
        S[k * ld + j] = a;
      }
  }
}
#else
static void mg_outer_all(long n, int M, int L, const double *xt, long xs, const double *G,
                         double *S, long ld) {
  long c, r, R;
  int m, j, i, jb;
  for (m = 0; m < M; m++)
    for (j = 0; j < L; j += MG_JB) {
      double a[MG_JB];
      jb = L - j < MG_JB ? L - j : MG_JB;
      for (i = 0; i < jb; i++) a[i] = S[m * ld + j + i];
      for (c = 0, R = 0; R < n; c++)
        for (r = 0; r < MG_CHUNK && R < n; r++, R++) {
          const double g = G[(c * M + m) * MG_CHUNK + r], *x = xt + R * xs + j;
          for (i = 0; i < jb; i++) a[i] = a[i] + x[i] * g;
        }
      for (i = 0; i < jb; i++) S[m * ld + j + i] = a[i];
    }
}
#endif

'''

# (rows of sums, vectors of 8 sums side by side); 1 x 4 for a group of fewer than 4 rows
OUTER_TILES = ((16, 1), (4, 1), (1, 1), (1, 4))
OUTER_ALL_TILE = r'''
/* mg_outer_all's sums s[k*ld + 8*v .. k*ld + 8*v+7] for k < %(nb)d (of G's rows from g on)
 * and v < %(nc)d. Each g is used by one multiplication per vector of sums, which reads it from
 * memory itself (an embedded broadcast), as mg_dense's weights: W2's weight gradients ran at
 * 48 GFLOP/s, not 38. */
static void mg_outer_all_%(nb)dx%(nc)d(long n, int M, const double *xt, long xs,
                                   const double *g, double *s, long ld) {
  mg_v8 a[%(nb)d][%(nc)d];
  long r, R;
  int k, v;
  for (k = 0; k < %(nb)d; k++)
    for (v = 0; v < %(nc)d; v++) a[k][v] = *(const mg_v8 *)(s + k * ld + 8 * v);
  for (R = 0; R < n; R += MG_CHUNK, g += (long)M * MG_CHUNK) {
    const long rows = n - R < MG_CHUNK ? n - R : MG_CHUNK;
    const double *x = xt + R * xs;
    for (r = 0; r < rows; r++, x += xs)
      for (v = 0; v < %(nc)d; v++) {
        const mg_v8 xv = *(const mg_v8 *)(x + 8 * v);
        for (k = 0; k < %(nb)d; k++) a[k][v] = a[k][v] + xv * g[k * MG_CHUNK + r];
      }
  }
  for (k = 0; k < %(nb)d; k++)
    for (v = 0; v < %(nc)d; v++) *(mg_v8 *)(s + k * ld + 8 * v) = a[k][v];
}
'''

CONV = r'''/* A convolution: the same Dense over P pixels, pixel p reading the L slots x[p*L ...]
 * and writing its M outputs at out + p*M. */
static void mg_conv(double (*w)[MG_CHUNK], int out, int P, int M, int L, const double *W,
                    long sm, long sj, const int *x, const double *bias, long bs,
                    const int *init) {
  int p;
  for (p = 0; p < P; p++)
    mg_dense(w, out + p * M, M, L, W, sm, sj, x + p * L, bias, bs, init);
}

'''

CORR = r'''/* Corr: a convolution's gradient in each row, the pixels' terms added in order:
 * w[out + m*L + j][r] = 0.0 + w[X[j]][r] * w[G[m]][r] + w[X[L + j]][r] * w[G[M + m]][r] + ...
 * over P pixels (X: L slots per pixel, G: M slots per pixel); with X NULL, the biases:
 * w[out + m][r] = 0.0 + w[G[m]][r] + w[G[M + m]][r] + ... The rows run in the vector lanes,
 * MG_CM sums side by side (one pixel's x serves all of them; LeNet-5: 1.5x faster than one
 * at a time). A tile is always full: past the last row of sums it repeats the last one. */
#define MG_CM 4
static void mg_corr_tile(double (*w)[MG_CHUNK], int out, int M, int L, int P, const int *X,
                         const int *G, int m0, int j) {
  double a[MG_CM][MG_CHUNK];
  int u, p, r, m[MG_CM];
  for (u = 0; u < MG_CM; u++) {
    m[u] = m0 + u < M ? m0 + u : M - 1;
    for (r = 0; r < MG_CHUNK; r++) a[u][r] = 0.0;
  }
  for (p = 0; p < P; p++) {
    const double *x = X ? w[X[p * L + j]] : NULL;
    for (u = 0; u < MG_CM; u++) {
      const double *g = w[G[p * M + m[u]]];
      if (x)
        for (r = 0; r < MG_CHUNK; r++) a[u][r] = a[u][r] + x[r] * g[r];
      else
        for (r = 0; r < MG_CHUNK; r++) a[u][r] = a[u][r] + g[r];
    }
  }
  for (u = 0; u < MG_CM; u++)
    for (r = 0; r < MG_CHUNK; r++) w[out + m[u] * (X ? L : 1) + j][r] = a[u][r];
}

static void mg_corr(double (*w)[MG_CHUNK], int out, int M, int L, int P, const int *X,
                    const int *G) {
  int m0, j;
  for (m0 = 0; m0 < M; m0 += MG_CM)
    for (j = 0; j < (X ? L : 1); j++) mg_corr_tile(w, out, M, L, P, X, G, m0, j);
}
'''


GATHER = r'''/* Gather: the adjoints of a convolution's inputs in each row. Output i adds its terms
 * s = start[i] .. start[i+1]-1 in order, the first taken as it is:
 * w[out + i][r] = W[k[s]] * w[g[s]][r] + W[k[s+1]] * w[g[s+1]][r] + ...
 * The rows run in the vector lanes. The slot of term s + MG_AHEAD is fetched while term s
 * is added (LeNet-5's C3 adjoints: 2.6x faster; the tables end with MG_AHEAD spare terms). */
static void mg_gather(double (*w)[MG_CHUNK], int out, int K, const int *start,
                      const double *W, const int *k, const int *g) {
  int i, s, r;
  for (i = 0; i < K; i++) {
    double a[MG_CHUNK];
    const double c = W[k[start[i]]], *x = w[g[start[i]]];
    for (r = 0; r < MG_CHUNK; r++) a[r] = c * x[r];
    for (s = start[i] + 1; s < start[i + 1]; s++) {
      const double d = W[k[s]], *y = w[g[s]];
      MG_PREFETCH_SLOT(w[g[s + MG_AHEAD]]);
      for (r = 0; r < MG_CHUNK; r++) a[r] = a[r] + d * y[r];
    }
    for (r = 0; r < MG_CHUNK; r++) w[out + i][r] = a[r];
  }
}
'''


def _gather(statement, k, name):
    starts = [0]
    for terms in statement.terms:
        starts.append(starts[-1] + len(terms))
    spare = [0] * AHEAD  # the slots the last terms fetch ahead
    tables = [_table(f'{name}_g{k}_start', starts),
              _table(f'{name}_g{k}_k', [p for terms in statement.terms for p, _ in terms]),
              _table(f'{name}_g{k}_g', [s for terms in statement.terms for _, s in terms] +
                     spare)]
    call = (f'  mg_gather(w, {statement.out}, {len(statement.terms)}, {name}_g{k}_start, mg_p, '
            f'{name}_g{k}_k, {name}_g{k}_g);  /* {statement.group.outs[0]} ... */')
    return tables, call


def _corr(statement, k, name):
    g = statement.group
    tables, x = [], 'NULL'
    if statement.x is not None:
        x = f'{name}_c{k}_x'
        tables.append(_table(x, [s for row in statement.x for s in row]))
    tables.append(_table(f'{name}_c{k}_g', [s for row in statement.g for s in row]))
    call = (f'  mg_corr(w, {statement.out}, {g.M}, {g.L}, {len(statement.g)}, {x}, '
            f'{name}_c{k}_g);  /* {g.outs[0]} ... */')
    return tables, call


def _operand(a):
    if isinstance(a, Param):
        return f'mg_p[{a.index}]'
    if isinstance(a, int):
        return f'w[{a}][r]'
    return literal(a)


def _table(name, values):
    values = [str(v) for v in values] or ['0']
    rows = [', '.join(values[i:i + 16]) for i in range(0, len(values), 16)]
    return f'static const int {name}[{len(values)}] = {{\n  ' + ',\n  '.join(rows) + '\n};\n'


# The listing in the file's first comment: enough to read, not 30 MB of comment (an 800k-
# instruction program) or 33,000-character lines (LeNet-5's convolution windows)
HEADER_LINES, HEADER_WIDTH = 400, 200


def _header(loops):
    listing = [line if len(line) <= HEADER_WIDTH else line[:HEADER_WIDTH - 4] + ' ...'
               for line in format_loops(loops).splitlines()]
    if len(listing) > HEADER_LINES:
        listing = listing[:HEADER_LINES] + [f'... ({len(listing) - HEADER_LINES} lines more)']
    return (f'/* Generated by micrograd codegen {VERSION} from program {loops.program.digest()}'
            '. Do not edit.\n' + '\n'.join(' * ' + line for line in listing) +
            '\n */\n' + INCLUDES + helpers(loops.program))


INCLUDES = '#include <math.h>\n#include <stdlib.h>\n#include <string.h>\n'


def _map_run(run, private):
    """One loop over the rows computing every Map of `run` in order. The statements at the
    positions in `private` keep their values in C variables (t<i>) instead of w: most
    temporaries of a scalar program never reach memory, and gcc vectorises one loop, not one
    per statement."""
    local = {}  # slot -> the C variable holding its latest value in this run
    lines = []
    for i, statement in enumerate(run):
        instr = statement.instr
        atoms = [local.get(a, _operand(a)) if isinstance(a, int) else _operand(a)
                 for a in statement.args]
        expr = instr.op.c.format(*atoms, p=literal(instr.param or 0.0))
        out = statement.out
        if i in private:
            local[out] = f't{i}'
            lines.append(f'const double t{i} = {expr};  /* {instr} */')
        else:
            local.pop(out, None)
            lines.append(f'w[{out}][r] = {expr};  /* {instr} */')
    if len(lines) == 1:
        return f'  for (r = 0; r < MG_CHUNK; r++) {lines[0]}'
    body = ''.join(f'    {line}\n' for line in lines)
    return f'  for (r = 0; r < MG_CHUNK; r++) {{\n{body}  }}'


def _each(statement, k, name, locals_=None):
    """Element m of one Each, for the row loop: (tables it needs, `w[out + m][r] = ...;`).
    locals_ maps the first slot of a block kept in a C variable to that variable's name."""
    tables, atoms, locals_ = [], [], locals_ or {}
    for i, a in enumerate(statement.args):
        if not isinstance(a, tuple):
            atoms.append(_operand(a))
            continue
        step = stride(a)
        if a[0] in locals_ and step == 1:
            atoms.append(locals_[a[0]])
        elif step in (1, -1):
            atoms.append(f'w[{a[0]} {"+" if step == 1 else "-"} m][r]')
        else:
            tables.append(_table(f'{name}_e{k}_{i}', a))
            atoms.append(f'w[{name}_e{k}_{i}[m]][r]')
    g = statement.group
    expr = g.op.c.format(*atoms, p=literal(g.param or 0.0))
    return tables, f'w[{statement.out} + m][r] = {expr};'


def _each_run(run, k, name, private=()):
    """for m < M: one loop over the rows computing element m of every Each in `run`. The
    blocks of the statements at the positions in `private` (read only by later statements of
    the run) live in C variables, not in w."""
    tables, lines, locals_ = [], [], {}
    for i, statement in enumerate(run):
        more, line = _each(statement, k + i, name, locals_)
        tables += more
        if i in private:
            locals_[statement.out] = f't{i}'
            line = f'const double t{i} = ' + line.split(' = ', 1)[1]
        lines.append(line)
    M = len(run[0].group.outs)
    what = '; '.join(f'{s.group.outs[0]} = {s.group.op.name} ...' for s in run)
    if len(lines) == 1:
        return tables, (f'  for (m = 0; m < {M}; m++)  /* {what} */\n'
                        f'    for (r = 0; r < MG_CHUNK; r++) {lines[0]}')
    body = ''.join(f'      {line}\n' for line in lines)
    return tables, (f'  for (m = 0; m < {M}; m++)  /* {what} */\n'
                    f'    for (r = 0; r < MG_CHUNK; r++) {{\n{body}    }}')


def _runs(body):
    """The statements, with runs that share one loop put together in a list: consecutive Map
    statements (up to MAX_MAPS), and consecutive Each statements that have the same M where
    each reads what an earlier one of the run wrote only as element m, in element m (a run's
    outputs are fresh blocks, so no statement overwrites what another one still reads)."""
    runs = []
    for statement in body:
        run = runs[-1] if runs and isinstance(runs[-1], list) else None
        if run is not None and type(run[0]) is type(statement) and (
                isinstance(statement, Map) and len(run) < MAX_MAPS or
                isinstance(statement, Each) and _fits(run, statement)):
            run.append(statement)
        else:
            runs.append([statement] if isinstance(statement, (Map, Each)) else statement)
    return runs


# gcc 12 -O3 miscompiled one loop of ~200 fused statements (its loop distribution left some
# elements unwritten; -O2 and runs of up to 32 statements were right): runs stay short
MAX_FUSED = 8
MAX_MAPS = 64


def _fits(run, statement):
    M = len(statement.group.outs)
    if len(run[0].group.outs) != M or len(run) >= MAX_FUSED:
        return False
    blocks = {s.out for s in run}
    written = {s.out + m for s in run for m in range(M)}
    for a in statement.args:
        slots = a if isinstance(a, tuple) else (a,)
        if not any(isinstance(s, int) and s in written for s in slots):
            continue
        if not isinstance(a, tuple) or a[0] not in blocks or a != tuple(range(a[0], a[0] + M)):
            return False
    return True


def _last_reads(loops):
    """For the statement at each position of the body, the position of the last statement
    that reads what it wrote: len(body) when an outer group or an output reads it after the
    body, -1 when nothing does."""
    writer, last = {}, [-1] * len(loops.body)  # writer: slot -> position of its value's writer
    for position, statement in enumerate(loops.body):
        for a in slots_read(statement):
            if a in writer:
                last[writer[a]] = position
        for s in slots_written(statement):
            writer[s] = position
    after = [a for o in loops.outers for a in slots_read(o)] + \
        [a for a in loops.outputs if a is not None]
    for a in after:
        if a in writer:
            last[writer[a]] = len(loops.body)
    return last


def _private(first, run, last):
    """Positions in `run` (which starts at position `first`) of the statements whose values
    only later statements of the run read: they can live in C variables."""
    end = first + len(run) - 1
    return {i for i in range(len(run)) if first + i < last[first + i] <= end}


def _tile_work(loops):
    """Multiply-adds per row of the program's dense, convolution and outer groups."""
    dense = [s for s in loops.body if isinstance(s, Dense)] + \
        [p for s in loops.body if isinstance(s, Conv) for p in s.pixels]
    work = sum(s.group.shape[0] * s.group.shape[1] for s in dense)
    return work + sum(o.group.shape[0] * o.group.shape[1] for o in loops.outers)


def _dense(statement, k, name, pixels=(), once=False):
    """A Dense statement's call to mg_dense; with `pixels` (a Conv's Dense statements, the
    first of which is `statement`), one call to mg_conv over every pixel's vector."""
    g, tables = statement.group, []
    M, L = g.shape
    x = f'{name}_d{k}_x'
    tables.append(_table(x, [s for pixel in pixels or (statement,) for s in pixel.vector]))
    bias, bs, init = 'NULL', 0, 'NULL'
    if statement.init is not None:
        params = [a.index for a in statement.init if isinstance(a, Param)]
        step = stride(params) if len(params) == M else None
        if step is not None:  # a bias: parameters at affine positions
            bias, bs = f'mg_p + {params[0]}', step
        else:  # parameters elsewhere, or not parameters: lowering gave every init a slot
            init = f'{name}_d{k}_init'
            tables.append(_table(init, [_slot(a) for a in statement.init]))
    kernel = f'mg_conv(w, {statement.out}, {len(pixels)}, ' if pixels else \
        f'{"mg_dense_once" if once else "mg_dense"}(w, {statement.out}, '
    call = (f'  {kernel}{M}, {L}, mg_p + {g.base}, {g.stride_m}, {g.stride_j}, {x}, {bias}, '
            f'{bs}, {init});  /* {g.outs[0]} ... */')
    return tables, call


def _sum_chain(statement, k, name):
    """A Sum: each row's terms added in order, the rows side by side in the vector lanes."""
    terms, tables = statement.terms, []
    step = stride(terms)
    if step is not None:
        term = f'w[{terms[0]} + {"" if step == 1 else f"{step} * "}m][r]'
    else:
        tables.append(_table(f'{name}_s{k}', terms))
        term = f'w[{name}_s{k}[m]][r]'
    add = ADD.c.format('a[r]', term)
    return tables, (f'  {{  /* {statement.group.outs[0]} = sum of {len(terms)} terms */\n'
                    f'    double a[MG_CHUNK];\n'
                    f'    for (r = 0; r < MG_CHUNK; r++) a[r] = {_operand(statement.init)};\n'
                    f'    for (m = 0; m < {len(terms)}; m++)\n'
                    f'      for (r = 0; r < MG_CHUNK; r++) a[r] = {add};\n'
                    f'    for (r = 0; r < MG_CHUNK; r++) w[{statement.out}][r] = a[r];\n  }}')


def _conv(statement, k, name):
    return _dense(statement.pixels[0], k, name, statement.pixels)


def _slot(a):
    if not isinstance(a, int):
        raise ValueError(f'a dense init must be a slot or a parameter, not {a!r}')
    return a


STATEMENTS_PER_FUNCTION = 200  # gcc's time grows faster than linearly with a function's size

# Above this many Map statements they become data: gcc's time grows with every statement of
# code (1,892 of them: 1.3 s), a table's barely.
MAP_TABLE_LIMIT = 2000


class _Tables:
    """Runs of Map statements as tables (opcode, argument and result slots) that one loop
    runs, a switch case per op, each case a loop over the rows of the chunk. Operands that
    are not slots (parameters, literals) get slots after the program's, filled every chunk."""

    def __init__(self, loops, name):
        self.name, self.first_slot = name, loops.n_slots
        self.constants = {}  # Param or literal (by repr) -> its slot
        self.ops = {}        # op name -> (code, op)
        self.params = False  # some op has a parameter (pow's exponent)

    def slot(self, a):
        if isinstance(a, int):
            return a
        key = a if isinstance(a, Param) else repr(a)
        return self.constants.setdefault(key, self.first_slot + len(self.constants))

    def fill(self):
        """C lines for the chunk's set-up: every constant slot, on every row."""
        return [f'    w[{slot}][r] = {_operand(key if isinstance(key, Param) else float(key))};'
                for key, slot in self.constants.items()]

    def run(self, run, k):
        """(the run's tables, the call that runs them)."""
        rows = []
        for statement in run:
            op = statement.instr.op
            code, _ = self.ops.setdefault(op.name, (len(self.ops), op))
            args = [self.slot(a) for a in statement.args] + [0] * (2 - len(statement.args))
            self.params |= statement.instr.param is not None
            rows.append((code, *args, statement.out, statement.instr.param or 0.0))
        t = f'{self.name}_t{k}'
        tables = ''.join(_table(f'{t}_{column}', [r[i] for r in rows])
                         for i, column in enumerate(('op', 'a', 'b', 'o')))
        params = 'NULL'
        if any(statement.instr.param is not None for statement in run):
            values = ', '.join(literal(r[4]) for r in rows)
            tables += f'static const double {t}_p[{len(rows)}] = {{{values}}};\n'
            params = f'{t}_p'
        return tables, (f'  {self.name}_table(w, {t}_op, {t}_a, {t}_b, {t}_o, {params}, '
                        f'{len(rows)});  /* {run[0].instr.out} ... {run[-1].instr.out} */')

    def interpreter(self):
        cases = ''.join(
            f'      case {code}: for (r = 0; r < MG_CHUNK; r++) z[r] = '
            f'{op.c.format("x[r]", "y[r]", p="p[i]" if self.params else "0.0")}; break;'
            f'  /* {op_name} */\n' for op_name, (code, op) in self.ops.items())
        return f'''/* Map statements as data: instruction i sets w[o[i]] = op[i](w[a[i]], w[b[i]])
 * (with p[i] for pow) on every row of the chunk, in order. */
static void {self.name}_table(double (*w)[MG_CHUNK], const int *op, const int *a, const int *b,
                              const int *o, const double *p, int n) {{
  int i;
  long r;
  (void)p;
  for (i = 0; i < n; i++) {{
    const double *x = w[a[i]], *y = w[b[i]];
    double *z = w[o[i]];
    (void)y;
    switch (op[i]) {{
{cases}    }}
  }}
}}

'''


def _loads(loops):
    """C lines filling the slots every chunk starts from: its rows' inputs and the constants.
    A run into consecutive slots from consecutive columns (or parameters) is one loop: as
    lines, LeNet-5's 1,034 inputs took gcc 1.5 s of its 2.9 s; a batch term's 4,417
    parameters (W2) would have been as many lines."""
    n_data = len(loops.program.inputs) - loops.n_params
    lines = []
    for s, d, n in _consecutive(loops.inputs):
        lines += _fill(s, n, lambda m: f'r < rows ? mg_x[r * {n_data} + {d}{m}] : 0.0')
    values = dict(loops.constants)
    for s, i, n in _consecutive([(s, v.index if isinstance(v, Param) else None)
                                 for s, v in loops.constants]):
        lines += _fill(s, n, lambda m: f'mg_p[{i}{m}]' if i is not None else
                       _operand(values[s]))
    return lines


def _consecutive(pairs):
    """[first slot, first index, n] for each run of (slot, index) pairs in which both go up
    by one (an index of None is a run of its own)."""
    runs = []
    for slot, index in pairs:
        last = runs[-1] if runs else None
        if last and index is not None and last[1] is not None and \
                (slot, index) == (last[0] + last[2], last[1] + last[2]):
            last[2] += 1
        else:
            runs.append([slot, index, 1])
    return runs


def _fill(s, n, value):
    """w[s + m][r] = value(m) for m < n: a loop from 4 slots on, else a line each."""
    if n >= 4:
        return [f'    {{ long m; for (m = 0; m < {n}; m++) w[{s} + m][r] = {value(" + m")}; }}']
    return [f'    w[{s + m}][r] = {value(f" + {m}" if m else "")};' for m in range(n)]


def _chunk_function(loops, name, table=None, once=False):
    """`NAME_chunk`: every slot of up to MG_CHUNK rows (rows past `rows` are zeros). The body
    is cut into parts of STATEMENTS_PER_FUNCTION statements, called in order. With `table`
    (a _Tables), runs of Map statements are its tables, not code."""
    load = _loads(loops)
    tables, parts, k, last = [], [], 0, _last_reads(loops)
    for first in range(0, len(loops.body), STATEMENTS_PER_FUNCTION):
        lines, position = [], first
        for statement in _runs(loops.body[first:first + STATEMENTS_PER_FUNCTION]):
            private = _private(position, statement, last) if isinstance(statement, list) else ()
            position += len(statement) if isinstance(statement, list) else 1
            if isinstance(statement, list) and isinstance(statement[0], Map):
                if table is None:
                    lines.append(_map_run(statement, private))
                    continue
                more, code = table.run(statement, k)
                k += 1
                tables.append(more)
                lines.append(code)
                continue
            if isinstance(statement, (Dense, Conv, Corr, Gather, Sum)):
                emit = {Dense: functools.partial(_dense, once=once), Conv: _conv, Corr: _corr,
                        Gather: _gather, Sum: _sum_chain}[type(statement)]
                more, code = emit(statement, k, name)
                k += 1
            else:
                more, code = _each_run(statement, k, name, private)
                k += len(statement)
            tables += more
            lines.append(code)
        parts.append(lines)
    text = ''.join(tables) + (table.interpreter() if table else '')
    load += table.fill() if table else []
    for i, lines in enumerate(parts):
        text += (f'static void {name}_part{i}(const double *restrict mg_p, '
                 f'double (*restrict w)[MG_CHUNK]) {{\n'
                 '  long r, m;\n  (void)mg_p; (void)r; (void)m;\n' + '\n'.join(lines) + '\n}\n\n')
    calls = ''.join(f'  {name}_part{i}(mg_p, w);\n' for i in range(len(parts)))
    return text + f'''static void {name}_chunk(const double *mg_p, const double *mg_x, long rows,
                        double (*w)[MG_CHUNK]) {{
  long r;
  (void)mg_p; (void)mg_x; (void)rows;
  for (r = 0; r < MG_CHUNK; r++) {{
{chr(10).join(load)}
  }}
{calls}}}
'''


def _output_tables(loops, name):
    """Where each output lives: plain outputs (position, slot), and each outer group's strips."""
    plain = [(k, s) for k, s in enumerate(loops.outputs) if s is not None]
    text = _table(f'{name}_out_k', [k for k, _ in plain] or [0])
    text += _table(f'{name}_out_slot', [s for _, s in plain] or [0])
    for k, o in enumerate(loops.outers):
        text += _table(f'{name}_o{k}_x', o.vector) + _table(f'{name}_o{k}_g', o.rows)
    return text


def _outer_sizes(loops):
    """(offset in the scratch S, M, L) of each outer group, and the total size."""
    placed, offset = [], 0
    for o in loops.outers:
        M, L = o.group.shape
        placed.append((offset, M, L))
        offset += M * L
    return placed, offset


def _scatter_outer(loops):
    """C lines: sum[position(m, j)] = S[offset + m*L + j] for every outer group."""
    lines = []
    for o, (offset, M, L) in zip(loops.outers, _outer_sizes(loops)[0]):
        g = o.group
        lines.append(f'  for (m = 0; m < {M}; m++)\n    for (j = 0; j < {L}; j++) '
                     f'sum[{g.base} + m * {g.stride_m} + j * {g.stride_j}] = '
                     f'S[{offset} + m * {L} + j];')
    return '\n'.join(lines)


def _max_outer_width(loops):
    return max([o.group.shape[1] for o in loops.outers] or [1])


def _sum(loops, name, function=None):
    """`NAME_sum` on one thread: after each chunk, its rows join every sum in order."""
    n_out, n_data = len(loops.program.outputs), len(loops.program.inputs) - loops.n_params
    placed, size = _outer_sizes(loops)
    n_plain = sum(1 for s in loops.outputs if s is not None)
    calls = ''.join(f'    mg_outer(w, rows, {M}, {L}, {name}_o{k}_x, {name}_o{k}_g, S + {offset}, '
                    f'{L}, xt);\n' for k, (offset, M, L) in enumerate(placed))
    return f'''
/* The outputs added up over n rows, row 0 first (each sum in row order). */
{function or f'void {name}_sum'}(const double *params, const double *data, double *sum, long n) {{
  double *raw[3], (*w)[MG_CHUNK], *S, *xt;
  long i, k, m, j;
  (void)m; (void)j;
  raw[0] = malloc(({name}_SLOTS * MG_CHUNK + 8) * sizeof **raw);
  raw[1] = calloc({size} + 1 + 8, sizeof **raw);
  raw[2] = malloc((MG_CHUNK * {_max_outer_width(loops)} + 8) * sizeof **raw);
  w = (double (*)[MG_CHUNK])mg_line_start(raw[0]);
  S = mg_line_start(raw[1]);
  xt = mg_line_start(raw[2]);
  for (k = 0; k < {n_out}; k++) sum[k] = w && S && xt ? 0.0 : NAN;
  for (i = 0; i < n && w && S && xt; i += MG_CHUNK) {{
    const long rows = n - i < MG_CHUNK ? n - i : MG_CHUNK;
    {name}_chunk(params, data + i * {n_data}, rows, w);
{calls}    mg_sum_rows(w, rows, {n_plain}, {name}_out_slot, {name}_out_k, sum);
  }}
  if (w && S && xt) {{
{_scatter_outer(loops)}
  }}
  for (k = 0; k < 3; k++) free(raw[k]);
}}
'''


BLOCK_CHUNKS = 64  # chunks the threaded sum keeps at a time (W2: 64 x 32 rows, 6.4 MB)
RETRY_CALLS = 64  # the threaded sum tries the way it is not taking once in this many calls


def _threaded_sum(loops, name, threads):
    """`NAME_sum` on `threads` cores, computing the same bits as on one: the chunks' rows are
    split between the threads first (a row's numbers do not depend on who computes them; each
    thread takes the next chunk when it is free, so a thread slowed by another process does
    fewer), then the batch sums are split by output, each still adding its rows in order.
    Between the two, what the sums read is kept for every chunk: the plain outputs' slots, and
    for each outer group its x transposed and its rows of g, so that a tile of its sums adds
    all n rows in one call (mg_outer_all: W2's weight gradients 15% faster than chunk by
    chunk, each chunk loading and storing the tile's sums again)."""
    n_out, n_data = len(loops.program.outputs), len(loops.program.inputs) - loops.n_params
    plain = [(k, s) for k, s in enumerate(loops.outputs) if s is not None]
    tables = _table(f'{name}_out_q', list(range(len(plain))) or [0])
    placed, size = _outer_sizes(loops)
    # what is kept, in doubles per row: the plain outputs, then each group's x and g
    regions, at = [], len(plain)
    for k, (offset, M, L) in enumerate(placed):
        regions.append(f'      double *const X{k} = (double *)kept + block * MG_CHUNK * {at}, '
                       f'*const G{k} = X{k} + block * MG_CHUNK * {L};\n')
        at += L + M
    keep = ''.join(
        f'        mg_transpose(w, rows, {L}, {name}_o{k}_x, X{k} + c * MG_CHUNK * {L});\n'
        f'        for (i = 0; i < {M}; i++)\n'
        f'          memcpy(G{k} + (c * {M} + i) * MG_CHUNK, w[{name}_o{k}_g[i]], sizeof *w);\n'
        for k, (offset, M, L) in enumerate(placed))
    shares = []
    for t in range(threads):  # thread t: part t of every group's columns and of the outputs
        calls = []
        for k, (offset, M, L) in enumerate(placed):
            j0, j1 = L * t // threads, L * (t + 1) // threads
            if j1 > j0:
                calls.append(f'mg_outer_all(block_rows, {M}, {j1 - j0}, X{k} + {j0}, {L}, '
                             f'G{k}, S + {offset + j0}, {L});')
        k0, k1 = len(plain) * t // threads, len(plain) * (t + 1) // threads
        if k1 > k0:
            calls.append(f'for (c = 0; c < block_chunks; c++)\n'
                         f'              mg_sum_rows(kept + c * {len(plain)}, MG_ROWS(first + c), '
                         f'{k1 - k0}, {name}_out_q + {k0}, {name}_out_k + {k0}, sum);')
        shares.append(''.join(f'            {call}\n' for call in calls))
    cases = '\n'.join(f'          case {t}:\n{calls}            break;'
                      for t, calls in enumerate(shares))
    return tables + f'''
#ifdef _OPENMP
#include <omp.h>
#endif

/* The outputs added up over n rows, row 0 first, on up to {threads} threads: the same bits as
 * on one. By blocks of up to MG_BLOCK chunks (what is kept between the two parts stays within
 * a few megabytes, whatever n): 1: the block's chunks split between threads, keeping what the
 * sums read. 2: the sums split by output (each outer group by its columns), each adding the
 * block's rows in order. Every buffer is allocated before the threads start: they meet only
 * between the two parts and at the end of a block. */
#define MG_BLOCK {BLOCK_CHUNKS}
static void {name}_sum_threads(const double *params, const double *data, double *sum, long n) {{
  const long chunks = (n + MG_CHUNK - 1) / MG_CHUNK;
  const long block = chunks < MG_BLOCK ? chunks : MG_BLOCK;
  double (*kept)[MG_CHUNK], (*ws)[MG_CHUNK], *S, *raw;
  long k, m, j, first;
  (void)m; (void)j;
  /* one allocation: with several, glibc gave some back to the system after each call, and
   * the next call faulted their pages in again */
  raw = malloc((block * MG_CHUNK * {at} + {threads} * {name}_SLOTS * MG_CHUNK + {size} + 1 +
                8) * sizeof *raw);
  for (k = 0; k < {n_out}; k++) sum[k] = raw ? 0.0 : NAN;
  if (!raw) return;
  kept = (double (*)[MG_CHUNK])mg_line_start(raw);
  ws = kept + block * {at};
  S = memset(ws + {threads} * {name}_SLOTS, 0, ({size} + 1) * sizeof *S);
#define MG_ROWS(c) (n - (c) * MG_CHUNK < MG_CHUNK ? n - (c) * MG_CHUNK : MG_CHUNK)
  for (first = 0; first < chunks; first += block) {{
    const long block_chunks = chunks - first < block ? chunks - first : block;
    const long block_rows = n - first * MG_CHUNK < block * MG_CHUNK ? n - first * MG_CHUNK
                                                                     : block * MG_CHUNK;
    (void)block_rows;  /* unused when there is no outer group */
#ifdef _OPENMP
#pragma omp parallel num_threads({threads})
#endif
    {{
#ifdef _OPENMP
      const long me = omp_get_thread_num();
#else
      const long me = 0;
#endif
{''.join(regions)}      double (*w)[MG_CHUNK] = ws + me * {name}_SLOTS;
      long c, i, t;
      (void)i;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
      for (c = 0; c < block_chunks; c++) {{  /* chunk first + c */
        const long rows = MG_ROWS(first + c);
        {name}_chunk(params, data + (first + c) * MG_CHUNK * {n_data}, rows, w);
        for (i = 0; i < {len(plain)}; i++)
          memcpy(kept[c * {len(plain)} + i], w[{name}_out_slot[i]], sizeof *w);
{keep}      }}
#ifdef _OPENMP
#pragma omp for schedule(static, 1)
#endif
      for (t = 0; t < {threads}; t++)
        switch (t) {{
{cases}
        }}
    }}
  }}
#undef MG_ROWS
{_scatter_outer(loops)}
  free(raw);
}}

/* Threads pay only while each has a core: with another process on one of them, every
 * meeting waits for the thread that shares its core (W2: 1.0 ms a step, one thread 0.63).
 * So the sum times itself both ways, which give the same bits, and takes the faster, trying
 * the other way every MG_RETRY calls. The first call, which also starts the threads, is not
 * timed. */
#define MG_RETRY {RETRY_CALLS}
static double {name}_row_seconds[2];  /* one thread, threads: smoothed, 0 until timed */
static long {name}_calls;

void {name}_sum(const double *params, const double *data, double *sum, long n) {{
#ifdef _OPENMP
  double seconds[2], t;
  long call;
  int way;
  if ((n + MG_CHUNK - 1) / MG_CHUNK < MG_MIN_CHUNKS_PER_THREAD * {threads}) {{
    {name}_sum_one(params, data, sum, n);  /* too few rows to share */
    return;
  }}
#pragma omp atomic read
  seconds[0] = {name}_row_seconds[0];
#pragma omp atomic read
  seconds[1] = {name}_row_seconds[1];
#pragma omp atomic capture
  call = {name}_calls++;
  way = seconds[1] == 0.0 ? 1 : seconds[0] == 0.0 ? 0 : seconds[1] <= seconds[0];
  if (call % MG_RETRY == MG_RETRY - 1) way = !way;
  t = omp_get_wtime();
  if (way) {name}_sum_threads(params, data, sum, n);
  else {name}_sum_one(params, data, sum, n);
  t = (omp_get_wtime() - t) / n;
  if (call > 0) {{
    t = seconds[way] == 0.0 ? t : (seconds[way] + t) / 2;
#pragma omp atomic write
    {name}_row_seconds[way] = t;
  }}
#else
  {name}_sum_one(params, data, sum, n);  /* no OpenMP: one thread */
  (void){name}_sum_threads;
  (void){name}_row_seconds;
  (void){name}_calls;
#endif
}}
'''


def _batch(loops, name):
    """`NAME_batch`, and `NAME` for one row."""
    n_in, n_out = len(loops.program.inputs), len(loops.program.outputs)
    n_data = n_in - loops.n_params
    n_plain = sum(1 for s in loops.outputs if s is not None)
    outer = ''.join(f'      for (m = 0; m < {o.group.shape[0]}; m++)\n'
                    f'        for (j = 0; j < {o.group.shape[1]}; j++)\n'
                    f'          o[{o.group.base} + m * {o.group.stride_m} + j * {o.group.stride_j}]'
                    f' = {"0.0 + " if o.group.plus_zero else ""}'
                    f'w[{name}_o{k}_x[j]][r] * w[{name}_o{k}_g[m]][r];\n'
                    for k, o in enumerate(loops.outers))
    return f'''
/* The outputs of each of n rows. */
void {name}_batch(const double *params, const double *data, double *out, long n) {{
  double *raw = malloc(({name}_SLOTS * MG_CHUNK + 8) * sizeof *raw);
  double (*w)[MG_CHUNK] = (double (*)[MG_CHUNK])mg_line_start(raw);
  long i, k, r, m, j;
  (void)m; (void)j;
  for (i = 0; i < n && w; i += MG_CHUNK) {{
    const long rows = n - i < MG_CHUNK ? n - i : MG_CHUNK;
    {name}_chunk(params, data + i * {n_data}, rows, w);
    for (r = 0; r < rows; r++) {{
      double *o = out + (i + r) * {n_out};
      for (k = 0; k < {n_plain}; k++) o[{name}_out_k[k]] = w[{name}_out_slot[k]][r];
{outer}    }}
  }}
  if (!w)
    for (i = 0; i < n * {n_out}; i++) out[i] = NAN;
  free(raw);
}}

void {name}(const double *in, double *out) {{
  {name}_batch(in, in + {loops.n_params}, out, 1);
}}
'''


def _metadata(loops, name, n_slots):
    n_in, n_out = len(loops.program.inputs), len(loops.program.outputs)
    return (f'\nint {name}_n_in(void) {{ return {n_in}; }}\n'
            f'int {name}_n_params(void) {{ return {loops.n_params}; }}\n'
            f'int {name}_n_out(void) {{ return {n_out}; }}\n\n'
            f'#define {name}_SLOTS {n_slots}\n')


def _with_tiles(kernel, tile, sizes):
    """`kernel` with its vector tiles in place: the `tile` template for each size, (rows or
    outputs, vectors side by side)."""
    return kernel.replace('%(vector_tiles)s',
                          ''.join(tile % {'nb': nb, 'nc': nc} for nb, nc in sizes))


# A table as _table (and the Map tables' parameters) write it: one definition, no } inside.
TABLE = re.compile(r'static const (int|double) (\w+)\[(\d+)\] = \{[^}]*\};\n')
SPLIT_TABLES = 100_000  # characters of tables from which they get a unit of their own


def to_units(loops, threads=1):
    """to_c's source as translation units, which codegen.build compiles side by side:
    - the kernels that gcc does not specialise for each call (a small program's, see
      _kernels), called across units (W1: 0.25 s of gcc's 0.39 s on one unit);
    - above SPLIT_TABLES characters of tables, those alone, extern (LeNet-5: 580,000 numbers,
      a third of gcc's time on one unit);
    - the code, which declares both. Same functions, so the same bits as to_c's one file."""
    check(loops)
    kernels, once = _kernels(loops, threads)
    code = _code(loops, threads, once)
    apart = ''.join(text for text, alone in kernels if alone)
    kept = ''.join(text for text, alone in kernels if not alone)
    called = [n for n in dict.fromkeys(CALL.findall(kept + code))
              if _definition(n).search(apart)]
    units = []
    if called:
        units.append(f'/* The kernels that the code of {loops.name} (the last unit) calls. */\n'
                     + INCLUDES + DEFINITIONS % {'chunk': chunk_rows(loops)} + SHARED +
                     functools.reduce(lambda text, n: _definition(n).sub('MG_SHARED ', text),
                                      called, apart))
        kept = SHARED + ''.join(_declaration(n, apart) for n in called) + kept
    else:  # nothing to call across units: every kernel stays with the code
        kept = ''.join(text for text, _ in kernels)
    source = _header(loops) + DEFINITIONS % {'chunk': chunk_rows(loops)} + LINE_START + kept + \
        '\n' + code
    tables = [m.group(0).replace('static const', 'const', 1) for m in TABLE.finditer(source)]
    if sum(map(len, tables)) >= SPLIT_TABLES:
        source = TABLE.sub(
            lambda m: f'extern const {m.group(1)} {m.group(2)}[{m.group(3)}];\n', source)
        units.append(f'/* The tables of {loops.name}; its code, in the last unit, declares '
                     'them. */\n' + ''.join(tables))
    return units + [source]


# Kernels compiled in one unit, called from another
SHARED = r'''/* A kernel of another unit of the same library: hidden, so it is called directly, not
 * through the library's table of exported names. */
#if defined(__GNUC__)
#define MG_SHARED __attribute__((visibility("hidden")))
#else
#define MG_SHARED
#endif

'''
CALL = re.compile(r'\b(mg_\w+)\(')


def _definition(name):
    """The start of a kernel's definitions (one per #if branch), up to its return type."""
    return re.compile(rf'(?m)^static (?=(?:MG_ONCE )?void {name}\()')


def _declaration(name, kernels):
    """A shared kernel's prototype, from its first definition in `kernels`."""
    signature = re.search(rf'(?m)^static (?:MG_ONCE )?(void {name}\([^{{;]*\)) \{{', kernels)
    return f'MG_SHARED {signature.group(1)};\n'


def _kernels(loops, threads):
    """The kernels the program's statements call, in order, each as (C text, whether it may
    be compiled in a unit of its own); and whether the dense groups call mg_dense_once.
    A big program's (or the fast build's) dense and outer kernels are specialised by gcc for
    each call, in the code's unit (W2: 4% of a step when the outer ones were not); a small
    program's, with one thread, are compiled once (see MG_ONCE), apart."""
    # the fast build is for running: its tiles are specialised whatever the program's size
    once = threads == 1 and _tile_work(loops) < SPECIALISE_WORK and \
        any(isinstance(s, Dense) for s in loops.body)
    kernels = [(SUM_ROWS, True)]
    if any(isinstance(s, (Dense, Conv)) for s in loops.body):
        kernels.append((_with_tiles(DENSE, DENSE_VECTOR_TILE, ((16, 1), (4, 1))).replace(
            '%(dense_once)s', DENSE_ONCE if once else ''), once))
    if loops.outers:
        kernels.append((_with_tiles(OUTER_ALL, OUTER_ALL_TILE, OUTER_TILES) + OUTER, once))
    if any(isinstance(s, Conv) for s in loops.body):
        kernels.append((CONV, False))
    if any(isinstance(s, Corr) for s in loops.body):
        kernels.append((CORR, False))
    if any(isinstance(s, Gather) for s in loops.body):
        kernels.append((PREFETCH % {'ahead': AHEAD} + GATHER, False))
    return kernels, once


def _code(loops, threads, once):
    """Everything after the kernels: the chunk's statements, the tables, the entry points."""
    name = loops.name
    entry = _sum(loops, name) if threads == 1 else \
        _sum(loops, name, f'static void {name}_sum_one') + _threaded_sum(loops, name, threads)
    maps = sum(1 for s in loops.body if isinstance(s, Map))
    table = _Tables(loops, name) if maps > MAP_TABLE_LIMIT else None
    chunk = _chunk_function(loops, name, table, once)
    n_slots = loops.n_slots + (len(table.constants) if table else 0)
    return (chunk + _output_tables(loops, name) + _metadata(loops, name, n_slots) + entry +
            _batch(loops, name))


def to_c(loops, threads=1):
    """The C source of a Loops program (see `codegen.loops.lower`); threads > 1 splits the
    batch sum between threads with OpenMP (compile with -fopenmp), with the same bits."""
    check(loops)
    kernels, once = _kernels(loops, threads)
    return (_header(loops) + DEFINITIONS % {'chunk': chunk_rows(loops)} + LINE_START +
            ''.join(text for text, _ in kernels) + '\n' + _code(loops, threads, once))
