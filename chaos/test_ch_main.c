/* test_ch_main.c - the chaos-proxy program itself (fork/exec of the built binary): flag
 * errors exit 2 with a message, the ready file, the control API and a link end to end,
 * SIGTERM exits 0 promptly, and latency runs at libfaketime's speed. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cm_clock.h"
#include "cm_http_client.h"
#include "cm_json.h"
#include "test_ch_util.h"

#ifndef CHAOS_PROXY_BIN
#error "CHAOS_PROXY_BIN must name the built chaos-proxy"
#endif
#define FAKETIME_LIB "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"

extern char **environ;

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/test_ch_main.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(cm_http_global_init(), CM_OK);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(main, .init = setup, .fini = teardown, .timeout = 60);

/* Starts the binary with args (NULL-terminated, without argv[0]) and extra environment
 * entries; stderr goes to DIR/stderr. */
static pid_t spawn(const char *const *args, const char *const *extra_env)
{
    const char *argv[32] = {CHAOS_PROXY_BIN};
    size_t n = 1;
    for (; args[n - 1]; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    const char *envp[256];
    size_t e = 0;
    for (; extra_env && extra_env[e]; e++)
        envp[e] = extra_env[e];
    for (char **p = environ; *p && e < 254; p++)
        envp[e++] = *p;
    envp[e] = NULL;
    char errpath[128];
    snprintf(errpath, sizeof errpath, "%s/stderr", dir);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0)
            dup2(fd, 2);
        execve(CHAOS_PROXY_BIN, (char *const *)argv, (char *const *)envp);
        _exit(127);
    }
    return pid;
}

/* Waits up to timeout_ms for pid to exit; returns its wait status, or -1 on time out. */
static int wait_exit(pid_t pid, int timeout_ms)
{
    int64_t deadline = cm_clock_mono_ms() + timeout_ms;
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        if (cm_clock_mono_ms() >= deadline)
            return -1;
        poll(NULL, 0, 5);
    }
}

static void read_stderr(char *buf, size_t cap)
{
    char errpath[128];
    snprintf(errpath, sizeof errpath, "%s/stderr", dir);
    FILE *f = fopen(errpath, "r");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
}

/* Runs to the end and expects exit status code and a stderr that contains msg. */
static void expect_usage_error(const char *const *args, int code, const char *msg)
{
    int st = wait_exit(spawn(args, NULL), 10000);
    char err[2048];
    read_stderr(err, sizeof err);
    cr_assert_neq(st, -1, "did not exit");
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == code, "%s ...: status %d, expected exit %d (%s)",
              args[0] ? args[0] : "", st, code, err);
    cr_expect(strstr(err, msg), "stderr should say\n  %s\nbut says\n  %s", msg, err);
}

Test(main, flag_errors_exit_2)
{
    expect_usage_error((const char *[]){NULL}, 2, "chaos-proxy: --ready-file FILE is required");
    expect_usage_error((const char *[]){"--ready-file", "/tmp/x", "--link", "x", NULL}, 2,
                       "chaos-proxy: --link \"x\": expected NAME=HOST:PORT");
    expect_usage_error((const char *[]){"--ready-file", "/tmp/x", "--link=a=127.0.0.1", NULL}, 2,
                       "--link \"a=127.0.0.1\": expected NAME=HOST:PORT");
    expect_usage_error((const char *[]){"--ready-file", "/tmp/x", "--link", "Up=127.0.0.1:1", NULL},
                       2, "--link \"Up=127.0.0.1:1\": NAME must be 1 to 32 of a-z, 0-9, _ and -");
    expect_usage_error((const char *[]){"--ready-file", "/tmp/x", "--link", "a=127.0.0.1:1",
                                        "--link", "a=127.0.0.1:2", NULL},
                       2, "--link \"a=127.0.0.1:2\": the name \"a\" is used twice");
    expect_usage_error(
        (const char *[]){"--ready-file", "/tmp/x", "--link", "a=127.0.0.1:1,127.0.0.1", NULL}, 2,
        "--link \"a=127.0.0.1:1,127.0.0.1\": expected NAME=HOST:PORT[,HOST:PORT...] "
        "(upstreams[1]: \"127.0.0.1\" is not HOST:PORT with a port from 1 to 65535)");
    expect_usage_error((const char *[]){"--ready-file", "/tmp/x", "--link", "a=127.0.0.1:1,", NULL},
                       2, "(upstreams[1]: \"\" is not HOST:PORT");
    expect_usage_error(
        (const char *[]){"--ready-file", "/tmp/x", "--link", "a=127.0.0.1:1,127.0.0.1:1", NULL}, 2,
        "(upstreams[1]: \"127.0.0.1:1\" is already upstreams[0])");
    expect_usage_error((const char *[]){"--ready-file", "/tmp/x", "--link",
                                        "a=h:1,h:2,h:3,h:4,h:5,h:6,h:7,h:8,h:9,h:10,h:11,h:12,h:13,"
                                        "h:14,h:15,h:16,h:17",
                                        NULL},
                       2, "(at most 16 upstreams)");
    expect_usage_error((const char *[]){"--ready-file", "/tmp/x", "--seed", "-4", NULL}, 2,
                       "--seed must be an unsigned 64-bit integer, not '-4'");
    expect_usage_error((const char *[]){"--ready-file", "/tmp/x", "--control-port", "70000", NULL},
                       2, "--control-port must be 0..65535, not '70000'");
    expect_usage_error((const char *[]){"--ready-file", "/tmp/x", "--log-level", "loud", NULL}, 2,
                       "--log-level must be debug, info, warn or error");
    expect_usage_error((const char *[]){"--ready-file", "/tmp/x", "--speed", "0", NULL}, 2,
                       "--speed must be 1..1000, not '0'");
    expect_usage_error((const char *[]){"--ready-file", "/tmp/x", "--speed=1001", NULL}, 2,
                       "--speed must be 1..1000, not '1001'");
    expect_usage_error((const char *[]){"--ready-file", "/tmp/x", "--bogus", NULL}, 2,
                       "unknown option '--bogus'");
    expect_usage_error((const char *[]){"--ready-file", NULL}, 2,
                       "option '--ready-file' needs a value");
    int st = wait_exit(spawn((const char *[]){"--help", NULL}, NULL), 10000);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "--help exits 0");
}

