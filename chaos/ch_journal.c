/* ch_journal.c - the ring of connection events. */
#include "ch_journal.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ch_fault.h"
#include "cm_clock.h"

typedef struct {
    uint64_t seq;
    int64_t at_ms;
    uint64_t conn;
    ch_event_t ev;
    int fault;
    int dir;
    char link[33];
    char detail[CH_JOURNAL_DETAIL_LEN];
    char upstream[CH_JOURNAL_UPSTREAM_LEN]; /* "": none */
} entry_t;

struct ch_journal {
    pthread_mutex_t mu;
    pthread_cond_t added;
    /* guarded by mu */
    entry_t *ring;
    size_t cap, head, len;
    uint64_t next_seq;
    uint64_t dropped;
};

static const char *const event_names[CH_EV__COUNT] = {
    [CH_EV_OPEN] = "open",       [CH_EV_CLOSE] = "close", [CH_EV_RESET] = "reset",
    [CH_EV_REFUSED] = "refused", [CH_EV_FAULT] = "fault", [CH_EV_UPSTREAM_ERROR] = "upstream_error",
};

const char *ch_event_name(ch_event_t ev)
{
    return (unsigned)ev < CH_EV__COUNT ? event_names[ev] : "?";
}

int ch_event_parse(const char *name)
{
    for (int i = 0; name && i < CH_EV__COUNT; i++)
        if (strcmp(name, event_names[i]) == 0)
            return i;
    return -1;
}

ch_journal_t *ch_journal_new(size_t capacity)
{
    ch_journal_t *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->cap = capacity ? capacity : CH_JOURNAL_DEFAULT_CAPACITY;
    j->ring = calloc(j->cap, sizeof *j->ring);
    if (!j->ring || cm_clock_cond_init(&j->added) != 0) {
        free(j->ring);
        free(j);
        return NULL;
    }
    pthread_mutex_init(&j->mu, NULL);
    j->next_seq = 1;
    return j;
}

void ch_journal_free(ch_journal_t **jp)
{
    ch_journal_t *j = jp ? *jp : NULL;
    if (!j)
        return;
    free(j->ring);
    pthread_cond_destroy(&j->added);
    pthread_mutex_destroy(&j->mu);
    free(j);
    *jp = NULL;
}

static uint64_t add_v(ch_journal_t *j, const char *link, uint64_t conn, ch_event_t ev, int fault,
                      int dir, const char *upstream, const char *fmt, va_list ap)
    __attribute__((format(printf, 8, 0)));

static uint64_t add_v(ch_journal_t *j, const char *link, uint64_t conn, ch_event_t ev, int fault,
                      int dir, const char *upstream, const char *fmt, va_list ap)
{
    entry_t e = {.at_ms = cm_clock_now_ms(), .conn = conn, .ev = ev, .fault = fault, .dir = dir};
    snprintf(e.link, sizeof e.link, "%s", link ? link : "");
    snprintf(e.upstream, sizeof e.upstream, "%s", upstream ? upstream : "");
    if (fmt)
        vsnprintf(e.detail, sizeof e.detail, fmt, ap);
    pthread_mutex_lock(&j->mu);
    e.seq = j->next_seq++;
    size_t slot;
    if (j->len == j->cap) {
        slot = j->head;
        j->head = (j->head + 1) % j->cap;
        j->dropped++;
    } else {
        slot = (j->head + j->len) % j->cap;
        j->len++;
    }
    j->ring[slot] = e;
    pthread_cond_broadcast(&j->added);
    pthread_mutex_unlock(&j->mu);
    return e.seq;
}

uint64_t ch_journal_add(ch_journal_t *j, const char *link, uint64_t conn, ch_event_t ev, int fault,
                        int dir, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    uint64_t seq = add_v(j, link, conn, ev, fault, dir, NULL, fmt, ap);
    va_end(ap);
    return seq;
}

