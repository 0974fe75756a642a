/* ch_link.c - the set of links, their listeners, fault plans and counters. */
#include "ch_link.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ch_link_int.h"
#include "cm_clock.h"
#include "cm_log.h"

#define COMP "chaos.link"
/* Connection threads need little stack: 16 KiB of buffer live on the heap. */
#define CONN_STACK (256u << 10)
/* How long ch_links_free waits for connection threads to notice the stop. */
#define STOP_WAIT_MS 3000

_Static_assert(CH_JOURNAL_UPSTREAM_LEN >= CH_LINK_UPSTREAM_MAX + 1,
               "the journal holds a whole upstream");

/* ---- small helpers ------------------------------------------------------------------ */

void ch_link_rst_close(int fd)
{
    if (fd < 0)
        return;
    /* SO_LINGER with a zero timeout makes close() send RST and drop unsent data. */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

static void wake_fd(int fd)
{
    uint64_t one = 1;
    ssize_t w = write(fd, &one, sizeof one);
    (void)w; /* only fails when the counter is saturated: the reader is awake anyway */
}

static void drain_fd(int fd)
{
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof v);
    (void)r;
}

static uint64_t stat_add(uint64_t *p, uint64_t n)
{
    return __atomic_add_fetch(p, n, __ATOMIC_RELAXED);
}

