/* sim_rng.c - per-provider id streams over cm_rand. */
#include "sim_rng.h"

#include <assert.h>
#include <string.h>

void sim_rng_init(sim_rng_t *r, uint64_t seed, uint64_t stream)
{
    /* The stream number goes through the generator once before it is mixed in, so that
     * stream s of seed n and stream s+1 of seed n-1 do not coincide. */
    cm_rand_t salt;
    cm_rand_seed(&salt, stream);
    cm_rand_seed(&r->_gen, seed ^ cm_rand_next(&salt));
    pthread_mutex_init(&r->_mu, NULL);
}

void sim_rng_destroy(sim_rng_t *r)
{
    pthread_mutex_destroy(&r->_mu);
}

void sim_rng_hex(sim_rng_t *r, char *out, size_t n)
{
    sim_rng_chars(r, "0123456789abcdef", out, n);
}

void sim_rng_chars(sim_rng_t *r, const char *alphabet, char *out, size_t n)
{
    size_t na = strlen(alphabet);
    assert(na >= 2);
    pthread_mutex_lock(&r->_mu);
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[cm_rand_below(&r->_gen, na)];
    pthread_mutex_unlock(&r->_mu);
    out[n] = '\0';
}
