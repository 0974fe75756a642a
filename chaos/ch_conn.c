/* ch_conn.c - one proxied connection: reach an upstream (its turn's, else the next ones in
 * order), then carry both directions, applying the connection's faults to each chunk,
 * until one side ends it, a fault does, or the proxy stops.
 *
 * One thread per connection, non-blocking sockets and one poll loop for both directions.
 * Each direction reads chunks (up to CHUNK_SIZE bytes) into a queue, stamped with the time
 * they may leave (now + latency), and writes from the queue head in order, paced by slice
 * and bandwidth. Reading stops while QUEUE_CAP bytes wait (back-pressure), so a slow side
 * slows the other down as TCP would. Every wait is a poll timeout, which libfaketime
 * scales; nothing spins.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ch_link_int.h"
#include "cm_clock.h"
#include "cm_duration.h"
#include "cm_log.h"

#define COMP "chaos.conn"
#define CHUNK_SIZE 16384
#define QUEUE_CAP (1u << 20)
#define NS_PER_MS 1000000LL

typedef struct chunk {
    struct chunk *next;
    int64_t due_ns; /* monotonic time it may be written */
    size_t len, off;
    int reset_fault;  /* -1: data; else a marker: faults[reset_fault] resets here */
    int64_t reset_at; /* a marker's byte count, for the journal */
    unsigned char data[];
} chunk_t;

/* One direction: bytes read from src are written to dst. */
typedef struct {
    int dir; /* CH_DIR_UPSTREAM or CH_DIR_DOWNSTREAM */
    int src, dst;
    const char *src_name, *dst_name;
    uint64_t *stat_bytes; /* the link's counter for this direction */
    uint64_t moved;       /* bytes written by this connection */
    cm_rand_t rng;        /* jitter and slice sizes */
    chunk_t *head, *tail;
    size_t queued;
    int eof_read, eof_sent, reset_queued, want_out;
    int64_t wait_until; /* when the head may be written; 0: no wait */
    /* what the plan means for this direction (see derive) */
    int drop;            /* -1, or the hang fault that discards data */
    int timeout_idx;     /* -1, or the hang fault whose hang_max closes at timeout_at */
    int64_t timeout_at;  /* monotonic ns; 0: never */
    int64_t rate;        /* bytes per second; 0: unpaced */
    int slice_idx;       /* -1, or the slice fault in force */
    int reset_idx;       /* -1, or the reset fault with the lowest after_bytes */
    int64_t reset_limit; /* its after_bytes */
    int64_t flowed;      /* bytes read since the plan came into force */
    int64_t next_write_ns, bw_next_ns, slice_left;
} dir_t;

typedef enum {
    END_NONE = 0,
    END_CLOSE,       /* both sides done, a peer went away, or an I/O error */
    END_FAULT_RESET, /* reset or down */
    END_TIMEOUT,     /* a hang fault's hang_max ran out */
    END_STOP,        /* the proxy stops */
    END_UPSTREAM,    /* no upstream could be reached */
} end_kind_t;

typedef struct {
    ch_conn_t *c;
    ch_link_t *l;
    int cfd, ufd;
    const char *up;      /* the upstream reached (in c->ups); NULL before */
    const char *up_last; /* the last upstream tried (in c->ups); NULL before */
    ch_faults_t *faults; /* the plan in force (a reference) */
    uint32_t mask;
    uint64_t gen;
    dir_t d[2]; /* [0] upstream, [1] downstream */
    unsigned char *buf;
    /* how it ended */
    end_kind_t end;
    int end_fault, end_dir, rst_client, rst_upstream;
    char detail[CH_JOURNAL_DETAIL_LEN];
} conn_t;

/* Records how the connection ends (the first reason wins) and returns -1, so callers can
 * write `return end(...)`. */
static int end(conn_t *st, end_kind_t kind, int fault, int dir, int rst_client, int rst_upstream,
               const char *fmt, ...) __attribute__((format(printf, 7, 8)));

static int end(conn_t *st, end_kind_t kind, int fault, int dir, int rst_client, int rst_upstream,
               const char *fmt, ...)
{
    if (st->end != END_NONE)
        return -1;
    st->end = kind;
    st->end_fault = fault;
    st->end_dir = dir;
    st->rst_client = rst_client;
    st->rst_upstream = rst_upstream;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->detail, sizeof st->detail, fmt, ap);
    va_end(ap);
    return -1;
}

