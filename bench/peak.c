/* Floating-point peak of this machine, for bench/run.py: many independent multiply-add chains
 * (no memory traffic), timed on 1..T threads.
 *
 *   cc -O3 -march=native -ffp-contract=fast -pthread peak.c -o peak   vector FMA (AVX2/AVX-512)
 *   cc -O2 -ffp-contract=off -fno-tree-vectorize -DSCALAR -pthread peak.c -o peak_scalar
 *                                     scalar mul then add, as the bit-equal default build runs
 *
 * Usage: peak THREADS [ITERATIONS [RUNS]]. Prints "threads T lanes L gflops G cpus C", the best of RUNS
 * (default 5) runs: on a busy machine the best run is the one that had the cores to itself.
 * A flop is one multiply or one add, so an FMA counts 2.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CHAINS 12
#ifdef SCALAR
typedef double vec;
#define LANES 1
#else
#if defined(__AVX512F__)
#define LANES 8
#elif defined(__AVX__)
#define LANES 4
#else
#define LANES 2
#endif
typedef double vec __attribute__((vector_size(8 * LANES)));
#endif

static long iterations = 20000000;
static double sink[64], cpu_seconds[64];

static double thread_cpu(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

static void *kernel(void *arg) {
  long id = (long)arg, i;
  double cpu_start = thread_cpu();
  vec acc[CHAINS], m, c;
  int k;
  m = (vec){0} + 0.999999999;  /* a broadcast, for vectors and scalars alike */
  c = (vec){0} + 1e-9;
  for (k = 0; k < CHAINS; k++) acc[k] = (vec){0} + (double)(k + 1 + id);
  for (i = 0; i < iterations; i++) {
    /* written out, so that every chain stays in a register even at -O2 */
#define CHAIN(k) acc[k] = acc[k] * m + c;
    CHAIN(0) CHAIN(1) CHAIN(2) CHAIN(3) CHAIN(4) CHAIN(5)
    CHAIN(6) CHAIN(7) CHAIN(8) CHAIN(9) CHAIN(10) CHAIN(11)
    __asm__ volatile("" : "+x"(m));  /* keep m opaque so the loop is not folded */
  }
  double s = 0.0;
  for (k = 0; k < CHAINS; k++) {
#ifdef SCALAR
    s += acc[k];
#else
    int l;
    for (l = 0; l < LANES; l++) s += acc[k][l];
#endif
  }
  sink[id] = s;
  cpu_seconds[id] = thread_cpu() - cpu_start;
  return NULL;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1, runs = argc > 3 ? atoi(argv[3]) : 5, run, t;
  pthread_t tid[64];
  double best = 0.0, best_cpu = 0.0;
  if (argc > 2) iterations = atol(argv[2]);
  if (threads < 1 || threads > 64) return 2;
  for (run = 0; run < runs; run++) {
    double start = now(), seconds, gflops;
    for (t = 0; t < threads; t++) pthread_create(&tid[t], NULL, kernel, (void *)(long)t);
    for (t = 0; t < threads; t++) pthread_join(tid[t], NULL);
    seconds = now() - start;
    gflops = 2.0 * CHAINS * LANES * (double)iterations * threads / seconds / 1e9;
    if (gflops > best) {
      best = gflops;
      for (best_cpu = 0.0, t = 0; t < threads; t++) best_cpu += cpu_seconds[t] / seconds;
    }
  }
  /* cpus: CPU time of the threads / wall time in the best run. Near THREADS with no speed-up
   * means the threads shared one core's FMA units (e.g. two SMT siblings of one core). */
  printf("threads %d lanes %d gflops %.3f cpus %.2f check %g\n", threads, LANES, best, best_cpu,
         sink[0]);
  return 0;
}