static uint64_t stat_get(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

int ch_link_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    return n >= 1 && n <= CH_LINK_NAME_MAX &&
           strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

int ch_link_parse_upstream(const char *s, char *host, size_t hcap, uint16_t *port, char *err)
{
    const char *colon = s ? strrchr(s, ':') : NULL;
    const char *h = s, *he = colon;
    if (s && s[0] == '[') { /* [IPv6]:PORT */
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            colon = NULL;
        h = s + 1;
        he = rb;
    }
    size_t hl = colon && he ? (size_t)(he - h) : 0;
    const char *p = colon ? colon + 1 : "";
    unsigned long v = 0;
    int ok = hl > 0 && hl < hcap && strlen(s) <= CH_LINK_UPSTREAM_MAX && *p &&
             strspn(p, "0123456789") == strlen(p) && strlen(p) <= 5;
    if (ok) {
        v = strtoul(p, NULL, 10);
        ok = v >= 1 && v <= 65535;
    }
    for (size_t i = 0; ok && i < hl; i++) {
        unsigned char ch = (unsigned char)h[i];
        ok = ch > 0x20 && ch < 0x7f && ch != '/' && ch != '@' && (ch != ':' || s[0] == '[');
    }
    if (!ok) {
        cm_errf(err, "\"%.80s\" is not HOST:PORT with a port from 1 to 65535", s ? s : "");
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (uint16_t)v;
    return 0;
}

int ch_link_check_upstreams(const char *const *upstreams, size_t n, const char *field, char *err)
{
    char host[CH_LINK_UPSTREAM_MAX + 1], perr[CM_ERR_LEN];
    uint16_t port;
    int list = strcmp(field, "upstream") != 0;
    if (n < 1 || n > CH_LINK_UPSTREAMS_MAX || (!list && n != 1)) {
        cm_errf(err, "%s: %s", field,
                list ? "must be a list of 1 to 16 HOST:PORT" : "must be one HOST:PORT");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        char where[40];
        if (list)
            snprintf(where, sizeof where, "%s[%zu]", field, i);
        else
            snprintf(where, sizeof where, "%s", field);
        if (ch_link_parse_upstream(upstreams[i], host, sizeof host, &port, perr) != 0) {
            cm_errf(err, "%s: %s", where, perr);
            return -1;
        }
        for (size_t k = 0; k < i; k++) {
            /* Twice would make the per-upstream counts ambiguous; weights are not a feature. */
            if (strcmp(upstreams[k], upstreams[i]) == 0) {
                cm_errf(err, "%s: \"%.80s\" is already %s[%zu]", where, upstreams[i], field, k);
                return -1;
            }
        }
    }
    return 0;
}

/* FNV-1a, to give each link a generator of its own from the one proxy seed. */
static uint64_t name_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

/* ---- plans -------------------------------------------------------------------------- */

/* Draws which of the link's current faults apply to c and hands c the new plan. Holds
 * l->mu. new_conn only changes the journal's wording. */
static void draw_plan_locked(ch_link_t *l, ch_conn_t *c, int new_conn)
{
    const ch_faults_t *fl = l->faults;
    uint32_t mask = 0;
    for (size_t i = 0; i < fl->n; i++) {
        const ch_fault_t *f = &fl->items[i];
        if (f->type == CH_FAULT_DOWN) {
            mask |= 1u << i; /* counted when it resets the connection */
            continue;
        }
        double u = cm_rand_unit(&c->draw);
        if (u >= f->probability)
            continue;
        mask |= 1u << i;
        stat_add(&l->st.faults_applied, 1);
        ch_journal_add(l->owner->journal, l->name, c->id, CH_EV_FAULT, (int)f->type,
                       f->dirs == CH_DIR_BOTH ? 0 : f->dirs,
                       "faults[%zu] applies to %s (draw %.4f < %g)", i,
                       new_conn ? "the new connection" : "the open connection", u, f->probability);
    }
    ch_faults_t *old = c->faults;
    c->faults = ch_faults_ref(l->faults);
    ch_faults_unref(&old);
    c->mask = mask;
    __atomic_store_n(&c->gen, l->gen, __ATOMIC_RELEASE);
}

void ch_link_set_faults(ch_link_t *l, ch_faults_t *faults)
{
    if (!faults)
        faults = ch_faults_empty();
    if (!faults) {
        CM_ERROR(COMP, "%s: out of memory while clearing faults", l->name);
        return;
    }
    pthread_mutex_lock(&l->mu);
    ch_faults_t *old = l->faults;
    l->faults = faults;
    l->gen++;
    for (ch_conn_t *c = l->conns; c; c = c->next) {
        draw_plan_locked(l, c, 0);
        wake_fd(c->wake);
    }
    size_t n = faults->n;
    pthread_mutex_unlock(&l->mu);
    ch_faults_unref(&old);
    CM_INFO(COMP, "%s: %zu fault%s set", l->name, n, n == 1 ? "" : "s");
}

/* ---- accepting ---------------------------------------------------------------------- */

/* Reset at accept: the caller holds l->mu. */
static void refuse_locked(ch_link_t *l, int fd, uint64_t id, int down, const char *why)
{
    stat_add(&l->st.refused, 1);
    if (down)
        stat_add(&l->st.faults_applied, 1);
    ch_journal_add(l->owner->journal, l->name, id, CH_EV_REFUSED, down ? CH_FAULT_DOWN : -1, 0,
                   "%s", why);
    ch_link_rst_close(fd);
}

/* Puts the n upstreams (checked) in l->ups, keeping the counts of those already there,
 * and starts the turns again from the first. Holds l->mu. */
static void set_upstreams_locked(ch_link_t *l, const char *const *ups, size_t n)
{
    ch_link_upstream_t next[CH_LINK_UPSTREAMS_MAX];
    memset(next, 0, sizeof next);
    for (size_t i = 0; i < n; i++) {
        snprintf(next[i].addr, sizeof next[i].addr, "%s", ups[i]);
        for (size_t k = 0; k < l->nups; k++) {
            if (strcmp(l->ups[k].addr, ups[i]) == 0) {
                next[i].connections = l->ups[k].connections;
                next[i].errors = l->ups[k].errors;
            }
        }
    }
    memcpy(l->ups, next, sizeof next);
    l->nups = n;
    l->turn = 0;
}

void ch_link_upstream_result(ch_link_t *l, const char *addr, int ok)
{
    pthread_mutex_lock(&l->mu);
    for (size_t k = 0; k < l->nups; k++) {
        if (strcmp(l->ups[k].addr, addr) == 0) {
            if (ok)
                l->ups[k].connections++;
            else
                l->ups[k].errors++;
            break;
        }
    }
    pthread_mutex_unlock(&l->mu);
}

static void conn_free(ch_conn_t *c)
{
    if (!c)
        return;
    if (c->wake >= 0)
        close(c->wake);
    ch_faults_unref(&c->faults);
    free(c);
}

static void accept_one(ch_link_t *l, int fd)
{
    ch_links_t *ls = l->owner;
    int one = 1;
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    /* Small writes must leave at once, or slice and latency would be blurred by Nagle. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    uint64_t id = stat_add(&ls->next_conn_id, 1);
    pthread_mutex_lock(&l->mu);
    uint64_t seed = cm_rand_next(&l->rng);
    stat_add(&l->st.connections, 1);
    if (l->faults->has_down) {
        refuse_locked(l, fd, id, 1, "the link is down");
        pthread_mutex_unlock(&l->mu);
        return;
    }
    if (stat_get(&ls->open) >= ls->max_conns) {
        char why[80];
        snprintf(why, sizeof why, "over the cap of %zu open connections", ls->max_conns);
        refuse_locked(l, fd, id, 0, why);
        pthread_mutex_unlock(&l->mu);
        CM_WARN(COMP, "%s: connection %llu refused: %s", l->name, (unsigned long long)id, why);
        return;
    }
    ch_conn_t *c = calloc(1, sizeof *c + l->nups * sizeof c->ups[0]);
    if (c) {
        c->link = l;
        c->id = id;
        c->cfd = fd;
        c->seed = seed;
        cm_rand_seed(&c->draw, seed);
        /* Round robin: this connection's turn first, then the others in order, to fall
         * back on when its turn's upstream cannot be reached. */
        c->nups = l->nups;
        for (size_t i = 0; i < l->nups; i++)
            memcpy(c->ups[i], l->ups[(l->turn + i) % l->nups].addr, sizeof c->ups[i]);
        c->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    }
    if (!c || c->wake < 0) {
        conn_free(c);
        refuse_locked(l, fd, id, 0, "out of memory or file descriptors");
        pthread_mutex_unlock(&l->mu);
        return;
    }
    /* Refused connections take no turn: the turns go to connections that are proxied. */
    l->turn = (l->turn + 1) % l->nups;
    /* The open entry waits until an upstream is reached (ch_conn.c): it names that one. */
    draw_plan_locked(l, c, 1);
    c->next = l->conns;
    if (l->conns)
        l->conns->prev = c;
    l->conns = c;
    stat_add(&l->st.active, 1);
    stat_add(&ls->open, 1);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, CONN_STACK);
    int rc = pthread_create(&c->thread, &attr, ch_conn_main, c);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        l->conns = c->next;
        if (c->next)
            c->next->prev = NULL;
        __atomic_sub_fetch(&l->st.active, 1, __ATOMIC_RELAXED);
        __atomic_sub_fetch(&ls->open, 1, __ATOMIC_RELAXED);
        conn_free(c);
        ch_journal_add(ls->journal, l->name, id, CH_EV_CLOSE, -1, 0, "could not start a thread: %s",
                       strerror(rc));
        ch_link_rst_close(fd);
    }
    pthread_mutex_unlock(&l->mu);
}