uint64_t ch_journal_add_up(ch_journal_t *j, const char *link, uint64_t conn, ch_event_t ev,
                           int fault, int dir, const char *upstream, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    uint64_t seq = add_v(j, link, conn, ev, fault, dir, upstream, fmt, ap);
    va_end(ap);
    return seq;
}

static int matches(const entry_t *e, const ch_journal_filter_t *f)
{
    return e->seq > f->since && (!f->link || !*f->link || strcmp(f->link, e->link) == 0) &&
           (f->event < 0 || (int)e->ev == f->event) && (!f->conn || f->conn == e->conn);
}

static json_t *entry_json(const entry_t *e)
{
    json_t *v = json_pack(
        "{s:I,s:I,s:s,s:I,s:s,s:o,s:o,s:o,s:s}", "seq", (json_int_t)e->seq, "at_ms",
        (json_int_t)e->at_ms, "link", e->link, "conn", (json_int_t)e->conn, "event",
        ch_event_name(e->ev), "fault",
        e->fault >= 0 ? json_string(ch_fault_type_name((ch_fault_type_t)e->fault)) : json_null(),
        "direction", e->dir ? json_string(ch_dir_name(e->dir)) : json_null(), "upstream",
        e->upstream[0] ? json_string(e->upstream) : json_null(), "detail", e->detail);
    if (!v) {
        /* The detail may quote bytes that are not UTF-8 (a host name); never lose the entry. */
        v = json_pack("{s:I,s:I,s:s,s:I,s:s,s:n,s:n,s:n,s:s}", "seq", (json_int_t)e->seq, "at_ms",
                      (json_int_t)e->at_ms, "link", e->link, "conn", (json_int_t)e->conn, "event",
                      ch_event_name(e->ev), "fault", "direction", "upstream", "detail",
                      "(not UTF-8)");
    }
    return v;
}

json_t *ch_journal_query(ch_journal_t *j, const ch_journal_filter_t *f)
{
    json_t *arr = json_array();
    if (!arr)
        return NULL;
    size_t n = 0;
    int bad = 0;
    pthread_mutex_lock(&j->mu);
    uint64_t last = j->next_seq - 1, last_returned = f->since;
    for (size_t i = 0; i < j->len && !bad; i++) {
        const entry_t *e = &j->ring[(j->head + i) % j->cap];
        if (!matches(e, f))
            continue;
        if (f->limit && n == f->limit) {
            last = last_returned;
            break;
        }
        json_t *v = entry_json(e);
        bad = !v || json_array_append_new(arr, v) != 0;
        last_returned = e->seq;
        n++;
    }
    uint64_t dropped = j->dropped;
    pthread_mutex_unlock(&j->mu);
    if (bad) {
        json_decref(arr);
        return NULL;
    }
    if (last < f->since)
        last = f->since;
    return json_pack("{s:I,s:I,s:I,s:o}", "count", (json_int_t)n, "dropped", (json_int_t)dropped,
                     "last_seq", (json_int_t)last, "entries", arr);
}

static size_t count_locked(ch_journal_t *j, const ch_journal_filter_t *f)
{
    size_t n = 0;
    for (size_t i = 0; i < j->len; i++)
        n += matches(&j->ring[(j->head + i) % j->cap], f);
    return n;
}

size_t ch_journal_count(ch_journal_t *j, const ch_journal_filter_t *f)
{
    pthread_mutex_lock(&j->mu);
    size_t n = count_locked(j, f);
    pthread_mutex_unlock(&j->mu);
    return n;
}

size_t ch_journal_wait(ch_journal_t *j, const ch_journal_filter_t *f, size_t n, int64_t timeout_ms)
{
    struct timespec ts = cm_clock_mono_deadline(timeout_ms);
    pthread_mutex_lock(&j->mu);
    size_t got;
    while ((got = count_locked(j, f)) < n &&
           pthread_cond_timedwait(&j->added, &j->mu, &ts) != ETIMEDOUT)
        ;
    got = count_locked(j, f);
    pthread_mutex_unlock(&j->mu);
    return got;
}