static void queue_clear(dir_t *d)
{
    while (d->head) {
        chunk_t *n = d->head->next;
        free(d->head);
        d->head = n;
    }
    d->tail = NULL;
    d->queued = 0;
}

static void queue_push(dir_t *d, chunk_t *ch)
{
    ch->next = NULL;
    if (d->tail)
        d->tail->next = ch;
    else
        d->head = ch;
    d->tail = ch;
    d->queued += ch->len;
}

static int applies(const conn_t *st, size_t i, const dir_t *d)
{
    return (st->mask & (1u << i)) && (st->faults->items[i].dirs & d->dir);
}

/* Works out what the plan means for direction d. Counts (reset's after_bytes, hang's
 * hang_max) start again from now: a new plan is a new fault for the connection. */
static void derive(conn_t *st, dir_t *d, int64_t now)
{
    d->drop = d->timeout_idx = d->slice_idx = d->reset_idx = -1;
    d->timeout_at = d->rate = d->flowed = d->slice_left = 0;
    d->reset_limit = -1;
    for (size_t i = 0; i < st->faults->n; i++) {
        const ch_fault_t *f = &st->faults->items[i];
        if (!applies(st, i, d))
            continue;
        switch (f->type) {
        case CH_FAULT_BANDWIDTH:
            if (!d->rate || f->bytes_per_s < d->rate)
                d->rate = f->bytes_per_s;
            break;
        case CH_FAULT_SLICE:
            if (d->slice_idx < 0)
                d->slice_idx = (int)i;
            break;
        case CH_FAULT_RESET:
            if (d->reset_idx < 0 || f->after_bytes < d->reset_limit) {
                d->reset_idx = (int)i;
                d->reset_limit = f->after_bytes;
            }
            break;
        case CH_FAULT_HANG:
            if (d->drop < 0)
                d->drop = (int)i;
            if (f->hang_max_ms > 0 &&
                (!d->timeout_at || now + f->hang_max_ms * NS_PER_MS < d->timeout_at)) {
                d->timeout_at = now + f->hang_max_ms * NS_PER_MS;
                d->timeout_idx = (int)i;
            }
            break;
        default:
            break;
        }
    }
    if (d->drop >= 0) {
        /* Nothing flows any more: what waits to be written is lost with the rest. */
        queue_clear(d);
        d->reset_queued = 0;
    }
}

/* Picks up a new plan when the link has drawn one. -1 when it ends the connection. */
static int refresh_plan(conn_t *st, int64_t now)
{
    ch_conn_t *c = st->c;
    if (st->faults && __atomic_load_n(&c->gen, __ATOMIC_ACQUIRE) == st->gen)
        return 0;
    pthread_mutex_lock(&st->l->mu);
    ch_faults_t *f = ch_faults_ref(c->faults);
    st->mask = c->mask;
    st->gen = c->gen;
    pthread_mutex_unlock(&st->l->mu);
    ch_faults_unref(&st->faults);
    st->faults = f;
    for (size_t i = 0; i < f->n; i++) {
        if ((st->mask & (1u << i)) && f->items[i].type == CH_FAULT_DOWN) {
            __atomic_add_fetch(&st->l->st.faults_applied, 1, __ATOMIC_RELAXED);
            return end(st, END_FAULT_RESET, CH_FAULT_DOWN, 0, 1, 1, "faults[%zu]: the link is down",
                       i);
        }
    }
    derive(st, &st->d[0], now);
    derive(st, &st->d[1], now);
    return 0;
}

static void drain_wake(int fd)
{
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof v);
    (void)r;
}

/* ---- reaching the upstream ----------------------------------------------------------- */

/* Waits for a non-blocking connect on fd. 0 when connected; otherwise an errno value, or -1
 * when the connection ended meanwhile (stop, down). */
static int wait_connected(conn_t *st, int fd, int64_t deadline_ms)
{
    for (;;) {
        if (refresh_plan(st, cm_clock_mono_ns()) != 0)
            return -1;
        int64_t left = deadline_ms - cm_clock_mono_ms();
        if (left <= 0)
            return ETIMEDOUT;
        struct pollfd p[3] = {{.fd = fd, .events = POLLOUT},
                              {.fd = st->c->wake, .events = POLLIN},
                              {.fd = st->l->owner->stop_fd, .events = POLLIN}};
        int r = poll(p, 3, (int)(left > 60000 ? 60000 : left));
        if (r < 0 && errno != EINTR)
            return errno;
        if (r <= 0)
            continue;
        if (p[2].revents)
            return end(st, END_STOP, -1, 0, 0, 0, "the proxy stopped while connecting");
        if (p[1].revents)
            drain_wake(st->c->wake);
        if (p[0].revents) {
            int e = 0;
            socklen_t el = sizeof e;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0)
                e = errno;
            return e;
        }
    }
}

