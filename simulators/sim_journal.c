/* sim_journal.c - ring buffer of exchanges and the effects ledger. */
#include "sim_journal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_clock.h"
#include "cm_codec.h"
#include "cm_json.h"
#include "sim_http.h"

/* A stored record: the strings live in one allocation after the struct would be neater,
 * but separate strdup's keep the code obvious and the journal is not on a hot path that
 * matters next to the HTTP exchange itself. */
typedef struct {
    int64_t seq;
    sim_journal_kind_t kind;
    char provider[16];
    char method[12];
    char *path;
    char *query;
    char *headers; /* compact JSON object text, or NULL */
    char digest[65];
    size_t body_len;
    char *fault;
    int status;
    char *outcome;
    int64_t at_ms;
    double duration_ms;
    char *delivery_id;
    char *event;
    int attempt;
} entry_t;

struct sim_journal {
    pthread_mutex_t mu;
    pthread_cond_t added; /* broadcast on every record, for sim_journal_wait */
    entry_t *ring;
    size_t cap, head, len; /* head: index of the oldest */
    int64_t next_seq;
    int64_t dropped;
    json_t *effects; /* array */
    int64_t effects_dropped;
    int64_t next_effect_seq;
};

static void entry_clear(entry_t *e)
{
    free(e->path);
    free(e->query);
    free(e->headers);
    free(e->fault);
    free(e->outcome);
    free(e->delivery_id);
    free(e->event);
    memset(e, 0, sizeof *e);
}

sim_journal_t *sim_journal_new(size_t capacity)
{
    sim_journal_t *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->cap = capacity ? capacity : SIM_JOURNAL_DEFAULT_CAPACITY;
    j->ring = calloc(j->cap, sizeof *j->ring);
    j->effects = json_array();
    j->next_seq = 1;
    j->next_effect_seq = 1;
    pthread_mutex_init(&j->mu, NULL);
    cm_clock_cond_init(&j->added);
    if (!j->ring || !j->effects)
        sim_journal_free(&j);
    return j;
}

void sim_journal_free(sim_journal_t **jp)
{
    sim_journal_t *j = jp ? *jp : NULL;
    if (!j)
        return;
    if (j->ring)
        for (size_t i = 0; i < j->cap; i++)
            entry_clear(&j->ring[i]);
    free(j->ring);
    json_decref(j->effects);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->added);
    free(j);
    *jp = NULL;
}

