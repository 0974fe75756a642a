/* test_ch_link.c - the data path over real loopback TCP: an echo server upstream, a link
 * in front of it, a blocking client. Pass-through, every fault, fault changes on open
 * connections, upstream switch, seeded draws, the cap, stats and journal. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ch_fault.h"
#include "ch_journal.h"
#include "ch_link.h"
#include "cm_clock.h"
#include "cm_json.h"
#include "cm_log.h"
#include "test_ch_util.h"

static ch_journal_t *jr;
static ch_links_t *ls;
static ch_link_t *lk;
static tu_server_t *up;

static ch_links_t *new_links(uint64_t seed, size_t max_conns)
{
    char err[CM_ERR_LEN] = "";
    ch_links_t *s =
        ch_links_new(&(ch_links_cfg_t){.seed = seed, .journal = jr, .max_conns = max_conns}, err);
    cr_assert_not_null(s, "%s", err);
    return s;
}

static ch_link_t *add_link(ch_links_t *s, const char *name, const tu_server_t *to)
{
    char err[CM_ERR_LEN] = "", upstream[32];
    ch_link_t *l = NULL;
    snprintf(upstream, sizeof upstream, "127.0.0.1:%u", tu_server_port(to));
    cr_assert_eq(ch_links_add(s, name, (const char *[]){upstream}, 1, 0, &l, err), CM_OK, "%s",
                 err);
    return l;
}

static void setup(void)
{
    cm_log_set_level("warn");
    up = tu_server_start(NULL);
    cr_assert_not_null(up);
    jr = ch_journal_new(0);
    ls = new_links(1, 0);
    lk = add_link(ls, "echo", up);
}

static void teardown(void)
{
    ch_links_free(&ls);
    cr_expect_null(ls, "every connection thread stopped");
    tu_server_stop(&up);
    ch_journal_free(&jr);
}

TestSuite(link, .init = setup, .fini = teardown, .timeout = 60);

static void set_faults(ch_link_t *l, const char *text)
{
    char err[CM_ERR_LEN] = "";
    json_t *body = NULL;
    ch_faults_t *f = NULL;
    cr_assert_eq(cm_json_parse(text, strlen(text), 1 << 16, &body, err), CM_OK, "%s", err);
    cr_assert_eq(ch_faults_parse(body, &f, err), CM_OK, "%s: %s", text, err);
    json_decref(body);
    ch_link_set_faults(l, f);
}

static int connect_link(const ch_link_t *l)
{
    int fd = tu_connect(ch_link_port(l));
    cr_assert_geq(fd, 0, "cannot connect to the link");
    return fd;
}

/* Sends msg and expects it back within timeout_ms; returns the round trip in ms. */
static int64_t round_trip(int fd, const char *msg, int timeout_ms)
{
    char buf[256] = "";
    size_t n = strlen(msg);
    tu_how_t how;
    int64_t t0 = cm_clock_mono_ms();
    cr_assert_eq(tu_send_all(fd, msg, n, timeout_ms), 0);
    size_t got = tu_recv_n(fd, buf, n, timeout_ms, &how, NULL);
    int64_t dt = cm_clock_mono_ms() - t0;
    cr_assert_eq(got, n, "echo of \"%s\": got %zu bytes (%s) after %lld ms", msg, got,
                 tu_how_name(how), (long long)dt);
    cr_assert_eq(memcmp(buf, msg, n), 0);
    return dt;
}

static size_t journal_count(uint64_t conn, ch_event_t ev)
{
    return ch_journal_count(jr, &(ch_journal_filter_t){.conn = conn, .event = (int)ev});
}

static size_t journal_wait(uint64_t conn, ch_event_t ev, size_t n)
{
    return ch_journal_wait(jr, &(ch_journal_filter_t){.conn = conn, .event = (int)ev}, n, 5000);
}

static int link_idle(void *arg)
{
    return ch_link_stats(arg).active == 0;
}

/* ---- pass-through ------------------------------------------------------------------- */

typedef struct {
    int fd;
    const unsigned char *buf;
    size_t len;
    int rc;
} sender_t;

static void *send_main(void *arg)
{
    sender_t *s = arg;
    s->rc = tu_send_all(s->fd, s->buf, s->len, 30000);
    return NULL;
}

