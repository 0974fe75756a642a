/* test_gw_slotcache.c - TTL, invalidation, epoch guard, bounds, threads. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_slotcache.h"

#define DAY "2050-09-05"
#define SLOTS "{\"2050-09-05\":[{\"start\":\"2050-09-05T09:00:00.000Z\"}]}"

static gw_slotcache_t *make(int64_t ttl, size_t entries)
{
    gw_slotcache_t *c = NULL;
    cr_assert_eq(gw_slotcache_new(ttl, entries, 4096, &c), CM_OK);
    return c;
}

static void put(gw_slotcache_t *c, const char *key, int64_t et, const char *day, const char *v,
                int64_t now)
{
    cr_assert_eq(gw_slotcache_put(c, key, et, day, v, strlen(v), gw_slotcache_epoch(c), now),
                 CM_OK);
}

/* 1 on a hit whose value equals want (when want is not NULL), 0 on a miss. */
static int hit(gw_slotcache_t *c, const char *key, int64_t et, const char *day, int64_t now,
               const char *want)
{
    char *v = NULL;
    size_t len = 99;
    cm_err_t rc = gw_slotcache_get(c, key, et, day, now, &v, &len);
    if (rc == CM_ENOTFOUND) {
        cr_assert_null(v);
        cr_assert_eq(len, 0);
        return 0;
    }
    cr_assert_eq(rc, CM_OK);
    if (want) {
        cr_assert_str_eq(v, want);
        cr_assert_eq(len, strlen(want));
    }
    free(v);
    return 1;
}

Test(slotcache, day_and_arguments)
{
    char d[11];
    cr_assert_str_eq(gw_slotcache_day(2545974000000LL, d), "2050-09-05");
    gw_slotcache_t *c = NULL;
    cr_assert_eq(gw_slotcache_new(-1, 1, 1, &c), CM_EINVAL);
    cr_assert_eq(gw_slotcache_new(1, 0, 1, &c), CM_EINVAL);
    cr_assert_null(c);
    c = make(60000, 4);
    cr_assert_eq(gw_slotcache_put(c, "k", 1, "2050-9-5", "{}", 2, gw_slotcache_epoch(c), 0),
                 CM_EINVAL);
    cr_assert_eq(gw_slotcache_put(c, NULL, 1, DAY, "{}", 2, gw_slotcache_epoch(c), 0), CM_EINVAL);
    char big[5000];
    memset(big, ' ', sizeof big);
    cr_assert_eq(gw_slotcache_put(c, "k", 1, DAY, big, sizeof big, gw_slotcache_epoch(c), 0),
                 CM_ETOOBIG);
    gw_slotcache_free(&c);
    cr_assert_null(c);
    gw_slotcache_free(&c);
}

Test(slotcache, hit_until_the_ttl_then_miss)
{
    gw_slotcache_t *c = make(60000, 8);
    cr_assert_eq(hit(c, "cal_a", 101, DAY, 0, NULL), 0);
    put(c, "cal_a", 101, DAY, SLOTS, 1000);
    cr_assert_eq(hit(c, "cal_a", 101, DAY, 1000, SLOTS), 1);
    cr_assert_eq(hit(c, "cal_a", 101, DAY, 60999, SLOTS), 1);
    cr_assert_eq(hit(c, "cal_a", 101, DAY, 61000, NULL), 0);
    /* Every part of the key counts. */
    put(c, "cal_a", 101, DAY, SLOTS, 70000);
    cr_assert_eq(hit(c, "cal_b", 101, DAY, 70000, NULL), 0);
    cr_assert_eq(hit(c, "cal_a", 102, DAY, 70000, NULL), 0);
    cr_assert_eq(hit(c, "cal_a", 101, "2050-09-06", 70000, NULL), 0);
    /* A newer answer replaces the older one and restarts its TTL. */
    put(c, "cal_a", 101, DAY, "{}", 100000);
    cr_assert_eq(hit(c, "cal_a", 101, DAY, 159999, "{}"), 1);
    gw_slotcache_stats_t s;
    gw_slotcache_stats(c, &s);
    cr_assert_eq(s.entries, 1);
    cr_assert_eq(s.hits, 3);
    cr_assert_eq(s.misses, 5);
    cr_assert_eq(s.expired, 1);
    gw_slotcache_free(&c);
}

Test(slotcache, zero_ttl_caches_nothing)
{
    gw_slotcache_t *c = make(0, 8);
    put(c, "k", 1, DAY, SLOTS, 0);
    cr_assert_eq(hit(c, "k", 1, DAY, 0, NULL), 0);
    gw_slotcache_free(&c);
}

