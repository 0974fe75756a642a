/* ch_main.c - the chaos-proxy program: command line, start-up, ready file, signals,
 * orderly shutdown.
 *
 * Every --link NAME=HOST:PORT[,HOST:PORT...] gets a listener on a free port of 127.0.0.1
 * that forwards to HOST:PORT (round robin over several); the control API listens on --control-port.
 * Once all of them listen, their ports go into the ready file, written atomically. The main thread
 * then waits for SIGTERM or SIGINT with sigwait; every other thread has those signals blocked.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "ch_control.h"
#include "ch_journal.h"
#include "ch_link.h"
#include "cm_err.h"
#include "cm_http_server.h"
#include "cm_log.h"

#define COMP "chaos.main"
#define EXIT_USAGE 2
#define MAX_FLAG_LINKS CH_LINK_MAX

typedef struct {
    char name[CH_LINK_NAME_MAX + 1];
    const char *upstreams; /* borrowed from argv: HOST:PORT[,HOST:PORT...] */
} flag_link_t;

/* A --link's upstreams, split at the commas (HOST never holds one, even as "[IPv6]"). */
typedef struct {
    char buf[CH_LINK_UPSTREAMS_MAX][CH_LINK_UPSTREAM_MAX + 1];
    const char *ups[CH_LINK_UPSTREAMS_MAX];
    size_t n;
} split_t;

typedef struct {
    const char *ready_file;
    uint64_t seed;
    uint16_t control_port;
    const char *log_level;
    uint64_t speed; /* the clock speed-up this process runs under (libfaketime); 1: none */
    flag_link_t links[MAX_FLAG_LINKS];
    size_t nlinks;
} ch_opts_t;

static const char usage[] =
    "usage: chaos-proxy --ready-file FILE [--seed N] [--control-port P]\n"
    "                   [--link NAME=HOST:PORT[,HOST:PORT...]]...\n"
    "                   [--log-level debug|info|warn|error]\n"
    "                   [--speed N]\n"
    "\n"
    "A TCP proxy that injects network faults (latency, jitter, bandwidth, slicing, reset,\n"
    "black hole, timeout, down) between a client and its upstreams. Each link listens on a\n"
    "free port of 127.0.0.1 and forwards to its upstream (round robin per connection over\n"
    "several, skipping one that refuses); faults are set per link through the control API\n"
    "(see chaos/README.md). Once everything listens it writes {\"pid\",\"control_port\",\n"
    "\"seed\",\"links\":{NAME:{\"port\",\"upstream\",\"upstreams\"}}} to the ready file\n"
    "(atomically). Stops cleanly on SIGTERM or SIGINT.\n"
    "\n"
    "  --ready-file FILE        where to publish the ports (required)\n"
    "  --seed N                 seed of the per-connection fault draws and jitter (default 1)\n"
    "  --control-port P         port of the control API (default 0: a free port)\n"
    "  --link NAME=HOST:PORT[,HOST:PORT...]\n"
    "                           a link (repeatable); NAME is 1-32 of a-z 0-9 _ -; up to 16\n"
    "                           upstreams, taken round robin per connection\n"
    "  --log-level L            minimum log level (default info)\n"
    "  --speed N                the clock speed-up it runs under (libfaketime), 1..1000\n"
    "                           (default 1): the upstream connect timeout (5 s) is\n"
    "                           multiplied by it, so it stays the same in real time.\n"
    "                           Fault times (latency, timeout, ...) are simulated time.\n"
    "  --help                   this text\n";

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (!*s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

/* Splits list at its commas into sp and checks the upstreams. 0, or -1 with err (CM_ERR_LEN
 * bytes) naming the bad one. */
static int split_upstreams(const char *list, split_t *sp, char *err)
{
    sp->n = 0;
    for (const char *p = list;; p++) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (sp->n == CH_LINK_UPSTREAMS_MAX) {
            cm_errf(err, "at most %d upstreams", CH_LINK_UPSTREAMS_MAX);
            return -1;
        }
        /* One byte over the limit is enough for the check below to refuse it. */
        size_t keep = len <= CH_LINK_UPSTREAM_MAX ? len : CH_LINK_UPSTREAM_MAX;
        memcpy(sp->buf[sp->n], p, keep);
        sp->buf[sp->n][keep] = '\0';
        if (len > CH_LINK_UPSTREAM_MAX) {
            cm_errf(err, "an upstream longer than %d characters", CH_LINK_UPSTREAM_MAX);
            return -1;
        }
        sp->ups[sp->n] = sp->buf[sp->n];
        sp->n++;
        if (!comma)
            break;
        p = comma;
    }
    return ch_link_check_upstreams(sp->ups, sp->n, sp->n == 1 ? "upstream" : "upstreams", err);
}

