/* cm_rand.h - small seeded pseudo-random generator (splitmix64) for reproducible choices:
 * jitter, fault probabilities, generated ids. Not for secrets (use cm_random_bytes).
 *
 * A generator is a plain value owned by its user; it is not thread-safe, so each thread
 * keeps its own or guards a shared one with a lock. The same seed always gives the same
 * sequence, on every machine.
 */
#ifndef CM_RAND_H
#define CM_RAND_H

#include <stdint.h>

typedef struct {
    uint64_t state;
} cm_rand_t;

void cm_rand_seed(cm_rand_t *r, uint64_t seed);
uint64_t cm_rand_next(cm_rand_t *r);
/* Uniform in [0, n) without modulo bias; 0 when n is 0. */
uint64_t cm_rand_below(cm_rand_t *r, uint64_t n);
/* Uniform double in [0, 1). */
double cm_rand_unit(cm_rand_t *r);

#endif
