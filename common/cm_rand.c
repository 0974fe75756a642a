/* cm_rand.c - splitmix64 (Steele, Lea, Flood 2014): tiny state, passes BigCrush, and any
 * seed (including 0) is fine, so seeds from scenario files need no conditioning. */
#include "cm_rand.h"

void cm_rand_seed(cm_rand_t *r, uint64_t seed)
{
    r->state = seed;
}

uint64_t cm_rand_next(cm_rand_t *r)
{
    uint64_t z = (r->state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t cm_rand_below(cm_rand_t *r, uint64_t n)
{
    if (n == 0)
        return 0;
    /* Rejection sampling: drop the top partial range so every value is equally likely. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do {
        x = cm_rand_next(r);
    } while (x >= limit);
    return x % n;
}

double cm_rand_unit(cm_rand_t *r)
{
    return (double)(cm_rand_next(r) >> 11) * 0x1.0p-53;
}