static int parse_link(const char *val, ch_opts_t *o, char *err, size_t cap)
{
    const char *eq = strchr(val, '=');
    char perr[CM_ERR_LEN];
    static split_t sp; /* 5 KiB: off the stack; the command line is parsed by main alone */
    if (!eq || eq == val || !eq[1]) {
        snprintf(err, cap, "--link \"%.100s\": expected NAME=HOST:PORT[,HOST:PORT...]", val);
        return -1;
    }
    size_t nl = (size_t)(eq - val);
    char name[CH_LINK_NAME_MAX + 2];
    snprintf(name, sizeof name, "%.*s", (int)(nl < sizeof name - 1 ? nl : sizeof name - 1), val);
    if (nl > CH_LINK_NAME_MAX || !ch_link_name_ok(name)) {
        snprintf(err, cap, "--link \"%.100s\": NAME must be 1 to %d of a-z, 0-9, _ and -", val,
                 CH_LINK_NAME_MAX);
        return -1;
    }
    if (split_upstreams(eq + 1, &sp, perr) != 0) {
        snprintf(err, cap, "--link \"%.60s\": expected NAME=HOST:PORT[,HOST:PORT...] (%.140s)", val,
                 perr);
        return -1;
    }
    for (size_t i = 0; i < o->nlinks; i++) {
        if (strcmp(o->links[i].name, name) == 0) {
            snprintf(err, cap, "--link \"%.100s\": the name \"%s\" is used twice", val, name);
            return -1;
        }
    }
    if (o->nlinks >= MAX_FLAG_LINKS) {
        snprintf(err, cap, "at most %d --link options", MAX_FLAG_LINKS);
        return -1;
    }
    memcpy(o->links[o->nlinks].name, name, nl + 1); /* nl <= CH_LINK_NAME_MAX */
    o->links[o->nlinks++].upstreams = eq + 1;
    return 0;
}

/* Returns 0 to run, 1 when --help was asked for, -1 on a usage error (err says why). */
static int parse_args(int argc, char **argv, ch_opts_t *o, char *err, size_t cap)
{
    *o = (ch_opts_t){.seed = 1, .log_level = "info", .speed = 1};
    const char *seed = NULL, *cport = NULL, *speed = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return 1;
        /* "--flag value" and "--flag=value" both work. */
        const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
        size_t nl = eq ? (size_t)(eq - a) : strlen(a);
        const char *val = eq ? eq + 1 : NULL;
        static const char *const flags[] = {"--ready-file", "--seed",      "--control-port",
                                            "--link",       "--log-level", "--speed"};
        int k = -1;
        for (int f = 0; f < 6 && k < 0; f++)
            if (strlen(flags[f]) == nl && strncmp(a, flags[f], nl) == 0)
                k = f;
        if (k < 0) {
            snprintf(err, cap, "unknown option '%.*s'", (int)nl, a);
            return -1;
        }
        if (!val) {
            if (i + 1 >= argc) {
                snprintf(err, cap, "option '%s' needs a value", a);
                return -1;
            }
            val = argv[++i];
        }
        switch (k) {
        case 0:
            o->ready_file = val;
            break;
        case 1:
            seed = val;
            break;
        case 2:
            cport = val;
            break;
        case 3:
            if (parse_link(val, o, err, cap) != 0)
                return -1;
            break;
        case 4:
            o->log_level = val;
            break;
        default:
            speed = val;
            break;
        }
    }
    if (!o->ready_file || !*o->ready_file) {
        snprintf(err, cap, "--ready-file FILE is required");
        return -1;
    }
    if (seed && parse_u64(seed, &o->seed) != 0) {
        snprintf(err, cap, "--seed must be an unsigned 64-bit integer, not '%s'", seed);
        return -1;
    }
    if (speed && (parse_u64(speed, &o->speed) != 0 || o->speed < 1 || o->speed > 1000)) {
        snprintf(err, cap, "--speed must be 1..1000, not '%s'", speed);
        return -1;
    }
    uint64_t p = 0;
    if (cport && (parse_u64(cport, &p) != 0 || p > 65535)) {
        snprintf(err, cap, "--control-port must be 0..65535, not '%s'", cport);
        return -1;
    }
    o->control_port = (uint16_t)p;
    if (cm_log_set_level(o->log_level) != 0) {
        snprintf(err, cap, "--log-level must be debug, info, warn or error, not '%s'",
                 o->log_level);
        return -1;
    }
    return 0;
}