/* Connects to addr ("HOST:PORT") within the connect timeout. The socket, or -1 with why
 * (CM_ERR_LEN bytes) saying what failed, or -1 with st->end set when the connection ended
 * meanwhile (stop, down). */
static int connect_one(conn_t *st, const char *addr, char *why)
{
    char host[CH_LINK_UPSTREAM_MAX + 1], ps[8], perr[CM_ERR_LEN];
    uint16_t port;
    if (ch_link_parse_upstream(addr, host, sizeof host, &port, perr) != 0) {
        cm_errf(why, "upstream %s", perr);
        return -1;
    }
    snprintf(ps, sizeof ps, "%u", (unsigned)port);
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int g = getaddrinfo(host, ps, &hints, &res);
    if (g != 0) {
        cm_errf(why, "cannot resolve %s: %s", host, gai_strerror(g));
        return -1;
    }
    int64_t deadline = cm_clock_mono_ms() + st->l->owner->connect_timeout_ms;
    int last = ECONNREFUSED, fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0 && st->end == END_NONE; ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            last = errno;
            continue;
        }
        int e = connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ? 0 : errno;
        if (e == EINPROGRESS)
            e = wait_connected(st, fd, deadline);
        if (e != 0) {
            if (e > 0)
                last = e;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (st->end != END_NONE)
        return -1;
    if (fd < 0) {
        cm_errf(why, "connect to %s: %s", addr, strerror(last));
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* Tries the connection's upstreams in order (its turn's first) until one accepts. Each
 * one that fails gets an upstream_error entry naming it and the next to try, as a load
 * balancer's passive health check would fall back; the client has sent nothing upstream
 * yet, so trying again is safe. When the last fails the connection ends (the client gets a
 * RST). Whatever the cause (refused, timed out, unresolvable): each means this upstream
 * cannot take the connection now. */
static int connect_upstream(conn_t *st)
{
    ch_conn_t *c = st->c;
    ch_link_t *l = st->l;
    char why[CM_ERR_LEN];
    size_t i = 0;
    for (; i < c->nups; i++) {
        st->up_last = c->ups[i];
        int fd = connect_one(st, c->ups[i], why);
        if (st->end != END_NONE)
            return -1;
        ch_link_upstream_result(l, c->ups[i], fd >= 0);
        if (fd >= 0) {
            st->ufd = fd;
            st->up = c->ups[i];
            break;
        }
        if (i + 1 == c->nups) {
            if (c->nups == 1)
                return end(st, END_UPSTREAM, -1, 0, 1, 0, "%s", why);
            return end(st, END_UPSTREAM, -1, 0, 1, 0, "%s; all %zu upstreams failed", why, c->nups);
        }
        ch_journal_add_up(l->owner->journal, l->name, c->id, CH_EV_UPSTREAM_ERROR, -1, 0, c->ups[i],
                          "%s; trying %s", why, c->ups[i + 1]);
        CM_DEBUG(COMP, "%s conn %llu: %s; trying %s", l->name, (unsigned long long)c->id, why,
                 c->ups[i + 1]);
    }
    struct sockaddr_in peer = {0};
    socklen_t pl = sizeof peer;
    char addr[INET_ADDRSTRLEN] = "?";
    if (getpeername(st->cfd, (struct sockaddr *)&peer, &pl) == 0)
        inet_ntop(AF_INET, &peer.sin_addr, addr, sizeof addr);
    if (i > 0)
        ch_journal_add_up(l->owner->journal, l->name, c->id, CH_EV_OPEN, -1, 0, st->up,
                          "from %s:%u to %s, after %zu upstream%s failed", addr,
                          (unsigned)ntohs(peer.sin_port), st->up, i, i == 1 ? "" : "s");
    else
        ch_journal_add_up(l->owner->journal, l->name, c->id, CH_EV_OPEN, -1, 0, st->up,
                          "from %s:%u to %s", addr, (unsigned)ntohs(peer.sin_port), st->up);
    return 0;
}

/* ---- moving bytes ------------------------------------------------------------------- */

static int can_read(const dir_t *d)
{
    return !d->eof_read && !d->reset_queued && (d->drop >= 0 || d->queued < QUEUE_CAP);
}

/* The delay of a chunk read now in direction d: the sum of its latency faults, each drawn
 * from its own range and clamped at 0. */
static int64_t latency_ns(conn_t *st, dir_t *d)
{
    int64_t total = 0;
    for (size_t i = 0; i < st->faults->n; i++) {
        const ch_fault_t *f = &st->faults->items[i];
        if (f->type != CH_FAULT_LATENCY || !applies(st, i, d))
            continue;
        int64_t ms = f->min_ms;
        if (f->max_ms > f->min_ms)
            ms += (int64_t)cm_rand_below(&d->rng, (uint64_t)(f->max_ms - f->min_ms + 1));
        total += ms > 0 ? ms : 0;
    }
    return total * NS_PER_MS;
}

/* A peer that resets (or vanishes while we write to it) is passed on as a reset to the
 * other side, as the far host itself would answer. */
static int peer_gone(conn_t *st, const dir_t *d, int fd_is_src, int e)
{
    const char *who = fd_is_src ? d->src_name : d->dst_name;
    int client_gone = (d->dir == CH_DIR_UPSTREAM) == fd_is_src;
    if (e == ECONNRESET || e == EPIPE)
        return end(st, END_CLOSE, -1, 0, !client_gone, client_gone, "the %s reset the connection",
                   who);
    return end(st, END_CLOSE, -1, 0, 0, 0, "%s on the %s side: %s", fd_is_src ? "read" : "write",
               who, strerror(e));
}

static int do_read(conn_t *st, dir_t *d, int64_t now)
{
    ssize_t n = recv(d->src, st->buf, CHUNK_SIZE, 0);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR
                   ? 0
                   : peer_gone(st, d, 1, errno);
    if (n == 0) {
        d->eof_read = 1;
        return 0;
    }
    if (d->drop >= 0)
        return 0; /* blackhole / timeout: read and discarded */
    size_t keep = (size_t)n;
    int trigger = 0;
    if (d->reset_idx >= 0 && d->flowed + n > d->reset_limit) {
        keep = (size_t)(d->reset_limit - d->flowed);
        trigger = 1;
    }
    d->flowed += (int64_t)keep;
    if (keep) {
        chunk_t *ch = malloc(sizeof *ch + keep);
        if (!ch)
            return end(st, END_CLOSE, -1, 0, 1, 1, "out of memory");
        memcpy(ch->data, st->buf, keep);
        ch->len = keep;
        ch->off = 0;
        ch->reset_fault = -1;
        ch->due_ns = now + latency_ns(st, d);
        queue_push(d, ch);
    }
    if (trigger) {
        /* The reset waits behind the bytes that may still pass, so they arrive first. */
        chunk_t *mk = calloc(1, sizeof *mk);
        if (!mk)
            return end(st, END_CLOSE, -1, 0, 1, 1, "out of memory");
        mk->reset_fault = d->reset_idx;
        mk->reset_at = d->flowed;
        queue_push(d, mk);
        d->reset_queued = 1;
    }
    return 0;
}

static int64_t slice_draw(dir_t *d, int64_t avg)
{
    int64_t lo = avg - avg / 2, hi = avg + avg / 2;
    if (lo < 1)
        lo = 1;
    return lo + (int64_t)cm_rand_below(&d->rng, (uint64_t)(hi - lo + 1));
}

/* Writes what is due from d's queue without blocking. */
static int flush(conn_t *st, dir_t *d, int64_t now)
{
    d->want_out = 0;
    d->wait_until = 0;
    if (d->drop >= 0)
        return 0;
    while (d->head) {
        chunk_t *h = d->head;
        if (h->reset_fault >= 0) {
            return end(st, END_FAULT_RESET, CH_FAULT_RESET, d->dir, 1, 1,
                       "faults[%d]: reset after %lld %s bytes", h->reset_fault,
                       (long long)h->reset_at, ch_dir_name(d->dir));
        }
        if (h->due_ns > now) {
            d->wait_until = h->due_ns;
            break;
        }
        if (d->next_write_ns > now) {
            d->wait_until = d->next_write_ns;
            break;
        }
        size_t piece = h->len - h->off;
        const ch_fault_t *sl = d->slice_idx >= 0 ? &st->faults->items[d->slice_idx] : NULL;
        if (sl) {
            if (d->slice_left <= 0)
                d->slice_left = slice_draw(d, sl->slice_bytes);
            if ((int64_t)piece > d->slice_left)
                piece = (size_t)d->slice_left;
        }
        if (d->rate) {
            /* Pieces of about 50 ms at the rate keep the pace smooth. */
            int64_t cap = d->rate / 20 > 0 ? d->rate / 20 : 1;
            if ((int64_t)piece > cap)
                piece = (size_t)cap;
        }
        ssize_t n = send(d->dst, h->data + h->off, piece, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                d->want_out = 1;
                break;
            }
            if (errno == EINTR)
                continue;
            return peer_gone(st, d, 0, errno);
        }
        __atomic_add_fetch(d->stat_bytes, (uint64_t)n, __ATOMIC_RELAXED);
        d->moved += (uint64_t)n;
        h->off += (size_t)n;
        d->queued -= (size_t)n;
        if (sl) {
            /* A piece ends when its size is reached or its chunk runs out (the next chunk
             * may be far off); a short write by a full socket buffer only continues it. */
            d->slice_left -= n;
            if (d->slice_left <= 0 || h->off == h->len) {
                d->slice_left = 0;
                if (sl->interval_ms > 0)
                    d->next_write_ns = now + sl->interval_ms * NS_PER_MS;
            }
        }
        if (d->rate) {
            int64_t base = d->bw_next_ns > now ? d->bw_next_ns : now;
            d->bw_next_ns = base + (int64_t)n * 1000000000LL / d->rate;
            if (d->bw_next_ns > d->next_write_ns)
                d->next_write_ns = d->bw_next_ns;
        }
        if (h->off == h->len) {
            d->head = h->next;
            if (!d->head)
                d->tail = NULL;
            free(h);
        }
    }
    if (!d->head && d->eof_read && !d->eof_sent) {
        shutdown(d->dst, SHUT_WR); /* pass the half-close on */
        d->eof_sent = 1;
    }
    return 0;
}