/* Joins the threads of ended connections and frees them. */
static void reap(ch_link_t *l)
{
    pthread_mutex_lock(&l->mu);
    ch_conn_t *z = l->zombies;
    l->zombies = NULL;
    pthread_mutex_unlock(&l->mu);
    while (z) {
        ch_conn_t *next = z->next;
        pthread_join(z->thread, NULL);
        conn_free(z);
        z = next;
    }
}

void ch_link_conn_ended(ch_conn_t *c)
{
    ch_link_t *l = c->link;
    pthread_mutex_lock(&l->mu);
    if (c->prev)
        c->prev->next = c->next;
    else
        l->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = NULL;
    c->next = l->zombies;
    l->zombies = c;
    if (__atomic_sub_fetch(&l->st.active, 1, __ATOMIC_RELAXED) == 0)
        pthread_cond_broadcast(&l->idle);
    __atomic_sub_fetch(&l->owner->open, 1, __ATOMIC_RELAXED);
    /* The link outlives this thread: ch_links_free joins it before freeing the link. */
    wake_fd(l->wake);
    pthread_mutex_unlock(&l->mu);
}

static void *listener_main(void *arg)
{
    ch_link_t *l = arg;
    int backoff = 0;
    for (;;) {
        struct pollfd p[3] = {{.fd = backoff ? -1 : l->lfd, .events = POLLIN},
                              {.fd = l->wake, .events = POLLIN},
                              {.fd = l->owner->stop_fd, .events = POLLIN}};
        /* After running out of descriptors, wait a little before accepting again rather
         * than spin on a listener that stays readable. */
        int r = poll(p, 3, backoff ? 100 : -1);
        backoff = 0;
        if (r < 0 && errno != EINTR) {
            CM_ERROR(COMP, "%s: poll: %s", l->name, strerror(errno));
            break;
        }
        if (r <= 0)
            continue;
        if (p[2].revents)
            break;
        if (p[1].revents) {
            drain_fd(l->wake);
            reap(l);
        }
        while (p[0].revents & POLLIN) {
            int fd = accept(l->lfd, NULL, NULL);
            if (fd >= 0) {
                accept_one(l, fd);
                continue;
            }
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                CM_WARN(COMP, "%s: accept: %s", l->name, strerror(errno));
                backoff = 1;
            } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                       errno != ECONNABORTED) {
                CM_WARN(COMP, "%s: accept: %s", l->name, strerror(errno));
            }
            break;
        }
    }
    return NULL;
}