/* Two descriptors per connection and one wake-up each: lift the soft limit to the hard one
 * so the connection cap, not the descriptor limit, is what refuses. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

typedef struct {
    ch_journal_t *journal;
    ch_links_t *links;
    ch_control_t control;
    cm_http_server_t *srv;
} ch_app_t;

static cm_err_t app_start(ch_app_t *app, const ch_opts_t *o, char *err)
{
    app->journal = ch_journal_new(0);
    if (!app->journal) {
        cm_errf(err, "out of memory");
        return CM_ENOMEM;
    }
    /* The upstream's accept is real time: keep the connect timeout's real length. */
    app->links = ch_links_new(
        &(ch_links_cfg_t){.seed = o->seed,
                          .journal = app->journal,
                          .connect_timeout_ms = CH_LINK_CONNECT_TIMEOUT_MS * (int64_t)o->speed},
        err);
    if (!app->links)
        return CM_ENOMEM;
    for (size_t i = 0; i < o->nlinks; i++) {
        static split_t sp; /* checked by parse_link already */
        if (split_upstreams(o->links[i].upstreams, &sp, err) != 0)
            return CM_EINVAL;
        cm_err_t rc = ch_links_add(app->links, o->links[i].name, sp.ups, sp.n, 0, NULL, err);
        if (rc)
            return rc;
    }
    app->control = (ch_control_t){.links = app->links, .journal = app->journal};
    app->srv = cm_http_server_new(&(cm_http_server_cfg_t){.bind_addr = "127.0.0.1",
                                                          .port = o->control_port,
                                                          .threads = 0,
                                                          .body_limit = CH_CONTROL_BODY_LIMIT,
                                                          .name = "chaos.control"});
    if (!app->srv) {
        cm_errf(err, "out of memory");
        return CM_ENOMEM;
    }
    cm_err_t rc = ch_control_routes(&app->control, app->srv);
    if (rc) {
        cm_errf(err, "could not add routes: %s", cm_strerror(rc));
        return rc;
    }
    return cm_http_server_start(app->srv, err);
}

/* The control server goes first so no request touches the links while they are freed. */
static void app_stop(ch_app_t *app)
{
    cm_http_server_free(&app->srv);
    ch_links_free(&app->links);
    if (!app->links)
        ch_journal_free(&app->journal); /* a stuck connection may still write to it */
}

static char *ready_text(const ch_app_t *app, uint64_t seed)
{
    json_t *links = json_object();
    json_t *all = links ? ch_links_json(app->links) : NULL;
    size_t i;
    json_t *l;
    json_array_foreach(all, i, l)
    {
        json_object_set_new(links, json_string_value(json_object_get(l, "name")),
                            json_pack("{s:O,s:O,s:O}", "port", json_object_get(l, "port"),
                                      "upstream", json_object_get(l, "upstream"), "upstreams",
                                      json_object_get(l, "upstreams")));
    }
    json_decref(all);
    json_t *v = links ? json_pack("{s:I,s:i,s:I,s:o}", "pid", (json_int_t)getpid(), "control_port",
                                  (int)cm_http_server_port(app->srv), "seed", (json_int_t)seed,
                                  "links", links)
                      : NULL;
    char *text = v ? json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(v);
    return text;
}

/* Writes the ready file as a temporary file renamed into place, so a reader never sees
 * half of it. */
static cm_err_t write_ready_file(const char *path, const ch_app_t *app, uint64_t seed, char *err)
{
    char tmp[4096];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp) {
        cm_errf(err, "ready file path too long");
        return CM_EINVAL;
    }
    char *text = ready_text(app, seed);
    if (!text) {
        cm_errf(err, "out of memory");
        return CM_ENOMEM;
    }
    size_t len = strlen(text);
    text[len] = '\0';
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        cm_errf(err, "%s: %s", tmp, strerror(errno));
        free(text);
        return CM_EIO;
    }
    ssize_t w = write(fd, text, len);
    int bad = w != (ssize_t)len || write(fd, "\n", 1) != 1 || fsync(fd) != 0;
    bad |= close(fd) != 0;
    free(text);
    if (bad || rename(tmp, path) != 0) {
        cm_errf(err, "%s: %s", path, strerror(errno));
        unlink(tmp);
        return CM_EIO;
    }
    return CM_OK;
}

int main(int argc, char **argv)
{
    ch_opts_t o;
    char err[CM_ERR_LEN] = "";
    int pr = parse_args(argc, argv, &o, err, sizeof err);
    if (pr == 1) {
        fputs(usage, stdout);
        return 0;
    }
    if (pr < 0) {
        fprintf(stderr, "chaos-proxy: %s\n(run 'chaos-proxy --help' for the options)\n", err);
        return EXIT_USAGE;
    }

    /* Block the stop signals before any thread exists, so every thread inherits the mask
     * and only sigwait below sees them. Writes use MSG_NOSIGNAL; SIGPIPE is ignored too in
     * case a library writes to a closed socket. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();

    ch_app_t app = {0};
    int status = 0;
    cm_err_t rc = app_start(&app, &o, err);
    if (!rc)
        rc = write_ready_file(o.ready_file, &app, o.seed, err);
    if (rc) {
        CM_ERROR(COMP, "start-up failed: %s", err);
        fprintf(stderr, "chaos-proxy: %s\n", err);
        status = 1;
    } else {
        CM_INFO(COMP, "ready: control %u, %zu link%s, seed %llu",
                (unsigned)cm_http_server_port(app.srv), o.nlinks, o.nlinks == 1 ? "" : "s",
                (unsigned long long)o.seed);
        int sig = 0;
        while (sigwait(&stop, &sig) != 0)
            ;
        CM_INFO(COMP, "signal %d: stopping", sig);
    }
    app_stop(&app);
    if (!rc)
        unlink(o.ready_file); /* the ports it names are closed now */
    if (!status)
        CM_INFO(COMP, "stopped");
    return status;
}