static int finished(const dir_t *d)
{
    return d->eof_read && (d->drop >= 0 || (!d->head && d->eof_sent));
}

/* The earliest time something must happen without any socket event; 0 when none. */
static int64_t next_timer(const conn_t *st)
{
    int64_t t = 0;
    for (int i = 0; i < 2; i++) {
        const dir_t *d = &st->d[i];
        int64_t cand[2] = {d->want_out ? 0 : d->wait_until, d->timeout_at};
        for (int k = 0; k < 2; k++)
            if (cand[k] && (!t || cand[k] < t))
                t = cand[k];
    }
    return t;
}

static void pump(conn_t *st)
{
    dir_t *up = &st->d[0], *down = &st->d[1];
    up->src = down->dst = st->cfd;
    up->dst = down->src = st->ufd;
    for (;;) {
        int64_t now = cm_clock_mono_ns();
        if (refresh_plan(st, now) != 0)
            return;
        for (int i = 0; i < 2; i++) {
            dir_t *d = &st->d[i];
            if (d->timeout_at && now >= d->timeout_at) {
                char max[32];
                cm_duration_format(st->faults->items[d->timeout_idx].hang_max_ms, max);
                end(st, END_TIMEOUT, CH_FAULT_HANG, d->dir, 0, 0,
                    "faults[%d]: hung for its hang_max of %s, then closed", d->timeout_idx, max);
                return;
            }
        }
        if (flush(st, up, now) != 0 || flush(st, down, now) != 0)
            return;
        if (finished(up) && finished(down)) {
            end(st, END_CLOSE, -1, 0, 0, 0, "both sides closed");
            return;
        }
        short ev_c = (short)((can_read(up) ? POLLIN : 0) | (down->want_out ? POLLOUT : 0));
        short ev_u = (short)((can_read(down) ? POLLIN : 0) | (up->want_out ? POLLOUT : 0));
        /* A socket with nothing to wait for stays out of the set: poll would report its
         * hang-up again and again. */
        struct pollfd p[4] = {{.fd = ev_c ? st->cfd : -1, .events = ev_c},
                              {.fd = ev_u ? st->ufd : -1, .events = ev_u},
                              {.fd = st->c->wake, .events = POLLIN},
                              {.fd = st->l->owner->stop_fd, .events = POLLIN}};
        int64_t t = next_timer(st);
        int timeout = -1;
        if (t) {
            int64_t ms = (t - now + NS_PER_MS - 1) / NS_PER_MS;
            timeout = ms < 0 ? 0 : ms > 60000 ? 60000 : (int)ms;
        }
        int r = poll(p, 4, timeout);
        if (r < 0 && errno != EINTR) {
            end(st, END_CLOSE, -1, 0, 1, 1, "poll: %s", strerror(errno));
            return;
        }
        if (r <= 0)
            continue;
        if (p[3].revents) {
            end(st, END_STOP, -1, 0, 0, 0, "the proxy is stopping");
            return;
        }
        if (p[2].revents)
            drain_wake(st->c->wake);
        /* Data that arrived with (or after) a fault change is read under the new plan. */
        now = cm_clock_mono_ns();
        if (refresh_plan(st, now) != 0)
            return;
        if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) && can_read(up) &&
            do_read(st, up, now) != 0)
            return;
        if ((p[1].revents & (POLLIN | POLLHUP | POLLERR)) && can_read(down) &&
            do_read(st, down, now) != 0)
            return;
    }
}