/* ---- the set ------------------------------------------------------------------------ */

ch_links_t *ch_links_new(const ch_links_cfg_t *cfg, char *err)
{
    ch_links_t *ls = calloc(1, sizeof *ls);
    if (!ls) {
        cm_errf(err, "out of memory");
        return NULL;
    }
    ls->journal = cfg->journal;
    ls->seed = cfg->seed;
    ls->max_conns = cfg->max_conns ? cfg->max_conns : CH_LINK_DEFAULT_MAX_CONNS;
    ls->connect_timeout_ms =
        cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : CH_LINK_CONNECT_TIMEOUT_MS;
    ls->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ls->stop_fd < 0) {
        cm_errf(err, "eventfd: %s", strerror(errno));
        free(ls);
        return NULL;
    }
    pthread_mutex_init(&ls->mu, NULL);
    return ls;
}

static void link_free(ch_link_t *l)
{
    if (l->lfd >= 0)
        close(l->lfd);
    if (l->wake >= 0)
        close(l->wake);
    ch_faults_unref(&l->faults);
    pthread_cond_destroy(&l->idle);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

void ch_links_free(ch_links_t **lsp)
{
    ch_links_t *ls = lsp ? *lsp : NULL;
    if (!ls)
        return;
    wake_fd(ls->stop_fd);
    for (size_t i = 0; i < ls->n; i++)
        if (ls->links[i]->listener_started)
            pthread_join(ls->links[i]->listener, NULL);
    struct timespec deadline = cm_clock_mono_deadline(STOP_WAIT_MS);
    int stuck = 0;
    for (size_t i = 0; i < ls->n; i++) {
        ch_link_t *l = ls->links[i];
        pthread_mutex_lock(&l->mu);
        while (l->conns && pthread_cond_timedwait(&l->idle, &l->mu, &deadline) != ETIMEDOUT)
            ;
        int left = l->conns != NULL;
        pthread_mutex_unlock(&l->mu);
        reap(l);
        if (left) {
            /* A thread that does not stop still uses the link: leaking it is the safe
             * choice. Nothing in a connection thread blocks without watching stop_fd, so
             * this is a bug if it ever shows. */
            CM_ERROR(COMP, "%s: connections still open after %d ms; not freeing the link", l->name,
                     STOP_WAIT_MS);
            stuck = 1;
            continue;
        }
        link_free(l);
    }
    if (stuck)
        return;
    close(ls->stop_fd);
    pthread_mutex_destroy(&ls->mu);
    free(ls);
    *lsp = NULL;
}

/* Creates the listening socket on 127.0.0.1:port. */
static cm_err_t listen_on(uint16_t port, int *fd_out, uint16_t *bound, char *err)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        cm_errf(err, "socket: %s", strerror(errno));
        return CM_EIO;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = errno;
        close(fd);
        cm_errf(err, "cannot listen on 127.0.0.1:%u: %s", (unsigned)port, strerror(e));
        return e == EADDRINUSE ? CM_EEXISTS : CM_EIO;
    }
    if (listen(fd, 128) != 0 || getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
        cm_errf(err, "listen: %s", strerror(errno));
        close(fd);
        return CM_EIO;
    }
    *fd_out = fd;
    *bound = ntohs(sa.sin_port);
    return CM_OK;
}

