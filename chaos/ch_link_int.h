/* ch_link_int.h - what ch_link.c (links, listeners, fault plans) and ch_conn.c (the thread
 * of one proxied connection) share. Internal to chaos-proxy: nothing else includes it.
 *
 * Locking: a link's mutex guards its upstreams (and their counts), the round-robin turn,
 * its fault list, generator, connection lists and
 * every connection's plan (faults, mask, draw generator). Counters are updated with
 * atomics and may be read at any time. A connection thread never holds the link's mutex
 * while it does I/O; it takes it only to copy a new plan and when it ends.
 */
#ifndef CH_LINK_INT_H
#define CH_LINK_INT_H

#include <pthread.h>
#include <stdint.h>

#include "ch_fault.h"
#include "ch_journal.h"
#include "ch_link.h"
#include "cm_rand.h"

typedef struct ch_conn ch_conn_t;

struct ch_links {
    ch_journal_t *journal;
    uint64_t seed;
    size_t max_conns;
    int64_t connect_timeout_ms;
    int stop_fd;           /* eventfd written once at stop and never read: every poll sees it */
    uint64_t next_conn_id; /* atomic */
    uint64_t open;         /* atomic: open connections over all links */
    pthread_mutex_t mu;    /* guards links and n */
    ch_link_t *links[CH_LINK_MAX];
    size_t n;
};

struct ch_link {
    /* set at creation, then read-only */
    ch_links_t *owner;
    char name[CH_LINK_NAME_MAX + 1];
    int lfd;
    uint16_t port;
    int wake; /* eventfd: a connection ended and waits to be joined */
    pthread_t listener;
    int listener_started;
    /* guarded by mu */
    pthread_mutex_t mu;
    pthread_cond_t idle; /* broadcast when the last open connection ends */
    ch_link_upstream_t ups[CH_LINK_UPSTREAMS_MAX];
    size_t nups;         /* 1..CH_LINK_UPSTREAMS_MAX */
    size_t turn;         /* index of the upstream the next accepted connection tries first */
    ch_faults_t *faults; /* never NULL */
    uint64_t gen;        /* bumped at every fault change */
    cm_rand_t rng;
    ch_conn_t *conns;   /* open connections, newest first */
    ch_conn_t *zombies; /* ended connections whose threads are not joined yet */
    /* atomic */
    ch_link_stats_t st;
};

struct ch_conn {
    /* set before the thread starts, then read-only */
    ch_link_t *link;
    uint64_t id;
    int cfd;       /* the client's socket, owned by the thread */
    int wake;      /* eventfd: the plan changed */
    uint64_t seed; /* seeds the per-direction generators */
    pthread_t thread;
    /* guarded by link->mu */
    ch_faults_t *faults; /* the list the plan was drawn from */
    uint32_t mask;       /* bit i: faults->items[i] applies */
    uint64_t gen;        /* also read atomically by the thread to spot a change */
    cm_rand_t draw;
    ch_conn_t *prev, *next;
    /* set before the thread starts, then read-only: the link's upstreams when it was
     * accepted, in the order to try them (its turn first) */
    size_t nups;
    char ups[][CH_LINK_UPSTREAM_MAX + 1];
};

/* The connection thread (ch_conn.c). Ends with ch_link_conn_ended(c). */
void *ch_conn_main(void *arg);

/* Called by a connection's thread as its last act: moves c to the link's zombies, updates
 * the counts and wakes the listener to join it. c must not be touched after. */
void ch_link_conn_ended(ch_conn_t *c);

/* Counts a connect to upstream addr that succeeded (ok) or failed, when addr is still one
 * of the link's upstreams (a count for a dropped one is lost with it). */
void ch_link_upstream_result(ch_link_t *l, const char *addr, int ok);

/* Closes fd so that the peer gets a RST instead of a FIN. */
void ch_link_rst_close(int fd);

#endif