Test(link, passthrough_1mib_both_ways)
{
    const size_t len = 1 << 20;
    unsigned char *out = malloc(len), *in = malloc(len);
    tu_pattern(out, len, 42);
    int fd = connect_link(lk);
    /* Send from a thread while reading here: the echo comes back as it goes out. */
    sender_t s = {.fd = fd, .buf = out, .len = len};
    pthread_t th;
    pthread_create(&th, NULL, send_main, &s);
    tu_how_t how;
    size_t got = tu_recv_n(fd, in, len, 30000, &how, NULL);
    pthread_join(th, NULL);
    cr_assert_eq(s.rc, 0, "send: %s", strerror(s.rc));
    cr_assert_eq(got, len, "got %zu of %zu bytes (%s)", got, len, tu_how_name(how));
    cr_assert_eq(memcmp(in, out, len), 0, "bytes changed or reordered");
    close(fd);
    cr_assert(tu_wait_until(link_idle, lk, 5000), "the connection did not end");

    ch_link_stats_t st = ch_link_stats(lk);
    cr_expect_eq(st.connections, 1);
    cr_expect_eq(st.active, 0);
    cr_expect_eq(st.bytes_upstream, len, "bytes_upstream %llu",
                 (unsigned long long)st.bytes_upstream);
    cr_expect_eq(st.bytes_downstream, len);
    cr_expect_eq(st.resets + st.refused + st.faults_applied, 0);
    cr_expect_eq(tu_server_received(up), len);
    cr_expect_eq(journal_count(1, CH_EV_OPEN), 1);
    cr_expect_eq(journal_count(1, CH_EV_CLOSE), 1);

    json_t *v = ch_link_json(lk);
    cr_expect_str_eq(cm_json_str(v, "name", ""), "echo");
    cr_expect_eq(cm_json_int(v, "port", 0), ch_link_port(lk));
    cr_expect_eq(cm_json_int(v, "stats.bytes_downstream", 0), (int64_t)len);
    cr_expect_eq(json_array_size(cm_json_path(v, "faults")), 0);
    json_decref(v);
    free(out);
    free(in);
}

Test(link, half_close_is_forwarded)
{
    int fd = connect_link(lk);
    cr_assert_eq(tu_send_all(fd, "abc", 3, 2000), 0);
    shutdown(fd, SHUT_WR);
    char buf[8];
    tu_how_t how;
    size_t got = tu_recv_n(fd, buf, sizeof buf, 5000, &how, NULL);
    cr_expect_eq(got, 3);
    cr_expect_eq(how, TU_EOF, "the echo server's FIN comes through: %s", tu_how_name(how));
    close(fd);
    cr_expect_eq(journal_wait(1, CH_EV_CLOSE, 1), 1);
}

/* ---- latency, bandwidth, slice ------------------------------------------------------ */

Test(link, latency)
{
    set_faults(lk, "{\"faults\":[{\"latency\":\"200ms\",\"direction\":\"downstream\"}]}");
    int fd = connect_link(lk);
    int64_t rtt = round_trip(fd, "ping", 5000);
    cr_expect(rtt >= 190 && rtt < 2000, "one-way 200 ms: round trip %lld ms", (long long)rtt);
    cr_expect_eq(journal_count(1, CH_EV_FAULT), 1);

    /* A new list applies to the open connection from its next chunk: both ways now. */
    set_faults(lk, "{\"faults\":[{\"latency\":\"150ms\"}]}");
    rtt = round_trip(fd, "pong", 5000);
    cr_expect(rtt >= 290 && rtt < 2500, "150 ms each way: round trip %lld ms", (long long)rtt);

    /* Jitter stays within latency +- jitter. */
    set_faults(lk, "{\"faults\":[{\"latency\":\"100ms\",\"jitter\":\"80ms\","
                   "\"direction\":\"upstream\"}]}");
    for (int i = 0; i < 4; i++) {
        rtt = round_trip(fd, "jit", 5000);
        cr_expect(rtt >= 15 && rtt < 1500, "100 +- 80 ms: round trip %lld ms", (long long)rtt);
    }
    ch_link_set_faults(lk, NULL);
    rtt = round_trip(fd, "fast", 5000);
    cr_expect(rtt < 150, "no latency once cleared: %lld ms", (long long)rtt);
    close(fd);
}

Test(link, bandwidth)
{
    set_faults(lk, "{\"faults\":[{\"bandwidth\":40000,"
                   "\"direction\":\"downstream\"}]}");
    const size_t len = 20000;
    unsigned char *out = malloc(len), *in = malloc(len);
    tu_pattern(out, len, 7);
    int fd = connect_link(lk);
    int64_t t0 = cm_clock_mono_ms();
    cr_assert_eq(tu_send_all(fd, out, len, 5000), 0);
    tu_how_t how;
    size_t got = tu_recv_n(fd, in, len, 10000, &how, NULL);
    int64_t dt = cm_clock_mono_ms() - t0;
    cr_assert_eq(got, len, "%s", tu_how_name(how));
    cr_expect_eq(memcmp(in, out, len), 0);
    /* 20000 B at 40000 B/s is 0.5 s (the first 50 ms piece leaves at once). */
    cr_expect(dt >= 400 && dt < 2500, "took %lld ms", (long long)dt);
    close(fd);
    free(out);
    free(in);
}

Test(link, slice_delivers_in_pieces)
{
    set_faults(lk, "{\"faults\":[{\"slice\":100,\"interval\":\"10ms\","
                   "\"direction\":\"downstream\"}]}");
    const size_t len = 2000;
    unsigned char out[2000], in[2000];
    tu_pattern(out, len, 3);
    int fd = connect_link(lk);
    int64_t t0 = cm_clock_mono_ms();
    cr_assert_eq(tu_send_all(fd, out, len, 5000), 0);
    tu_how_t how;
    int nreads = 0;
    size_t got = tu_recv_n(fd, in, len, 10000, &how, &nreads);
    int64_t dt = cm_clock_mono_ms() - t0;
    cr_assert_eq(got, len, "%s", tu_how_name(how));
    cr_expect_eq(memcmp(in, out, len), 0, "pieces arrive intact and in order");
    /* About 20 pieces of 50-150 bytes, 10 ms apart. */
    cr_expect_geq(nreads, 5, "only %d reads", nreads);
    cr_expect(dt >= 100 && dt < 3000, "took %lld ms", (long long)dt);
    close(fd);
}