/* Waits for the ready file and parses it. */
static json_t *wait_ready(const char *path, pid_t pid)
{
    int64_t deadline = cm_clock_mono_ms() + 15000;
    while (access(path, F_OK) != 0) {
        int st;
        cr_assert_eq(waitpid(pid, &st, WNOHANG), 0, "the proxy exited before it was ready");
        cr_assert_lt(cm_clock_mono_ms(), deadline, "no ready file after 15 s");
        poll(NULL, 0, 10);
    }
    json_t *v = NULL;
    char err[CM_ERR_LEN];
    cr_assert_eq(cm_json_load_file(path, 1 << 16, &v, err), CM_OK, "%s", err);
    return v;
}

static long call(uint16_t port, const char *method, const char *path, const char *body,
                 json_t **out)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
    cm_http_client_t *c = cm_http_client_new();
    cm_http_response_t r;
    cm_err_t rc = cm_http_client_do(
        c,
        &(cm_http_request_t){
            .method = method, .url = url, .body = body, .body_len = body ? strlen(body) : 0},
        &r);
    cr_assert_eq(rc, CM_OK, "%s %s: %s", method, path, r.err);
    long status = r.status;
    if (out)
        cr_assert_eq(cm_json_parse(r.body.data ? r.body.data : "", r.body.len, 1 << 22, out, NULL),
                     CM_OK);
    cm_http_response_free(&r);
    cm_http_client_free(&c);
    return status;
}

/* tu_wait_until condition: the link "echo" of the proxy whose control port *arg is has no
 * connection open. */
static int echo_link_idle(void *arg)
{
    json_t *v = NULL;
    cr_assert_eq(call(*(uint16_t *)arg, "GET", "/links/echo", NULL, &v), 200);
    int idle = cm_json_int(v, "stats.active", -1) == 0;
    json_decref(v);
    return idle;
}

/* Round trip of msg through port; returns the milliseconds it took. */
static int64_t echo_ms(uint16_t port, const char *msg)
{
    int fd = tu_connect(port);
    cr_assert_geq(fd, 0);
    char buf[64];
    size_t n = strlen(msg);
    tu_how_t how;
    int64_t t0 = cm_clock_mono_ms();
    cr_assert_eq(tu_send_all(fd, msg, n, 5000), 0);
    size_t got = tu_recv_n(fd, buf, n, 10000, &how, NULL);
    int64_t dt = cm_clock_mono_ms() - t0;
    close(fd);
    cr_assert_eq(got, n, "%s", tu_how_name(how));
    cr_assert_eq(memcmp(buf, msg, n), 0);
    return dt;
}

