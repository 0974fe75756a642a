/* ch_link.h - chaos-proxy's links: each a TCP listener on 127.0.0.1 that forwards every
 * connection it accepts to an upstream HOST:PORT, applying the link's faults on the way.
 *
 * A link has 1 to CH_LINK_UPSTREAMS_MAX upstreams, taken round robin per accepted
 * connection (as a load balancer in front of several instances would). When the upstream
 * whose turn it is cannot be reached (refused, timed out, unresolvable), the connection
 * tries the next ones in order before it gives the client a RST: a passive health check
 * with no memory (the next connection whose turn it is tries it again). Per connection,
 * not per request: a keep-alive connection stays on the upstream it reached.
 *
 * A ch_links_t is the set of links of one proxy, with what they share: the seed, the
 * journal, the cap on open connections and the stop signal. Links are added while the
 * proxy runs (from the command line or the control API) and live until ch_links_free;
 * a ch_link_t pointer stays valid until then.
 *
 * Each link has a listener thread; each proxied connection has a thread of its own that
 * carries both directions (ch_conn.c). A link's fault list is immutable and swapped whole
 * (ch_link_set_faults): new connections draw which faults apply to them when accepted,
 * open connections draw again at the swap, and each connection picks up its new plan
 * before the next chunk it moves (a wake-up makes idle ones notice at once, so `down`
 * resets them and a hang_max starts counting).
 *
 * Randomness: each link has a generator seeded from the proxy seed and the link's name.
 * Every accepted connection (refused ones included) takes one number from it, which seeds
 * the connection's own generators (fault draws, jitter, slice sizes). So the same seed and
 * the same order of connections on a link give the same draws, whatever happens on other
 * links or in what order the threads run.
 *
 * Thread-safe: all functions may be called from any thread, except ch_links_free.
 */
#ifndef CH_LINK_H
#define CH_LINK_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "ch_fault.h"
#include "ch_journal.h"
#include "cm_err.h"

#define CH_LINK_MAX 64           /* links per proxy */
#define CH_LINK_NAME_MAX 32      /* [a-z0-9_-]{1,32} */
#define CH_LINK_UPSTREAM_MAX 300 /* "HOST:PORT" text */
#define CH_LINK_UPSTREAMS_MAX 16 /* upstreams per link */
#define CH_LINK_DEFAULT_MAX_CONNS 512
#define CH_LINK_CONNECT_TIMEOUT_MS 5000

typedef struct ch_links ch_links_t;
typedef struct ch_link ch_link_t;

typedef struct {
    uint64_t seed;
    ch_journal_t *journal;      /* borrowed, required; must outlive the links */
    size_t max_conns;           /* open connections over all links; 0: CH_LINK_DEFAULT_MAX_CONNS */
    int64_t connect_timeout_ms; /* to reach one upstream; 0: CH_LINK_CONNECT_TIMEOUT_MS */
} ch_links_cfg_t;

typedef struct {
    uint64_t connections;      /* accepted, refused ones included */
    uint64_t active;           /* open now */
    uint64_t refused;          /* reset at accept: link down, or over the cap */
    uint64_t resets;           /* open connections reset by a fault (reset, down) */
    uint64_t bytes_upstream;   /* client -> upstream bytes written to the upstream */
    uint64_t bytes_downstream; /* upstream -> client bytes written to the client */
    uint64_t faults_applied;   /* (connection, fault) pairs drawn to apply, plus each
                                  connection refused or reset by down */
} ch_link_stats_t;

/* One of a link's upstreams and what its connections did. The counts belong to the
 * address: they carry over a ch_link_set_upstreams that keeps it, and go with it when it
 * is dropped. */
typedef struct {
    char addr[CH_LINK_UPSTREAM_MAX + 1]; /* "HOST:PORT" */
    uint64_t connections;                /* connections proxied to it (its connect succeeded) */
    uint64_t errors;                     /* connects to it that failed */
} ch_link_upstream_t;

/* A new, empty set. NULL when out of memory or out of file descriptors (err says which). */
ch_links_t *ch_links_new(const ch_links_cfg_t *cfg, char *err);

/* Stops every listener and connection (open connections are closed with FIN), waits for
 * their threads, frees everything, sets *ls to NULL. Accepts NULL. Nothing else may be
 * using the set (stop the control server first). */
void ch_links_free(ch_links_t **ls);

/* Adds a link named name (copied) that listens on 127.0.0.1:port (0: a free port) and
 * forwards round robin to the n upstreams ("HOST:PORT" each, copied; see
 * ch_link_check_upstreams). On success *out (may be NULL) is the link.
 * Errors: CM_EINVAL (bad name or upstreams, too many links), CM_EEXISTS (the name exists,
 * or the port is in use), CM_EIO, CM_ENOMEM; err says which and nothing is added. */
cm_err_t ch_links_add(ch_links_t *ls, const char *name, const char *const *upstreams, size_t n,
                      uint16_t port, ch_link_t **out, char *err) CM_WUR;

/* The link of that name (borrowed), NULL when there is none. */
ch_link_t *ch_links_find(ch_links_t *ls, const char *name);

/* A new array of every link's JSON (ch_link_json), in the order they were added. */
json_t *ch_links_json(ch_links_t *ls);

/* Clears every link's faults (as ch_link_set_faults with an empty list). */
void ch_links_reset(ch_links_t *ls);

/* A new {"name","port","upstream","upstreams":[...],"faults":[...],"stats":{...,
 * "per_upstream":{ADDR:{"connections","errors"}}}}; "upstream" is the first of
 * "upstreams". NULL when out of memory. */
json_t *ch_link_json(ch_link_t *l);

const char *ch_link_name(const ch_link_t *l);
uint16_t ch_link_port(const ch_link_t *l);
ch_link_stats_t ch_link_stats(ch_link_t *l);
/* Copies the first current upstream ("HOST:PORT") into out (cap bytes). */
void ch_link_upstream(ch_link_t *l, char *out, size_t cap);

/* Copies the current upstreams, in their order, with their counts, into out (up to cap);
 * returns how many the link has (1..CH_LINK_UPSTREAMS_MAX). */
size_t ch_link_upstreams(ch_link_t *l, ch_link_upstream_t *out, size_t cap);

/* Sends new connections round robin to the n upstreams (copied), starting again from the
 * first; open ones keep theirs. CM_EINVAL (err says why, nothing changes) when they do
 * not pass ch_link_check_upstreams. */
cm_err_t ch_link_set_upstreams(ch_link_t *l, const char *const *upstreams, size_t n,
                               char *err) CM_WUR;

/* Replaces the link's faults with faults, taking the caller's reference (NULL means none).
 * Open connections draw again and apply the new plan from their next chunk. */
void ch_link_set_faults(ch_link_t *l, ch_faults_t *faults);

/* 1 when name is 1 to 32 of [a-z0-9_-]. */
int ch_link_name_ok(const char *name);

/* Checks "HOST:PORT" (HOST a name, an IPv4 address or "[IPv6]"; PORT 1..65535) and splits
 * it into host (without brackets, hcap bytes) and port. 0 on success, -1 with err set. */
int ch_link_parse_upstream(const char *s, char *host, size_t hcap, uint16_t *port, char *err);

/* Checks a list of upstreams: 1 to CH_LINK_UPSTREAMS_MAX, each HOST:PORT, none twice.
 * field names them in err: "upstream" for one ("upstream: ..."), "upstreams" for a list
 * ("upstreams[2]: ..."). 0 on success, -1 with err set. */
int ch_link_check_upstreams(const char *const *upstreams, size_t n, const char *field, char *err);

#endif