/* ---- the thread --------------------------------------------------------------------- */

/* Closes fd with a FIN. Linux answers a close() with unread input by a RST, so what the
 * peer sent and nobody will read is discarded first (a bounded amount). */
static void drain_close(int fd, unsigned char *buf)
{
    unsigned char small[512];
    size_t cap = buf ? CHUNK_SIZE : sizeof small;
    for (int i = 0; i < 64; i++)
        if (recv(fd, buf ? buf : small, cap, MSG_DONTWAIT) <= 0)
            break;
    close(fd);
}

static void finish(conn_t *st)
{
    ch_link_t *l = st->l;
    ch_journal_t *j = l->owner->journal;
    ch_event_t ev = CH_EV_CLOSE;
    if (st->end == END_FAULT_RESET) {
        ev = CH_EV_RESET;
        __atomic_add_fetch(&l->st.resets, 1, __ATOMIC_RELAXED);
    } else if (st->end == END_UPSTREAM) {
        ev = CH_EV_UPSTREAM_ERROR;
    }
    int fault = st->end == END_FAULT_RESET || st->end == END_TIMEOUT ? st->end_fault : -1;
    if (ev == CH_EV_UPSTREAM_ERROR)
        ch_journal_add_up(j, l->name, st->c->id, ev, -1, 0, st->up_last, "%s", st->detail);
    else
        ch_journal_add_up(j, l->name, st->c->id, ev, fault, st->end_dir, st->up,
                          "%s; %llu B up, %llu B down", st->detail,
                          (unsigned long long)st->d[0].moved, (unsigned long long)st->d[1].moved);
    CM_DEBUG(COMP, "%s conn %llu: %s: %s", l->name, (unsigned long long)st->c->id,
             ch_event_name(ev), st->detail);
    if (st->rst_client)
        ch_link_rst_close(st->cfd);
    else
        drain_close(st->cfd, st->buf);
    if (st->ufd >= 0) {
        if (st->rst_upstream)
            ch_link_rst_close(st->ufd);
        else
            drain_close(st->ufd, st->buf);
    }
    queue_clear(&st->d[0]);
    queue_clear(&st->d[1]);
    ch_faults_unref(&st->faults);
    free(st->buf);
}