void sim_journal_digest(const void *body, size_t len, char out[65])
{
    uint8_t d[CM_SHA256_LEN];
    cm_sha256(body, len, d);
    cm_hex_encode(d, sizeof d, out);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

void sim_journal_add(sim_journal_t *j, const sim_journal_rec_t *r)
{
    entry_t e = {.kind = r->kind,
                 .status = r->status,
                 .at_ms = r->at_ms,
                 .duration_ms = r->duration_ms,
                 .attempt = r->attempt,
                 .body_len = r->body_len};
    snprintf(e.provider, sizeof e.provider, "%s", r->provider ? r->provider : "");
    snprintf(e.method, sizeof e.method, "%s", r->method ? r->method : "");
    /* Digest and copies are made outside the lock: the lock only swaps a slot. */
    sim_journal_digest(r->body ? r->body : "", r->body ? r->body_len : 0, e.digest);
    e.path = dup_or_null(r->path ? r->path : "");
    e.query = dup_or_null(r->query && *r->query ? r->query : NULL);
    e.headers = r->headers_json ? strdup(r->headers_json)
                : r->headers && json_object_size(r->headers)
                    ? json_dumps(r->headers, JSON_COMPACT | JSON_SORT_KEYS)
                    : NULL;
    e.fault = dup_or_null(r->fault);
    e.outcome = dup_or_null(r->outcome ? r->outcome : "answered");
    e.delivery_id = dup_or_null(r->delivery_id);
    e.event = dup_or_null(r->event);
    pthread_mutex_lock(&j->mu);
    if (!e.path || !e.outcome) {
        j->dropped++;
        pthread_mutex_unlock(&j->mu);
        entry_clear(&e);
        return;
    }
    e.seq = j->next_seq++;
    entry_t old = {0};
    size_t slot;
    if (j->len == j->cap) {
        slot = j->head;
        old = j->ring[slot];
        j->head = (j->head + 1) % j->cap;
        j->dropped++;
    } else {
        slot = (j->head + j->len) % j->cap;
        j->len++;
    }
    j->ring[slot] = e;
    pthread_cond_broadcast(&j->added);
    pthread_mutex_unlock(&j->mu);
    entry_clear(&old);
}

static json_t *entry_json(const entry_t *e)
{
    char at[25];
    json_t *h = e->headers ? json_loads(e->headers, 0, NULL) : json_object();
    json_t *v = json_pack(
        "{s:I,s:s,s:s,s:I,s:s,s:s,s:s,s:o,s:s,s:I,s:o,s:o,s:s,s:f}", "seq", (json_int_t)e->seq,
        "kind", e->kind == SIM_JOURNAL_DELIVERY ? "delivery" : "request", "at",
        cm_clock_iso8601(e->at_ms, at), "at_ms", (json_int_t)e->at_ms, "provider", e->provider,
        "method", e->method, e->kind == SIM_JOURNAL_DELIVERY ? "url" : "path", e->path, "headers",
        h ? h : json_object(), "body_sha256", e->digest, "body_len", (json_int_t)e->body_len,
        "fault", e->fault ? sim_http_str(e->fault) : json_null(), "status",
        e->status ? json_integer(e->status) : json_null(), "outcome", e->outcome, "duration_ms",
        e->duration_ms);
    if (v && e->query)
        json_object_set_new(v, "query", sim_http_str(e->query));
    if (v && e->kind == SIM_JOURNAL_DELIVERY) {
        if (e->delivery_id)
            json_object_set_new(v, "delivery_id", json_string(e->delivery_id));
        if (e->event)
            json_object_set_new(v, "event", json_string(e->event));
        json_object_set_new(v, "attempt", json_integer(e->attempt));
    }
    return v;
}

static int entry_matches(const entry_t *e, const sim_journal_filter_t *f)
{
    if (e->seq <= f->since)
        return 0;
    if (f->kind >= 0 && (int)e->kind != f->kind)
        return 0;
    if (f->provider && *f->provider && strcmp(f->provider, e->provider) != 0)
        return 0;
    if (f->route && *f->route) {
        /* Deliveries are matched on their URL's path. */
        const char *p = e->path;
        if (e->kind == SIM_JOURNAL_DELIVERY) {
            const char *s = strstr(p, "://");
            p = s ? strchr(s + 3, '/') : p;
            if (!p)
                p = "/";
        }
        char path[1024];
        snprintf(path, sizeof path, "%.*s", (int)strcspn(p, "?"), p);
        if (!sim_http_route_match(f->route, e->method, path))
            return 0;
    }
    return 1;
}

static int by_start_cmp(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    json_int_t xa = json_integer_value(json_object_get(x, "at_ms"));
    json_int_t ya = json_integer_value(json_object_get(y, "at_ms"));
    if (xa != ya)
        return xa < ya ? -1 : 1;
    json_int_t xs = json_integer_value(json_object_get(x, "seq"));
    json_int_t ys = json_integer_value(json_object_get(y, "seq"));
    return xs < ys ? -1 : xs > ys;
}

/* Reorders list (records as JSON) by start time, then seq, and keeps the first limit.
 * -1 when out of memory (list is then left as it was). */
static int order_by_start(json_t *list, size_t limit)
{
    size_t n = json_array_size(list);
    json_t **a = malloc((n ? n : 1) * sizeof *a);
    if (!a)
        return -1;
    for (size_t i = 0; i < n; i++)
        a[i] = json_incref(json_array_get(list, i));
    qsort(a, n, sizeof *a, by_start_cmp);
    json_array_clear(list);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (!rc && i < limit && json_array_append(list, a[i]) != 0)
            rc = -1;
        json_decref(a[i]);
    }
    free(a);
    return rc;
}