/* ---- reset, hang, hang_max, down -------------------------------------------------- */

Test(link, reset_after_bytes)
{
    set_faults(lk, "{\"faults\":[{\"socket\":\"reset\",\"after_bytes\":1000,"
                   "\"direction\":\"downstream\"}]}");
    unsigned char out[10000], in[10000];
    tu_pattern(out, sizeof out, 9);
    int fd = connect_link(lk);
    cr_assert_eq(tu_send_all(fd, out, sizeof out, 5000), 0);
    tu_how_t how;
    size_t got = tu_recv_n(fd, in, sizeof in, 5000, &how, NULL);
    cr_expect(how == TU_RESET || how == TU_EOF, "ended by %s", tu_how_name(how));
    cr_expect_leq(got, 1000, "got %zu bytes past the reset point", got);
    cr_expect_eq(memcmp(in, out, got), 0);
    close(fd);
    cr_assert_eq(journal_wait(1, CH_EV_RESET, 1), 1);
    json_t *v = ch_journal_query(jr, &(ch_journal_filter_t){.event = CH_EV_RESET});
    cr_expect_str_eq(cm_json_str(v, "entries.0.fault", ""), "reset");
    cr_expect_str_eq(cm_json_str(v, "entries.0.direction", ""), "downstream");
    json_decref(v);
    cr_assert(tu_wait_until(link_idle, lk, 5000));
    cr_expect_eq(ch_link_stats(lk).resets, 1);
    cr_expect_eq(ch_link_stats(lk).bytes_downstream, 1000);

    /* after_bytes 0 upstream: the request never reaches the upstream. */
    set_faults(lk, "{\"faults\":[{\"socket\":\"reset\",\"direction\":\"upstream\"}]}");
    uint64_t before = tu_server_received(up);
    fd = connect_link(lk);
    cr_assert_eq(tu_send_all(fd, "GET / HTTP/1.1\r\n\r\n", 18, 2000), 0);
    got = tu_recv_n(fd, in, 10, 5000, &how, NULL);
    cr_expect_eq(got, 0);
    cr_expect_eq(how, TU_RESET, "ended by %s", tu_how_name(how));
    close(fd);
    cr_expect_eq(journal_wait(2, CH_EV_RESET, 1), 1);
    cr_expect_eq(tu_server_received(up), before, "the upstream got no byte");
    cr_expect_eq(ch_link_stats(lk).resets, 2);
}

static int upstream_got_5(void *arg)
{
    return tu_server_received(arg) == 5;
}

Test(link, hang_keeps_connection_open)
{
    set_faults(lk, "{\"faults\":[{\"socket\":\"hang\",\"direction\":\"downstream\"}]}");
    int fd = connect_link(lk);
    cr_assert_eq(tu_send_all(fd, "hello", 5, 2000), 0);
    char buf[16];
    tu_how_t how;
    size_t got = tu_recv_n(fd, buf, 5, 400, &how, NULL);
    cr_expect_eq(got, 0);
    cr_expect_eq(how, TU_TIMEOUT, "the client's read should time out, not %s", tu_how_name(how));
    cr_expect_eq(ch_link_stats(lk).active, 1, "the connection stays open");
    /* The client's read timing out says nothing about the upstream side: wait for it. */
    cr_expect(tu_wait_until(upstream_got_5, up, 5000), "requests still flow: %llu bytes",
              (unsigned long long)tu_server_received(up));
    /* Cleared: the same connection carries data again. */
    ch_link_set_faults(lk, NULL);
    round_trip(fd, "world", 3000);
    close(fd);
}

Test(link, hang_max_closes_with_fin)
{
    set_faults(
        lk,
        "{\"faults\":[{\"socket\":\"hang\",\"hang_max\":\"300ms\",\"direction\":\"downstream\"}]}");
    int fd = connect_link(lk);
    int64_t t0 = cm_clock_mono_ms();
    cr_assert_eq(tu_send_all(fd, "x", 1, 2000), 0);
    char buf[4];
    tu_how_t how;
    size_t got = tu_recv_n(fd, buf, 1, 5000, &how, NULL);
    int64_t dt = cm_clock_mono_ms() - t0;
    cr_expect_eq(got, 0);
    cr_expect_eq(how, TU_EOF, "closed with FIN, not %s", tu_how_name(how));
    cr_expect(dt >= 250 && dt < 3000, "closed after %lld ms", (long long)dt);
    close(fd);
    cr_assert_eq(journal_wait(1, CH_EV_CLOSE, 1), 1);
    json_t *v = ch_journal_query(jr, &(ch_journal_filter_t){.event = CH_EV_CLOSE});
    cr_expect_str_eq(cm_json_str(v, "entries.0.fault", ""), "hang");
    const char *detail = cm_json_str(v, "entries.0.detail", "");
    cr_expect_eq(strncmp(detail, "faults[0]: hung for its hang_max of 300ms, then closed;", 55), 0,
                 "detail: %s", detail);
    json_decref(v);
}