Test(main, ready_file_links_and_sigterm)
{
    tu_server_t *up = tu_server_start(NULL);
    char ready[128], link[64];
    snprintf(ready, sizeof ready, "%s/ready.json", dir);
    snprintf(link, sizeof link, "echo=127.0.0.1:%u", tu_server_port(up));
    pid_t pid = spawn((const char *[]){"--ready-file", ready, "--seed", "5", "--link", link,
                                       "--link", "other=localhost:9", "--log-level", "warn", NULL},
                      NULL);
    json_t *rf = wait_ready(ready, pid);
    cr_expect_eq(cm_json_int(rf, "pid", 0), pid);
    cr_expect_eq(cm_json_int(rf, "seed", 0), 5);
    uint16_t cport = (uint16_t)cm_json_int(rf, "control_port", 0);
    uint16_t lport = (uint16_t)cm_json_int(rf, "links.echo.port", 0);
    cr_expect_gt(cport, 0);
    cr_expect_gt(lport, 0);
    cr_expect_str_eq(cm_json_str(rf, "links.echo.upstream", ""), link + 5);
    cr_expect_str_eq(cm_json_str(rf, "links.other.upstream", ""), "localhost:9");
    json_decref(rf);

    echo_ms(lport, "through the proxy");
    /* A fault list is drawn by every connection open when it is set: the client has closed,
     * but the proxy may not have seen it yet (on a loaded machine it had not, and the old
     * connection drew the latency too: faults_applied 2). */
    cr_assert(tu_wait_until(echo_link_idle, &cport, 5000), "the first connection did not end");
    cr_assert_eq(call(cport, "PUT", "/links/echo/faults",
                      "{\"faults\":[{\"latency\":\"200ms\",\"direction\":\"upstream\"}]}", NULL),
                 200);
    int64_t dt = echo_ms(lport, "slow");
    cr_expect(dt >= 190 && dt < 3000, "round trip %lld ms", (long long)dt);
    json_t *v = NULL;
    cr_assert_eq(call(cport, "GET", "/links/echo", NULL, &v), 200);
    cr_expect_eq(cm_json_int(v, "stats.connections", -1), 2);
    cr_expect_eq(cm_json_int(v, "stats.faults_applied", -1), 1);
    json_decref(v);
    /* The deprecated form still works for one release: a note in the answer, a warning in
     * the log (checked below, once the proxy has stopped). */
    cr_assert_eq(
        call(cport, "PUT", "/links/other/faults", "{\"faults\":[{\"type\":\"blackhole\"}]}", &v),
        200);
    cr_expect_str_eq(cm_json_str(v, "deprecated.0", ""),
                     "faults[0]: the {\"type\":...} form with integer milliseconds is deprecated "
                     "and goes in the next release; write {\"socket\":\"hang\"}");
    json_decref(v);

    /* An open connection must not hold up the stop. */
    int held = tu_connect(lport);
    cr_assert_geq(held, 0);
    cr_assert_eq(tu_send_all(held, "x", 1, 2000), 0);
    int64_t t0 = cm_clock_mono_ms();
    kill(pid, SIGTERM);
    int st = wait_exit(pid, 10000);
    int64_t stop_ms = cm_clock_mono_ms() - t0;
    char err[4096];
    read_stderr(err, sizeof err);
    cr_assert_neq(st, -1, "no exit 10 s after SIGTERM");
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d; stderr:\n%s", st, err);
    cr_expect_lt(stop_ms, 1000, "exit took %lld ms", (long long)stop_ms);
    const char *warn = strstr(err, "link other: faults[0]: the {");
    cr_expect(warn && strstr(warn, "is deprecated") && strstr(err, "\"level\":\"warn\""),
              "no deprecation warning in the log:\n%s", err);
    cr_expect_neq(access(ready, F_OK), 0, "the ready file is removed at exit");
    close(held);
    tu_server_stop(&up);
}

/* Connects to port and returns the greeting of the upstream reached ('-': none). */
static char greeting_at(uint16_t port)
{
    char buf[2] = "-";
    tu_how_t how;
    int fd = tu_connect(port);
    cr_assert_geq(fd, 0);
    size_t got = tu_recv_n(fd, buf, 1, 5000, &how, NULL);
    close(fd);
    return got == 1 ? buf[0] : '-';
}

