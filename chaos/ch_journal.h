/* ch_journal.h - what chaos-proxy did to each connection: a bounded journal of events
 * (open, close, reset, refused, fault, upstream_error), read by `GET /journal`.
 *
 * A ring of the last `capacity` entries: when full, the oldest goes and `dropped` counts
 * it. Sequence numbers start at 1 and only grow, so a reader pages with since=<last_seq>.
 * Entries are fixed-size records (link name and detail are truncated to fit), so adding
 * one never allocates. Thread-safe: one mutex, held for a copy only.
 */
#ifndef CH_JOURNAL_H
#define CH_JOURNAL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define CH_JOURNAL_DEFAULT_CAPACITY 10000
#define CH_JOURNAL_DETAIL_LEN 160
/* An upstream "HOST:PORT" as a link names it (CH_LINK_UPSTREAM_MAX + 1; ch_link.c checks). */
#define CH_JOURNAL_UPSTREAM_LEN 301

typedef struct ch_journal ch_journal_t;

typedef enum {
    CH_EV_OPEN = 0,       /* a connection reached an upstream and is proxied */
    CH_EV_CLOSE,          /* it ended without a fault's reset (FIN, a peer's reset, stop) */
    CH_EV_RESET,          /* a fault reset it (reset after bytes, down) */
    CH_EV_REFUSED,        /* accepted and reset at once: link down, or over the cap */
    CH_EV_FAULT,          /* a fault was drawn to apply to the connection */
    CH_EV_UPSTREAM_ERROR, /* an upstream could not be reached (the next one is tried) */
    CH_EV__COUNT
} ch_event_t;

/* capacity 0 means CH_JOURNAL_DEFAULT_CAPACITY. NULL when out of memory. */
ch_journal_t *ch_journal_new(size_t capacity);
/* Frees the journal, sets *j to NULL, accepts NULL. Nobody may be adding any more. */
void ch_journal_free(ch_journal_t **j);

/* Appends an entry stamped with cm_clock_now_ms. link is copied; fault is a
 * ch_fault_type_t or -1 for none; dir is CH_DIR_UPSTREAM or CH_DIR_DOWNSTREAM, or 0 for
 * none (a fault for both directions is journaled with none). Returns the entry's seq. */
uint64_t ch_journal_add(ch_journal_t *j, const char *link, uint64_t conn, ch_event_t ev, int fault,
                        int dir, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

/* As ch_journal_add, with the upstream ("HOST:PORT", copied; NULL for none) the entry is
 * about: the one a connection reached (open, and how it ended) or the one that failed
 * (upstream_error). Shown as "upstream" (null when none). */
uint64_t ch_journal_add_up(ch_journal_t *j, const char *link, uint64_t conn, ch_event_t ev,
                           int fault, int dir, const char *upstream, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));

typedef struct {
    uint64_t since;   /* only entries with seq > since */
    const char *link; /* NULL or "": any link */
    int event;        /* -1: any, else a ch_event_t */
    uint64_t conn;    /* 0: any connection */
    size_t limit;     /* 0: no limit */
} ch_journal_filter_t;

/* New {"count":N,"dropped":D,"last_seq":S,"entries":[...]} oldest first. last_seq is the
 * value to pass as since next time: the newest seq in the journal, or the last entry
 * returned when limit cut the answer short. NULL when out of memory. */
json_t *ch_journal_query(ch_journal_t *j, const ch_journal_filter_t *f);

/* How many entries match f now. */
size_t ch_journal_count(ch_journal_t *j, const ch_journal_filter_t *f);

/* Waits until at least n entries match f or timeout_ms passes (a monotonic deadline);
 * returns how many matched at the end. For tests and tools that must wait for the proxy
 * to record what a peer has already seen. */
size_t ch_journal_wait(ch_journal_t *j, const ch_journal_filter_t *f, size_t n, int64_t timeout_ms);

/* "open", "close", ...; "?" for an unknown value. Static. Returns -1 from ch_event_parse for
 * an unknown name. */
const char *ch_event_name(ch_event_t ev);
int ch_event_parse(const char *name);

#endif