Test(link, down_refuses_and_resets_then_recovers)
{
    int open_fd = connect_link(lk);
    round_trip(open_fd, "before", 3000);

    set_faults(lk, "{\"faults\":[{\"down\":true}]}");
    char buf[8];
    tu_how_t how;
    size_t got = tu_recv_n(open_fd, buf, 1, 5000, &how, NULL);
    cr_expect_eq(got, 0);
    cr_expect_eq(how, TU_RESET, "the open connection is reset, not %s", tu_how_name(how));
    close(open_fd);

    int fd = connect_link(lk); /* accepted by the kernel, then reset */
    got = tu_recv_n(fd, buf, 1, 5000, &how, NULL);
    cr_expect_eq(got, 0);
    cr_expect_eq(how, TU_RESET, "a new connection is refused, not %s", tu_how_name(how));
    close(fd);
    cr_assert_eq(journal_wait(2, CH_EV_REFUSED, 1), 1);
    cr_assert(tu_wait_until(link_idle, lk, 5000));
    ch_link_stats_t st = ch_link_stats(lk);
    cr_expect_eq(st.refused, 1);
    cr_expect_eq(st.resets, 1);
    cr_expect_eq(st.connections, 2);
    cr_expect_eq(st.faults_applied, 2, "down counts once per connection it hit");

    ch_link_set_faults(lk, NULL);
    fd = connect_link(lk);
    round_trip(fd, "after", 3000);
    close(fd);
    cr_expect_eq(ch_link_stats(lk).refused, 1);
}

/* ---- upstreams ---------------------------------------------------------------------- */

Test(link, put_upstream_switches_new_connections)
{
    tu_server_t *a = tu_server_start("A"), *b = tu_server_start("B");
    ch_link_t *sw = add_link(ls, "sw", a);
    char buf[8];
    tu_how_t how;
    int fd1 = connect_link(sw);
    cr_assert_eq(tu_recv_n(fd1, buf, 1, 3000, &how, NULL), 1);
    cr_expect_eq(buf[0], 'A');

    char err[CM_ERR_LEN] = "", to[32];
    snprintf(to, sizeof to, "127.0.0.1:%u", tu_server_port(b));
    cr_assert_eq(ch_link_set_upstreams(sw, (const char *[]){to}, 1, err), CM_OK, "%s", err);
    cr_expect_eq(ch_link_set_upstreams(sw, (const char *[]){"nohost"}, 1, err), CM_EINVAL);
    cr_expect_str_eq(err, "upstream: \"nohost\" is not HOST:PORT with a port from 1 to 65535");
    int fd2 = connect_link(sw);
    cr_assert_eq(tu_recv_n(fd2, buf, 1, 3000, &how, NULL), 1);
    cr_expect_eq(buf[0], 'B', "a new connection goes to the new upstream");

    round_trip(fd1, "old", 3000);
    cr_expect_eq(tu_server_received(a), 3, "the open connection keeps its upstream");
    cr_expect_eq(tu_server_received(b), 0);
    close(fd1);
    close(fd2);
    ch_links_free(&ls); /* before the servers go */
    tu_server_stop(&a);
    tu_server_stop(&b);
}

Test(link, upstream_error)
{
    /* A port nobody listens on: bind one, then let it go. */
    tu_server_t *gone = tu_server_start(NULL);
    ch_link_t *dead = add_link(ls, "dead", gone);
    tu_server_stop(&gone);
    int fd = connect_link(dead);
    char buf[4];
    tu_how_t how;
    size_t got = tu_recv_n(fd, buf, 1, 5000, &how, NULL);
    cr_expect_eq(got, 0);
    cr_expect_eq(how, TU_RESET, "the client sees a reset, not %s", tu_how_name(how));
    close(fd);
    cr_assert_eq(journal_wait(1, CH_EV_UPSTREAM_ERROR, 1), 1);
    json_t *v = ch_journal_query(jr, &(ch_journal_filter_t){.event = CH_EV_UPSTREAM_ERROR});
    cr_expect(strstr(cm_json_str(v, "entries.0.detail", ""), "Connection refused"), "%s",
              cm_json_str(v, "entries.0.detail", ""));
    cr_expect_str_eq(cm_json_str(v, "entries.0.link", ""), "dead");
    json_decref(v);
}

/* ---- several upstreams, round robin --------------------------------------------------- */