cm_err_t ch_links_add(ch_links_t *ls, const char *name, const char *const *upstreams, size_t n,
                      uint16_t port, ch_link_t **out, char *err)
{
    if (out)
        *out = NULL;
    if (!ch_link_name_ok(name)) {
        cm_errf(err, "name: \"%.40s\" is not 1 to %d of a-z, 0-9, _ and -", name ? name : "",
                CH_LINK_NAME_MAX);
        return CM_EINVAL;
    }
    if (ch_link_check_upstreams(upstreams, n, n == 1 ? "upstream" : "upstreams", err) != 0)
        return CM_EINVAL;
    cm_err_t rc = CM_OK;
    ch_link_t *l = NULL;
    pthread_mutex_lock(&ls->mu);
    for (size_t i = 0; i < ls->n; i++) {
        if (strcmp(ls->links[i]->name, name) == 0) {
            cm_errf(err, "a link named \"%s\" exists", name);
            rc = CM_EEXISTS;
            goto out;
        }
    }
    if (ls->n >= CH_LINK_MAX) {
        cm_errf(err, "at most %d links", CH_LINK_MAX);
        rc = CM_EINVAL;
        goto out;
    }
    l = calloc(1, sizeof *l);
    if (!l || !(l->faults = ch_faults_empty()) || cm_clock_cond_init(&l->idle) != 0) {
        if (l)
            ch_faults_unref(&l->faults);
        free(l);
        l = NULL;
        cm_errf(err, "out of memory");
        rc = CM_ENOMEM;
        goto out;
    }
    pthread_mutex_init(&l->mu, NULL);
    l->owner = ls;
    l->lfd = -1;
    snprintf(l->name, sizeof l->name, "%s", name);
    set_upstreams_locked(l, upstreams, n); /* l is not shared yet */
    cm_rand_seed(&l->rng, ls->seed ^ name_hash(name));
    l->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->wake < 0) {
        cm_errf(err, "eventfd: %s", strerror(errno));
        rc = CM_EIO;
    }
    if (!rc)
        rc = listen_on(port, &l->lfd, &l->port, err);
    if (!rc) {
        int prc = pthread_create(&l->listener, NULL, listener_main, l);
        if (prc != 0) {
            cm_errf(err, "could not start the listener thread: %s", strerror(prc));
            rc = CM_EIO;
        }
    }
    if (rc) {
        link_free(l);
        l = NULL;
        goto out;
    }
    l->listener_started = 1;
    ls->links[ls->n++] = l;
    CM_INFO(COMP, "link %s: 127.0.0.1:%u -> %s%s", l->name, (unsigned)l->port, l->ups[0].addr,
            n > 1 ? " and more, round robin" : "");
out:
    pthread_mutex_unlock(&ls->mu);
    if (out)
        *out = l;
    return rc;
}

ch_link_t *ch_links_find(ch_links_t *ls, const char *name)
{
    ch_link_t *found = NULL;
    pthread_mutex_lock(&ls->mu);
    for (size_t i = 0; name && i < ls->n && !found; i++)
        if (strcmp(ls->links[i]->name, name) == 0)
            found = ls->links[i];
    pthread_mutex_unlock(&ls->mu);
    return found;
}

/* A snapshot of the links (they are never removed while the set lives). */
static size_t links_snapshot(ch_links_t *ls, ch_link_t **out)
{
    pthread_mutex_lock(&ls->mu);
    size_t n = ls->n;
    memcpy(out, ls->links, n * sizeof *out);
    pthread_mutex_unlock(&ls->mu);
    return n;
}

json_t *ch_links_json(ch_links_t *ls)
{
    ch_link_t *all[CH_LINK_MAX];
    size_t n = links_snapshot(ls, all);
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        json_t *v = ch_link_json(all[i]);
        if (!v || json_array_append_new(a, v) != 0) {
            json_decref(a);
            a = NULL;
        }
    }
    return a;
}

void ch_links_reset(ch_links_t *ls)
{
    ch_link_t *all[CH_LINK_MAX];
    size_t n = links_snapshot(ls, all);
    for (size_t i = 0; i < n; i++)
        ch_link_set_faults(all[i], NULL);
}