void *ch_conn_main(void *arg)
{
    ch_conn_t *c = arg;
    ch_link_t *l = c->link;
    conn_t st = {.c = c, .l = l, .cfd = c->cfd, .ufd = -1};
    st.d[0] = (dir_t){.dir = CH_DIR_UPSTREAM,
                      .src_name = "client",
                      .dst_name = "upstream",
                      .stat_bytes = &l->st.bytes_upstream};
    st.d[1] = (dir_t){.dir = CH_DIR_DOWNSTREAM,
                      .src_name = "upstream",
                      .dst_name = "client",
                      .stat_bytes = &l->st.bytes_downstream};
    /* Separate streams per direction: the jitter one side draws does not depend on how many
     * chunks the other side moved. */
    cm_rand_seed(&st.d[0].rng, c->seed ^ 0x7570000000000000ULL);
    cm_rand_seed(&st.d[1].rng, c->seed ^ 0x646f776e00000000ULL);
    st.buf = malloc(CHUNK_SIZE);
    if (!st.buf)
        end(&st, END_CLOSE, -1, 0, 1, 0, "out of memory");
    else if (refresh_plan(&st, cm_clock_mono_ns()) == 0 && connect_upstream(&st) == 0)
        pump(&st);
    finish(&st);
    ch_link_conn_ended(c);
    return NULL;
}