/* A link "rr" over the n addresses of the servers (NULL: a port nobody listens on). */
static ch_link_t *add_rr(ch_links_t *s, tu_server_t **srv, size_t n, char addrs[][32])
{
    const char *ups[8];
    for (size_t i = 0; i < n; i++) {
        if (srv[i]) {
            snprintf(addrs[i], 32, "127.0.0.1:%u", tu_server_port(srv[i]));
        } else {
            tu_server_t *gone = tu_server_start(NULL); /* bind a port, then let it go */
            snprintf(addrs[i], 32, "127.0.0.1:%u", tu_server_port(gone));
            tu_server_stop(&gone);
        }
        ups[i] = addrs[i];
    }
    char err[CM_ERR_LEN] = "";
    ch_link_t *l = NULL;
    cr_assert_eq(ch_links_add(s, "rr", ups, n, 0, &l, err), CM_OK, "%s", err);
    return l;
}

/* Connects to l and returns the one-letter greeting of the upstream it reached, or '-'
 * with *how saying how it ended. The connection is closed. */
static char greeting_of(const ch_link_t *l, tu_how_t *how)
{
    char buf[2] = "-";
    int fd = connect_link(l);
    size_t got = tu_recv_n(fd, buf, 1, 5000, how, NULL);
    close(fd);
    return got == 1 ? buf[0] : '-';
}

static ch_link_upstream_t upstream_stats(ch_link_t *l, size_t i)
{
    ch_link_upstream_t ups[CH_LINK_UPSTREAMS_MAX];
    size_t n = ch_link_upstreams(l, ups, CH_LINK_UPSTREAMS_MAX);
    cr_assert_lt(i, n);
    return ups[i];
}

Test(link, round_robin_in_turn)
{
    tu_server_t *srv[3] = {tu_server_start("A"), tu_server_start("B"), tu_server_start("C")};
    char addrs[3][32];
    ch_link_t *l = add_rr(ls, srv, 3, addrs);
    char seen[10] = "";
    for (int i = 0; i < 9; i++) {
        tu_how_t how;
        seen[i] = greeting_of(l, &how);
    }
    cr_expect_str_eq(seen, "ABCABCABC", "connections go to the upstreams in turn");
    cr_assert(tu_wait_until(link_idle, l, 5000));
    for (size_t i = 0; i < 3; i++) {
        ch_link_upstream_t u = upstream_stats(l, i);
        cr_expect_str_eq(u.addr, addrs[i]);
        cr_expect_eq(u.connections, 3, "%s: %llu connections", u.addr,
                     (unsigned long long)u.connections);
        cr_expect_eq(u.errors, 0);
        cr_expect_eq(tu_server_accepted(srv[i]), 3);
    }
    /* The journal's open entries name the upstream each connection reached. */
    json_t *v = ch_journal_query(jr, &(ch_journal_filter_t){.link = "rr", .event = CH_EV_OPEN});
    cr_assert_eq(cm_json_int(v, "count", 0), 9);
    for (int i = 0; i < 9; i++) {
        char path[32];
        snprintf(path, sizeof path, "entries.%d.upstream", i);
        cr_expect_str_eq(cm_json_str(v, path, ""), addrs[i % 3], "open #%d", i);
    }
    json_decref(v);
    v = ch_link_json(l);
    cr_expect_str_eq(cm_json_str(v, "upstream", ""), addrs[0], "the first, for compatibility");
    cr_expect_eq(json_array_size(cm_json_path(v, "upstreams")), 3);
    cr_expect_str_eq(cm_json_str(v, "upstreams.2", ""), addrs[2]);
    json_t *per = cm_json_path(v, "stats.per_upstream");
    cr_expect_eq(json_object_size(per), 3);
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(per, addrs[1]), "connections")),
                 3);
    json_decref(v);
    ch_links_free(&ls);
    for (int i = 0; i < 3; i++)
        tu_server_stop(&srv[i]);
}