/* ---- one link ----------------------------------------------------------------------- */

const char *ch_link_name(const ch_link_t *l)
{
    return l->name;
}

uint16_t ch_link_port(const ch_link_t *l)
{
    return l->port;
}

ch_link_stats_t ch_link_stats(ch_link_t *l)
{
    ch_link_stats_t s = {
        .connections = stat_get(&l->st.connections),
        .active = stat_get(&l->st.active),
        .refused = stat_get(&l->st.refused),
        .resets = stat_get(&l->st.resets),
        .bytes_upstream = stat_get(&l->st.bytes_upstream),
        .bytes_downstream = stat_get(&l->st.bytes_downstream),
        .faults_applied = stat_get(&l->st.faults_applied),
    };
    return s;
}

void ch_link_upstream(ch_link_t *l, char *out, size_t cap)
{
    pthread_mutex_lock(&l->mu);
    snprintf(out, cap, "%s", l->ups[0].addr);
    pthread_mutex_unlock(&l->mu);
}

size_t ch_link_upstreams(ch_link_t *l, ch_link_upstream_t *out, size_t cap)
{
    pthread_mutex_lock(&l->mu);
    size_t n = l->nups;
    memcpy(out, l->ups, (n < cap ? n : cap) * sizeof *out);
    pthread_mutex_unlock(&l->mu);
    return n;
}

cm_err_t ch_link_set_upstreams(ch_link_t *l, const char *const *upstreams, size_t n, char *err)
{
    if (ch_link_check_upstreams(upstreams, n, n == 1 ? "upstream" : "upstreams", err) != 0)
        return CM_EINVAL;
    pthread_mutex_lock(&l->mu);
    set_upstreams_locked(l, upstreams, n);
    pthread_mutex_unlock(&l->mu);
    CM_INFO(COMP, "link %s: new connections go to %s%s", l->name, upstreams[0],
            n > 1 ? " and more, round robin" : "");
    return CM_OK;
}

/* {"upstreams":[...]} and {"per_upstream":{ADDR:{"connections","errors"}}}, new. */
static int upstreams_json(const ch_link_upstream_t *ups, size_t n, json_t **list, json_t **per)
{
    *list = json_array();
    *per = json_object();
    int bad = !*list || !*per;
    for (size_t i = 0; !bad && i < n; i++) {
        json_t *counts = json_pack("{s:I,s:I}", "connections", (json_int_t)ups[i].connections,
                                   "errors", (json_int_t)ups[i].errors);
        bad = json_array_append_new(*list, json_string(ups[i].addr)) != 0 || !counts ||
              json_object_set_new(*per, ups[i].addr, counts) != 0;
    }
    if (bad) {
        json_decref(*list);
        json_decref(*per);
        *list = *per = NULL;
        return -1;
    }
    return 0;
}

json_t *ch_link_json(ch_link_t *l)
{
    ch_link_upstream_t ups[CH_LINK_UPSTREAMS_MAX];
    size_t n = ch_link_upstreams(l, ups, CH_LINK_UPSTREAMS_MAX);
    pthread_mutex_lock(&l->mu);
    json_t *faults = ch_faults_json(l->faults);
    pthread_mutex_unlock(&l->mu);
    json_t *list = NULL, *per = NULL;
    json_t *first = json_string(ups[0].addr);
    ch_link_stats_t s = ch_link_stats(l);
    if (!faults || !first || upstreams_json(ups, n, &list, &per) != 0) {
        json_decref(faults);
        json_decref(first);
        return NULL;
    }
    return json_pack("{s:s,s:i,s:o,s:o,s:o,s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o}}", "name", l->name,
                     "port", (int)l->port, "upstream", first, "upstreams", list, "faults", faults,
                     "stats", "connections", (json_int_t)s.connections, "active",
                     (json_int_t)s.active, "refused", (json_int_t)s.refused, "resets",
                     (json_int_t)s.resets, "bytes_upstream", (json_int_t)s.bytes_upstream,
                     "bytes_downstream", (json_int_t)s.bytes_downstream, "faults_applied",
                     (json_int_t)s.faults_applied, "per_upstream", per);
}
