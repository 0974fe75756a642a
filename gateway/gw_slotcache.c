/* gw_slotcache.c - bounded TTL cache of slot answers with epoch-guarded invalidation. */
#include "gw_slotcache.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_clock.h"

typedef struct {
    char *api_key; /* NULL: the slot is free */
    int64_t event_type_id;
    char day[11];
    char *json;
    size_t len;
    int64_t expires_ms;
    uint64_t used; /* LRU stamp */
} entry_t;

struct gw_slotcache {
    pthread_mutex_t mu;
    int64_t ttl_ms;
    size_t max_value;
    entry_t *e;
    size_t cap;
    uint64_t clock, epoch;
    gw_slotcache_stats_t st;
};

cm_err_t gw_slotcache_new(int64_t ttl_ms, size_t max_entries, size_t max_value,
                          gw_slotcache_t **out)
{
    if (ttl_ms < 0 || max_entries < 1 || max_entries > 1000000 || max_value < 1)
        return CM_EINVAL;
    gw_slotcache_t *c = calloc(1, sizeof *c);
    if (!c)
        return CM_ENOMEM;
    c->e = calloc(max_entries, sizeof *c->e);
    if (!c->e || pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c->e);
        free(c);
        return CM_ENOMEM;
    }
    c->ttl_ms = ttl_ms;
    c->max_value = max_value;
    c->cap = max_entries;
    *out = c;
    return CM_OK;
}

static void drop(entry_t *e)
{
    free(e->api_key);
    free(e->json);
    *e = (entry_t){0};
}

void gw_slotcache_free(gw_slotcache_t **c)
{
    if (!c || !*c)
        return;
    for (size_t i = 0; i < (*c)->cap; i++)
        drop(&(*c)->e[i]);
    pthread_mutex_destroy(&(*c)->mu);
    free((*c)->e);
    free(*c);
    *c = NULL;
}

char *gw_slotcache_day(int64_t epoch_ms, char out[11])
{
    char iso[25];
    cm_clock_iso8601(epoch_ms, iso);
    memcpy(out, iso, 10);
    out[10] = '\0';
    return out;
}

static int valid_day(const char *d)
{
    static const char pat[] = "dddd-dd-dd";
    if (!d || strlen(d) != 10)
        return 0;
    for (int i = 0; i < 10; i++)
        if (pat[i] == 'd' ? !isdigit((unsigned char)d[i]) : d[i] != '-')
            return 0;
    return 1;
}

uint64_t gw_slotcache_epoch(gw_slotcache_t *c)
{
    pthread_mutex_lock(&c->mu);
    uint64_t e = c->epoch;
    pthread_mutex_unlock(&c->mu);
    return e;
}

/* A linear scan: the cache holds a few hundred entries at most (tenants x event types x
 * days asked about in one minute), and the scan is cheaper than the HTTP call it saves. */
static entry_t *lookup(gw_slotcache_t *c, const char *api_key, int64_t et, const char *day)
{
    for (size_t i = 0; i < c->cap; i++) {
        entry_t *e = &c->e[i];
        if (e->api_key && e->event_type_id == et && strcmp(e->day, day) == 0 &&
            strcmp(e->api_key, api_key) == 0)
            return e;
    }
    return NULL;
}

/* A slot for a new entry: a free one, else an expired one, else the least recently used. */
static entry_t *victim(gw_slotcache_t *c, int64_t now_ms)
{
    entry_t *lru = NULL;
    for (size_t i = 0; i < c->cap; i++) {
        entry_t *e = &c->e[i];
        if (!e->api_key)
            return e;
        if (now_ms >= e->expires_ms) {
            c->st.expired++;
            c->st.entries--;
            drop(e);
            return e;
        }
        if (!lru || e->used < lru->used)
            lru = e;
    }
    c->st.evicted++;
    c->st.entries--;
    drop(lru);
    return lru;
}

cm_err_t gw_slotcache_put(gw_slotcache_t *c, const char *api_key, int64_t event_type_id,
                          const char *day, const char *json, size_t len, uint64_t epoch,
                          int64_t now_ms)
{
    if (!api_key || !json || !valid_day(day))
        return CM_EINVAL;
    if (len > c->max_value)
        return CM_ETOOBIG;
    cm_err_t rc = CM_OK;
    /* Copies are made before taking the lock, so the lock is never held across malloc. */
    char *k = strdup(api_key);
    char *v = malloc(len + 1);
    if (!k || !v) {
        free(k);
        free(v);
        return CM_ENOMEM;
    }
    memcpy(v, json, len);
    v[len] = '\0';
    pthread_mutex_lock(&c->mu);
    if (epoch != c->epoch) {
        c->st.stale_puts++;
        rc = CM_ESTATE;
    } else if (c->ttl_ms > 0) {
        entry_t *e = lookup(c, api_key, event_type_id, day);
        if (e) {
            drop(e);
            c->st.entries--;
        } else
            e = victim(c, now_ms);
        *e = (entry_t){.api_key = k,
                       .event_type_id = event_type_id,
                       .json = v,
                       .len = len,
                       .expires_ms = now_ms + c->ttl_ms,
                       .used = ++c->clock};
        memcpy(e->day, day, 11);
        c->st.entries++;
        k = v = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    free(k);
    free(v);
    return rc;
}

cm_err_t gw_slotcache_get(gw_slotcache_t *c, const char *api_key, int64_t event_type_id,
                          const char *day, int64_t now_ms, char **json, size_t *len)
{
    cm_err_t rc = CM_ENOTFOUND;
    *json = NULL;
    *len = 0;
    if (!api_key || !valid_day(day))
        return CM_ENOTFOUND;
    pthread_mutex_lock(&c->mu);
    entry_t *e = lookup(c, api_key, event_type_id, day);
    if (e && now_ms >= e->expires_ms) {
        c->st.expired++;
        c->st.entries--;
        drop(e);
        e = NULL;
    }
    if (!e) {
        c->st.misses++;
    } else if (!(*json = malloc(e->len + 1))) {
        rc = CM_ENOMEM;
    } else {
        memcpy(*json, e->json, e->len + 1);
        *len = e->len;
        e->used = ++c->clock;
        c->st.hits++;
        rc = CM_OK;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

size_t gw_slotcache_invalidate_event_type(gw_slotcache_t *c, const char *api_key,
                                          int64_t event_type_id)
{
    size_t n = 0;
    pthread_mutex_lock(&c->mu);
    c->epoch++;
    for (size_t i = 0; i < c->cap; i++) {
        entry_t *e = &c->e[i];
        if (e->api_key && e->event_type_id == event_type_id &&
            (!api_key || strcmp(e->api_key, api_key) == 0)) {
            drop(e);
            n++;
        }
    }
    c->st.entries -= n;
    c->st.invalidated += n;
    pthread_mutex_unlock(&c->mu);
    return n;
}

size_t gw_slotcache_invalidate_all(gw_slotcache_t *c)
{
    size_t n = 0;
    pthread_mutex_lock(&c->mu);
    c->epoch++;
    for (size_t i = 0; i < c->cap; i++)
        if (c->e[i].api_key) {
            drop(&c->e[i]);
            n++;
        }
    c->st.entries = 0;
    c->st.invalidated += n;
    pthread_mutex_unlock(&c->mu);
    return n;
}

void gw_slotcache_stats(gw_slotcache_t *c, gw_slotcache_stats_t *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->st;
    pthread_mutex_unlock(&c->mu);
}