Test(main, link_with_several_upstreams)
{
    tu_server_t *a = tu_server_start("A"), *b = tu_server_start("B"), *gone = tu_server_start(NULL);
    char ready[128], link[160], ua[32], ub[32], ug[32];
    snprintf(ua, sizeof ua, "127.0.0.1:%u", tu_server_port(a));
    snprintf(ub, sizeof ub, "127.0.0.1:%u", tu_server_port(b));
    snprintf(ug, sizeof ug, "127.0.0.1:%u", tu_server_port(gone));
    tu_server_stop(&gone); /* a port nobody listens on */
    snprintf(ready, sizeof ready, "%s/ready.json", dir);
    snprintf(link, sizeof link, "rr=%s,%s,%s", ua, ug, ub);
    pid_t pid = spawn(
        (const char *[]){"--ready-file", ready, "--link", link, "--log-level", "warn", NULL}, NULL);
    json_t *rf = wait_ready(ready, pid);
    uint16_t cport = (uint16_t)cm_json_int(rf, "control_port", 0);
    uint16_t lport = (uint16_t)cm_json_int(rf, "links.rr.port", 0);
    cr_expect_str_eq(cm_json_str(rf, "links.rr.upstream", ""), ua, "the first");
    cr_expect_str_eq(cm_json_str(rf, "links.rr.upstreams.0", ""), ua);
    cr_expect_str_eq(cm_json_str(rf, "links.rr.upstreams.1", ""), ug);
    cr_expect_str_eq(cm_json_str(rf, "links.rr.upstreams.2", ""), ub);
    json_decref(rf);

    /* The dead middle one's turns go to B; the client never sees a reset. */
    char seen[7] = "";
    for (int i = 0; i < 6; i++)
        seen[i] = greeting_at(lport);
    cr_expect_str_eq(seen, "ABBABB");
    json_t *v = NULL;
    cr_assert_eq(call(cport, "GET", "/links/rr", NULL, &v), 200);
    json_t *per = cm_json_path(v, "stats.per_upstream");
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(per, ua), "connections")), 2);
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(per, ug), "errors")), 2);
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(per, ub), "connections")), 4);
    json_decref(v);
    cr_assert_eq(call(cport, "GET", "/journal?link=rr&event=upstream_error", NULL, &v), 200);
    cr_expect_eq(cm_json_int(v, "count", -1), 2);
    cr_expect_str_eq(cm_json_str(v, "entries.0.upstream", ""), ug);
    json_decref(v);

    kill(pid, SIGTERM);
    int st = wait_exit(pid, 10000);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
    tu_server_stop(&a);
    tu_server_stop(&b);
}

Test(main, control_port_in_use_exits_1)
{
    tu_server_t *squatter = tu_server_start(NULL);
    char ready[128], port[16];
    snprintf(ready, sizeof ready, "%s/ready.json", dir);
    snprintf(port, sizeof port, "%u", tu_server_port(squatter));
    int st = wait_exit(
        spawn((const char *[]){"--ready-file", ready, "--control-port", port, NULL}, NULL), 10000);
    char err[2048];
    read_stderr(err, sizeof err);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %d: %s", st, err);
    cr_expect(strstr(err, "cannot listen"), "%s", err);
    cr_expect_neq(access(ready, F_OK), 0, "no ready file");
    tu_server_stop(&squatter);
}

Test(main, latency_under_faketime)
{
    if (access(FAKETIME_LIB, R_OK) != 0) {
        /* On a CI runner everything is installed: a skip there hides a test not run. */
        const char *ci = getenv("CI");
        cr_assert(!ci || (strcmp(ci, "true") && strcmp(ci, "1")),
                  "CI=%s and libfaketime is not installed at %s", ci, FAKETIME_LIB);
        cr_skip_test("libfaketime is not installed");
    }
    tu_server_t *up = tu_server_start(NULL);
    char ready[128], link[64];
    snprintf(ready, sizeof ready, "%s/ready.json", dir);
    snprintf(link, sizeof link, "echo=127.0.0.1:%u", tu_server_port(up));
    /* ASan wants to be first in the library list; libfaketime must be preloaded, so the
     * check is turned off (harmless for a plain build). */
    const char *asan = getenv("ASAN_OPTIONS");
    char asan_opts[512];
    snprintf(asan_opts, sizeof asan_opts, "ASAN_OPTIONS=%s%sverify_asan_link_order=0",
             asan ? asan : "", asan && *asan ? ":" : "");
    pid_t pid =
        spawn((const char *[]){"--ready-file", ready, "--link", link, "--log-level", "warn", NULL},
              (const char *[]){"LD_PRELOAD=" FAKETIME_LIB, "FAKETIME=+0 x10", "FAKETIME_NO_CACHE=1",
                               asan_opts, NULL});
    json_t *rf = wait_ready(ready, pid);
    uint16_t cport = (uint16_t)cm_json_int(rf, "control_port", 0);
    uint16_t lport = (uint16_t)cm_json_int(rf, "links.echo.port", 0);
    json_decref(rf);
    /* 2 s of the proxy's time each way is 0.2 s of ours at x10. */
    cr_assert_eq(call(cport, "PUT", "/links/echo/faults",
                      "{\"faults\":[{\"latency\":\"2s\",\"direction\":\"downstream\"}]}", NULL),
                 200);
    int64_t dt = echo_ms(lport, "fast clock");
    cr_expect(dt >= 150 && dt < 1500, "2000 ms at x10 took %lld ms of real time", (long long)dt);
    kill(pid, SIGTERM);
    int st = wait_exit(pid, 10000);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
    tu_server_stop(&up);
}