Test(link, an_upstream_down_passes_its_turns_on)
{
    /* B is down: its turns go to C, the next one; the client never sees a reset. */
    tu_server_t *srv[3] = {tu_server_start("A"), NULL, tu_server_start("C")};
    char addrs[3][32];
    ch_link_t *l = add_rr(ls, srv, 3, addrs);
    char seen[10] = "";
    for (int i = 0; i < 9; i++) {
        tu_how_t how = TU_FULL;
        seen[i] = greeting_of(l, &how);
        cr_expect_neq(seen[i], '-', "connection %d ended by %s", i + 1, tu_how_name(how));
    }
    cr_expect_str_eq(seen, "ACCACCACC");
    cr_assert(tu_wait_until(link_idle, l, 5000));
    cr_expect_eq(upstream_stats(l, 0).connections, 3);
    cr_expect_eq(upstream_stats(l, 1).connections, 0);
    cr_expect_eq(upstream_stats(l, 1).errors, 3);
    cr_expect_eq(upstream_stats(l, 2).connections, 6);
    cr_expect_eq(upstream_stats(l, 2).errors, 0);

    /* Connection 2 (B's turn): upstream_error naming B and C, then the open that reached C. */
    json_t *v = ch_journal_query(jr, &(ch_journal_filter_t){.conn = 2, .event = -1});
    char detail[128];
    snprintf(detail, sizeof detail, "connect to %s: Connection refused; trying %s", addrs[1],
             addrs[2]);
    size_t n = json_array_size(cm_json_path(v, "entries"));
    cr_assert_geq(n, 3, "%zu entries", n);
    cr_expect_str_eq(cm_json_str(v, "entries.0.event", ""), "upstream_error");
    cr_expect_str_eq(cm_json_str(v, "entries.0.upstream", ""), addrs[1]);
    cr_expect_str_eq(cm_json_str(v, "entries.0.detail", ""), detail);
    cr_expect_str_eq(cm_json_str(v, "entries.1.event", ""), "open");
    cr_expect_str_eq(cm_json_str(v, "entries.1.upstream", ""), addrs[2]);
    const char *open = cm_json_str(v, "entries.1.detail", "");
    cr_expect(strstr(open, ", after 1 upstream failed"), "%s", open);
    cr_expect_str_eq(cm_json_str(v, "entries.2.event", ""), "close");
    cr_expect_str_eq(cm_json_str(v, "entries.2.upstream", ""), addrs[2]);
    json_decref(v);
    cr_expect_eq(ch_journal_count(jr, &(ch_journal_filter_t){.event = CH_EV_UPSTREAM_ERROR}), 3);
    cr_expect_eq(ch_journal_count(jr, &(ch_journal_filter_t){.link = "rr", .event = CH_EV_OPEN}),
                 9);

    /* All down: a RST as with one upstream, and the journal says all failed. */
    tu_server_stop(&srv[0]);
    tu_server_stop(&srv[2]);
    tu_how_t how;
    cr_expect_eq(greeting_of(l, &how), '-');
    cr_expect_eq(how, TU_RESET, "the client sees a reset, not %s", tu_how_name(how));
    cr_assert_eq(journal_wait(10, CH_EV_UPSTREAM_ERROR, 3), 3);
    v = ch_journal_query(jr, &(ch_journal_filter_t){.conn = 10, .event = -1});
    snprintf(detail, sizeof detail, "connect to %s: Connection refused; all 3 upstreams failed",
             addrs[0]);
    /* Connection 10 is A's turn: A, B, C tried in that order. */
    cr_expect_str_eq(cm_json_str(v, "entries.0.upstream", ""), addrs[0]);
    cr_expect_str_eq(cm_json_str(v, "entries.1.upstream", ""), addrs[1]);
    cr_expect_str_eq(cm_json_str(v, "entries.2.upstream", ""), addrs[2]);
    snprintf(detail, sizeof detail, "connect to %s: Connection refused; all 3 upstreams failed",
             addrs[2]);
    cr_expect_str_eq(cm_json_str(v, "entries.2.detail", ""), detail);
    cr_expect_eq(ch_journal_count(jr, &(ch_journal_filter_t){.conn = 10, .event = CH_EV_OPEN}), 0);
    json_decref(v);
    ch_links_free(&ls);
}

