/* sim_rng.h - seeded, reproducible identifier streams for the simulators.
 *
 * Simulated ids (Retell call ids, Cal.com uids, Stripe object ids) must repeat from run
 * to run with the same --seed, so scenarios and their reports are comparable; they are
 * not secrets, so the shared seeded generator (cm_rand, splitmix64) is right here and
 * cm_random_bytes is not. Each provider owns its own stream (the seed mixed with a
 * stream number), so the ids one provider hands out do not depend on how many another
 * has handed out.
 *
 * A stream is never rewound (not even by POST /control/reset): a gateway that outlives
 * a reset must never see an old id again and take a fresh event for a duplicate.
 * init/destroy are not thread-safe; every other function is (one lock per stream).
 */
#ifndef SIM_RNG_H
#define SIM_RNG_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "cm_rand.h"

typedef struct {
    /* private */
    pthread_mutex_t _mu;
    cm_rand_t _gen;
} sim_rng_t;

/* Initialises r for (seed, stream). */
void sim_rng_init(sim_rng_t *r, uint64_t seed, uint64_t stream);
void sim_rng_destroy(sim_rng_t *r);

/* Writes n lowercase hex digits and a NUL into out (n + 1 bytes). */
void sim_rng_hex(sim_rng_t *r, char *out, size_t n);

/* Writes n characters drawn uniformly from alphabet (NUL-terminated, at least 2
 * characters) and a NUL into out (n + 1 bytes). */
void sim_rng_chars(sim_rng_t *r, const char *alphabet, char *out, size_t n);

#endif