json_t *sim_journal_query(sim_journal_t *j, const sim_journal_filter_t *f)
{
    size_t limit = f->limit ? f->limit : 1000;
    json_t *list = json_array();
    if (!list)
        return NULL;
    pthread_mutex_lock(&j->mu);
    /* by_start orders every match before the limit applies; sorted outside the lock. */
    for (size_t i = 0; i < j->len && (f->by_start || json_array_size(list) < limit); i++) {
        const entry_t *e = &j->ring[(j->head + i) % j->cap];
        if (!entry_matches(e, f))
            continue;
        json_t *v = entry_json(e);
        if (!v || json_array_append_new(list, v)) {
            pthread_mutex_unlock(&j->mu);
            json_decref(list);
            return NULL;
        }
    }
    int64_t dropped = j->dropped, last = j->next_seq - 1;
    pthread_mutex_unlock(&j->mu);
    if (f->by_start && order_by_start(list, limit) != 0) {
        json_decref(list);
        return NULL;
    }
    return json_pack("{s:I,s:I,s:I,s:o}", "count", (json_int_t)json_array_size(list), "dropped",
                     (json_int_t)dropped, "last_seq", (json_int_t)last, "entries", list);
}

size_t sim_journal_wait(sim_journal_t *j, const sim_journal_filter_t *f, size_t n,
                        int64_t timeout_ms)
{
    struct timespec until = cm_clock_mono_deadline(timeout_ms);
    size_t have = 0;
    pthread_mutex_lock(&j->mu);
    for (;;) {
        have = 0;
        for (size_t i = 0; i < j->len; i++)
            have += (size_t)entry_matches(&j->ring[(j->head + i) % j->cap], f);
        if (have >= n || pthread_cond_timedwait(&j->added, &j->mu, &until) != 0)
            break;
    }
    pthread_mutex_unlock(&j->mu);
    return have;
}

void sim_journal_effect(sim_journal_t *j, const char *provider, const char *kind,
                        const char *object_id, const char *idempotency_key, const char *request_id,
                        const json_t *detail)
{
    if (!j)
        return;
    char at[25];
    int64_t now = cm_clock_now_ms();
    json_t *v = json_pack("{s:s,s:s,s:s,s:s,s:I,s:o,s:o}", "provider", provider, "kind", kind,
                          "object_id", object_id ? object_id : "", "at", cm_clock_iso8601(now, at),
                          "at_ms", (json_int_t)now, "idempotency_key",
                          idempotency_key ? sim_http_str(idempotency_key) : json_null(),
                          "request_id", request_id ? json_string(request_id) : json_null());
    if (v && json_is_object(detail))
        json_object_update_missing(v, (json_t *)detail);
    pthread_mutex_lock(&j->mu);
    if (!v || json_array_size(j->effects) >= SIM_JOURNAL_MAX_EFFECTS) {
        j->effects_dropped++;
    } else {
        json_object_set_new(v, "seq", json_integer(j->next_effect_seq++));
        if (json_array_append(j->effects, v))
            j->effects_dropped++;
    }
    pthread_mutex_unlock(&j->mu);
    json_decref(v);
}

json_t *sim_journal_effects(sim_journal_t *j, const char *provider, const char *kind)
{
    json_t *list = json_array();
    if (!list)
        return NULL;
    pthread_mutex_lock(&j->mu);
    size_t i;
    json_t *v;
    json_array_foreach(j->effects, i, v)
    {
        if (provider && *provider && strcmp(provider, cm_json_str(v, "provider", "")) != 0)
            continue;
        if (kind && *kind && strcmp(kind, cm_json_str(v, "kind", "")) != 0)
            continue;
        json_array_append_new(list, json_deep_copy(v));
    }
    int64_t dropped = j->effects_dropped;
    pthread_mutex_unlock(&j->mu);
    return json_pack("{s:I,s:I,s:o}", "count", (json_int_t)json_array_size(list), "dropped",
                     (json_int_t)dropped, "effects", list);
}

void sim_journal_clear(sim_journal_t *j)
{
    pthread_mutex_lock(&j->mu);
    for (size_t i = 0; i < j->cap; i++)
        entry_clear(&j->ring[i]);
    j->head = j->len = 0;
    j->dropped = 0;
    json_array_clear(j->effects);
    j->effects_dropped = 0;
    pthread_mutex_unlock(&j->mu);
}