Test(slotcache, invalidate_by_event_type_and_all)
{
    gw_slotcache_t *c = make(60000, 16);
    put(c, "cal_a", 101, DAY, SLOTS, 0);
    put(c, "cal_a", 101, "2050-09-06", SLOTS, 0);
    put(c, "cal_b", 101, DAY, SLOTS, 0);
    put(c, "cal_a", 102, DAY, SLOTS, 0);
    cr_assert_eq(gw_slotcache_invalidate_event_type(c, "cal_a", 101), 2);
    cr_assert_eq(hit(c, "cal_a", 101, DAY, 1, NULL), 0);
    cr_assert_eq(hit(c, "cal_b", 101, DAY, 1, NULL), 1);
    put(c, "cal_a", 101, DAY, SLOTS, 2);
    cr_assert_eq(gw_slotcache_invalidate_event_type(c, NULL, 101), 2); /* every key */
    cr_assert_eq(hit(c, "cal_b", 101, DAY, 3, NULL), 0);
    cr_assert_eq(hit(c, "cal_a", 102, DAY, 3, NULL), 1);
    cr_assert_eq(gw_slotcache_invalidate_all(c), 1);
    cr_assert_eq(hit(c, "cal_a", 102, DAY, 3, NULL), 0);
    gw_slotcache_stats_t s;
    gw_slotcache_stats(c, &s);
    cr_assert_eq(s.entries, 0);
    cr_assert_eq(s.invalidated, 5);
    gw_slotcache_free(&c);
}

Test(slotcache, a_fetch_that_straddles_an_invalidation_is_not_stored)
{
    gw_slotcache_t *c = make(60000, 8);
    uint64_t epoch = gw_slotcache_epoch(c);           /* miss, start fetching */
    gw_slotcache_invalidate_event_type(c, NULL, 101); /* a BOOKING_CREATED webhook lands */
    cr_assert_eq(gw_slotcache_put(c, "cal_a", 101, DAY, SLOTS, strlen(SLOTS), epoch, 5), CM_ESTATE);
    cr_assert_eq(hit(c, "cal_a", 101, DAY, 6, NULL), 0);
    gw_slotcache_stats_t s;
    gw_slotcache_stats(c, &s);
    cr_assert_eq(s.stale_puts, 1);
    gw_slotcache_free(&c);
}

Test(slotcache, bounded_size_drops_expired_first_then_lru)
{
    gw_slotcache_t *c = make(1000, 3);
    put(c, "k", 1, DAY, "1", 0);                     /* expires at 1000 */
    put(c, "k", 2, DAY, "2", 500);                   /* 1500 */
    put(c, "k", 3, DAY, "3", 600);                   /* 1600 */
    cr_assert_eq(hit(c, "k", 2, DAY, 1100, "2"), 1); /* 2 is now the most recently used */
    put(c, "k", 4, DAY, "4", 1100);                  /* 1 has expired: it goes, no eviction */
    gw_slotcache_stats_t s;
    gw_slotcache_stats(c, &s);
    cr_assert_eq(s.evicted, 0);
    cr_assert_eq(s.expired, 1);
    put(c, "k", 5, DAY, "5", 1200); /* full, none expired: LRU is 3 */
    cr_assert_eq(hit(c, "k", 3, DAY, 1200, NULL), 0);
    cr_assert_eq(hit(c, "k", 2, DAY, 1200, "2"), 1);
    cr_assert_eq(hit(c, "k", 4, DAY, 1200, "4"), 1);
    cr_assert_eq(hit(c, "k", 5, DAY, 1200, "5"), 1);
    gw_slotcache_stats(c, &s);
    cr_assert_eq(s.evicted, 1);
    cr_assert_eq(s.entries, 3);
    gw_slotcache_free(&c);
}

typedef struct {
    gw_slotcache_t *c;
    int id;
} th_t;

static void *churn(void *arg)
{
    th_t *t = arg;
    char key[16], val[64];
    snprintf(key, sizeof key, "key%d", t->id % 3);
    for (int i = 0; i < 3000; i++) {
        int64_t et = 100 + i % 7;
        snprintf(val, sizeof val, "{\"t\":%d,\"i\":%d}", t->id, i);
        uint64_t ep = gw_slotcache_epoch(t->c);
        cm_err_t rc = gw_slotcache_put(t->c, key, et, DAY, val, strlen(val), ep, i);
        cr_assert(rc == CM_OK || rc == CM_ESTATE);
        char *v;
        size_t len;
        if (gw_slotcache_get(t->c, key, et, DAY, i, &v, &len) == CM_OK) {
            cr_assert_eq(strlen(v), len);
            cr_assert_eq(v[0], '{');
            free(v);
        }
        if (i % 97 == 0)
            gw_slotcache_invalidate_event_type(t->c, NULL, et);
    }
    return NULL;
}

Test(slotcache, threads_keep_it_consistent)
{
    gw_slotcache_t *c = make(60000, 10);
    enum { N = 6 };
    pthread_t th[N];
    th_t t[N];
    for (int i = 0; i < N; i++) {
        t[i] = (th_t){.c = c, .id = i};
        pthread_create(&th[i], NULL, churn, &t[i]);
    }
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    gw_slotcache_stats_t s;
    gw_slotcache_stats(c, &s);
    cr_assert_leq(s.entries, 10);
    /* entries is kept incrementally: it must equal what a full invalidation finds. */
    cr_assert_eq(gw_slotcache_invalidate_all(c), s.entries);
    gw_slotcache_free(&c);
}