Test(link, a_timed_out_upstream_passes_its_turn_on)
{
    /* A listener whose accept queue is full drops new SYNs: connects to it time out. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(lfd, 0), 0);
    cr_assert_eq(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
    int filler = tu_connect(ntohs(sa.sin_port)); /* fills the queue of 1; never accepted */
    cr_assert_geq(filler, 0);

    ch_links_t *s =
        ch_links_new(&(ch_links_cfg_t){.seed = 1, .journal = jr, .connect_timeout_ms = 300}, NULL);
    tu_server_t *b = tu_server_start("B");
    char slow[32], good[32], err[CM_ERR_LEN] = "";
    snprintf(slow, sizeof slow, "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
    snprintf(good, sizeof good, "127.0.0.1:%u", tu_server_port(b));
    ch_link_t *l = NULL;
    cr_assert_eq(ch_links_add(s, "slow", (const char *[]){slow, good}, 2, 0, &l, err), CM_OK, "%s",
                 err);
    tu_how_t how;
    int64_t t0 = cm_clock_mono_ms();
    char got = greeting_of(l, &how);
    int64_t dt = cm_clock_mono_ms() - t0;
    cr_expect_eq(got, 'B', "the slow one's turn went to B (%s)", tu_how_name(how));
    cr_expect(dt >= 250 && dt < 3000, "after the 300 ms connect timeout: %lld ms", (long long)dt);
    json_t *v =
        ch_journal_query(jr, &(ch_journal_filter_t){.link = "slow", .event = CH_EV_UPSTREAM_ERROR});
    const char *d = cm_json_str(v, "entries.0.detail", "");
    cr_expect(strstr(d, "timed out"), "%s", d);
    cr_expect_str_eq(cm_json_str(v, "entries.0.upstream", ""), slow);
    json_decref(v);
    ch_links_free(&s);
    tu_server_stop(&b);
    close(filler);
    close(lfd);
}

Test(link, set_upstreams_keeps_counts_and_restarts_turns)
{
    tu_server_t *srv[3] = {tu_server_start("A"), tu_server_start("B"), tu_server_start("C")};
    char addrs[3][32], err[CM_ERR_LEN] = "";
    ch_link_t *l = add_rr(ls, srv, 2, addrs);
    tu_how_t how;
    cr_expect_eq(greeting_of(l, &how), 'A');
    int open_fd = connect_link(l); /* B's turn, kept open across the change */
    char buf[4];
    cr_assert_eq(tu_recv_n(open_fd, buf, 1, 3000, &how, NULL), 1);
    cr_expect_eq(buf[0], 'B');

    snprintf(addrs[2], 32, "127.0.0.1:%u", tu_server_port(srv[2]));
    cr_assert_eq(ch_link_set_upstreams(l, (const char *[]){addrs[2], addrs[1]}, 2, err), CM_OK,
                 "%s", err);
    cr_expect_eq(greeting_of(l, &how), 'C', "turns start again from the new first");
    cr_expect_eq(greeting_of(l, &how), 'B');
    round_trip(open_fd, "old", 3000);
    cr_expect_eq(tu_server_received(srv[1]), 3, "the open connection keeps its upstream");
    close(open_fd);
    cr_assert(tu_wait_until(link_idle, l, 5000));
    cr_expect_str_eq(upstream_stats(l, 0).addr, addrs[2]);
    cr_expect_eq(upstream_stats(l, 0).connections, 1);
    cr_expect_str_eq(upstream_stats(l, 1).addr, addrs[1]);
    cr_expect_eq(upstream_stats(l, 1).connections, 2, "B kept its count across the change");
    ch_link_upstream_t all[CH_LINK_UPSTREAMS_MAX];
    cr_expect_eq(ch_link_upstreams(l, all, CH_LINK_UPSTREAMS_MAX), 2, "A was dropped");

    /* Refusals name the field and the item; nothing changes. */
    cr_expect_eq(ch_link_set_upstreams(l, (const char *[]){addrs[0], "x"}, 2, err), CM_EINVAL);
    cr_expect_str_eq(err, "upstreams[1]: \"x\" is not HOST:PORT with a port from 1 to 65535");
    cr_expect_eq(ch_link_set_upstreams(l, (const char *[]){addrs[0], addrs[0]}, 2, err), CM_EINVAL);
    char want[96];
    snprintf(want, sizeof want, "upstreams[1]: \"%s\" is already upstreams[0]", addrs[0]);
    cr_expect_str_eq(err, want);
    const char *many[17];
    for (int i = 0; i < 17; i++)
        many[i] = addrs[0];
    cr_expect_eq(ch_link_set_upstreams(l, many, 17, err), CM_EINVAL);
    cr_expect_str_eq(err, "upstreams: must be a list of 1 to 16 HOST:PORT");
    cr_expect_eq(ch_link_set_upstreams(l, many, 0, err), CM_EINVAL);
    cr_expect_eq(ch_link_upstreams(l, all, CH_LINK_UPSTREAMS_MAX), 2, "unchanged");
    ch_links_free(&ls);
    for (int i = 0; i < 3; i++)
        tu_server_stop(&srv[i]);
}

Test(link, add_errors)
{
    char err[CM_ERR_LEN] = "";
    cr_expect_eq(ch_links_add(ls, "echo", (const char *[]){"127.0.0.1:1"}, 1, 0, NULL, err),
                 CM_EEXISTS);
    cr_expect_str_eq(err, "a link named \"echo\" exists");
    cr_expect_eq(ch_links_add(ls, "Bad Name", (const char *[]){"127.0.0.1:1"}, 1, 0, NULL, err),
                 CM_EINVAL);
    cr_expect_str_eq(err, "name: \"Bad Name\" is not 1 to 32 of a-z, 0-9, _ and -");
    cr_expect_eq(ch_links_add(ls, "x", (const char *[]){"127.0.0.1:0"}, 1, 0, NULL, err),
                 CM_EINVAL);
    cr_expect_eq(
        ch_links_add(ls, "x", (const char *[]){"127.0.0.1:1"}, 1, ch_link_port(lk), NULL, err),
        CM_EEXISTS, "the port is taken: %s", err);
    cr_expect_null(ch_links_find(ls, "x"), "nothing added on error");
    char host[64];
    uint16_t port;
    cr_expect_eq(ch_link_parse_upstream("[::1]:8080", host, sizeof host, &port, err), 0);
    cr_expect_str_eq(host, "::1");
    cr_expect_eq(port, 8080);
    cr_expect_eq(ch_link_parse_upstream("localhost:65535", host, sizeof host, &port, err), 0);
    cr_expect_eq(ch_link_parse_upstream("localhost:65536", host, sizeof host, &port, err), -1);
    cr_expect_eq(ch_link_parse_upstream(":80", host, sizeof host, &port, err), -1);
    cr_expect_eq(ch_link_parse_upstream("a:b:80", host, sizeof host, &port, err), -1);
    cr_expect_eq(ch_link_name_ok("calcom_v2-x"), 1);
    cr_expect_eq(ch_link_name_ok(""), 0);
    cr_expect_eq(ch_link_name_ok("123456789012345678901234567890123"), 0);
}

/* ---- draws -------------------------------------------------------------------------- */

Test(link, probability_zero_and_one)
{
    set_faults(lk, "{\"faults\":[{\"socket\":\"reset\",\"direction\":\"upstream\","
                   "\"probability\":0}]}");
    for (int i = 0; i < 5; i++) {
        int fd = connect_link(lk);
        round_trip(fd, "never", 3000);
        close(fd);
    }
    cr_expect_eq(ch_journal_count(jr, &(ch_journal_filter_t){.event = CH_EV_FAULT}), 0);
    /* Closed connections still open in the proxy would draw the next list too. */
    cr_assert(tu_wait_until(link_idle, lk, 5000));
    set_faults(lk, "{\"faults\":[{\"socket\":\"reset\",\"direction\":\"upstream\","
                   "\"probability\":1}]}");
    for (int i = 0; i < 5; i++) {
        int fd = connect_link(lk);
        char buf[4];
        tu_how_t how;
        cr_assert_eq(tu_send_all(fd, "always", 6, 2000), 0);
        cr_expect_eq(tu_recv_n(fd, buf, 1, 5000, &how, NULL), 0);
        cr_expect_eq(how, TU_RESET, "connection %d: %s", i, tu_how_name(how));
        close(fd);
    }
    cr_expect_eq(ch_journal_wait(jr, &(ch_journal_filter_t){.event = CH_EV_RESET}, 5, 5000), 5);
    cr_expect_eq(ch_journal_count(jr, &(ch_journal_filter_t){.event = CH_EV_FAULT}), 5);
    cr_expect_eq(ch_link_stats(lk).faults_applied, 5);
}

/* Opens 24 connections one after the other on a fresh proxy with this seed; returns the
 * bit set of those that drew the fault (probability 0.5). */
static uint32_t draws(uint64_t seed)
{
    ch_journal_t *saved = jr;
    jr = ch_journal_new(0);
    ch_links_t *s = new_links(seed, 0);
    ch_link_t *l = add_link(s, "p", up);
    set_faults(l, "{\"faults\":[{\"latency\":\"0ms\",\"probability\":0.5}]}");
    for (uint64_t i = 1; i <= 24; i++) {
        int fd = connect_link(l);
        /* One at a time, so accept order is connection order. */
        cr_assert_eq(journal_wait(i, CH_EV_OPEN, 1), 1);
        close(fd);
    }
    /* A connection's draws are journaled at accept, before its open entry. */
    cr_assert(tu_wait_until(link_idle, l, 5000));
    uint32_t mask = 0;
    for (uint64_t i = 1; i <= 24; i++)
        if (journal_count(i, CH_EV_FAULT))
            mask |= 1u << (i - 1);
    ch_links_free(&s);
    ch_journal_free(&jr);
    jr = saved;
    return mask;
}

Test(link, seeded_draws_are_reproducible)
{
    uint32_t a = draws(7), b = draws(7), c = draws(8);
    cr_expect_eq(a, b, "same seed, same draws: %06x vs %06x", a, b);
    cr_expect_neq(a, c, "another seed, other draws: %06x vs %06x", a, c);
    cr_expect(a != 0 && a != 0xffffff, "p=0.5 should hit some: %06x", a);
}

/* ---- limits and stop ---------------------------------------------------------------- */

Test(link, cap_refuses_over_the_limit)
{
    ch_links_t *s = new_links(1, 2);
    ch_link_t *l = add_link(s, "capped", up);
    int a = connect_link(l), b = connect_link(l);
    round_trip(a, "a", 3000);
    round_trip(b, "b", 3000);
    int c = connect_link(l);
    char buf[4];
    tu_how_t how;
    cr_expect_eq(tu_recv_n(c, buf, 1, 5000, &how, NULL), 0);
    cr_expect_eq(how, TU_RESET, "%s", tu_how_name(how));
    cr_expect_eq(ch_link_stats(l).refused, 1);
    json_t *v = ch_journal_query(jr, &(ch_journal_filter_t){.event = CH_EV_REFUSED});
    cr_expect_str_eq(cm_json_str(v, "entries.0.detail", ""), "over the cap of 2 open connections");
    cr_expect(json_is_null(cm_json_path(v, "entries.0.fault")));
    json_decref(v);
    close(a);
    close(b);
    close(c);
    ch_links_free(&s);
}

Test(link, stop_closes_open_connections)
{
    int fd = connect_link(lk);
    round_trip(fd, "hi", 3000);
    set_faults(lk, "{\"faults\":[{\"latency\":\"1m\"}]}");
    cr_assert_eq(tu_send_all(fd, "held", 4, 2000), 0);
    int64_t t0 = cm_clock_mono_ms();
    ch_links_free(&ls);
    int64_t dt = cm_clock_mono_ms() - t0;
    cr_expect_null(ls);
    cr_expect_lt(dt, 1000, "stopping took %lld ms", (long long)dt);
    char buf[8];
    tu_how_t how;
    cr_expect_eq(tu_recv_n(fd, buf, 4, 3000, &how, NULL), 0);
    cr_expect_eq(how, TU_EOF, "%s", tu_how_name(how));
    close(fd);
}
