/* obs_sink.c - a webhook receiver for Alertmanager in the observability tests: every POST
 * it takes (any path) is appended to the output file as one JSON line,
 * {"path": "/the/path", "body": <the JSON body>}, and answered 200; a body that is not
 * JSON is answered 400 and recorded with "body": null and "raw": "<the text>", so the test
 * sees it. Listens on a free port of 127.0.0.1 and writes {"pid","port"} to the ready file
 * (atomically) once listening. Stops on SIGTERM or SIGINT.
 *
 *   obs_sink --ready-file PATH --out FILE
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cm_err.h"
#include "cm_http_server.h"

typedef struct {
    pthread_mutex_t mu;
    FILE *out;
} sink_t;

static void on_post(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sink_t *s = ud;
    json_error_t jerr;
    json_t *body = json_loadb(req->body, req->body_len, 0, &jerr);
    json_t *line = json_pack("{s:s, s:o?}", "path", req->path, "body", body);
    if (line && !body)
        json_object_set_new(line, "raw", json_stringn(req->body, req->body_len));
    char *text = line ? json_dumps(line, JSON_COMPACT) : NULL;
    int ok = 0;
    if (text) {
        pthread_mutex_lock(&s->mu);
        ok = fprintf(s->out, "%s\n", text) > 0 && fflush(s->out) == 0;
        pthread_mutex_unlock(&s->mu);
    }
    free(text);
    json_decref(line);
    if (!ok)
        cm_http_resp_problem(resp, 500, "Internal Server Error", "could not record the body");
    else if (!body)
        cm_http_resp_problem(resp, 400, "Bad Request", "body is not JSON");
    else
        cm_http_resp_text(resp, 200, "text/plain", "recorded\n");
}

static int write_ready(const char *path, unsigned port)
{
    char tmp[4096];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return -1;
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    int bad = fprintf(f, "{\"pid\":%ld,\"port\":%u}\n", (long)getpid(), port) < 0;
    bad |= fclose(f) != 0;
    return bad || rename(tmp, path) != 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
    const char *ready = NULL, *out = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--ready-file"))
            ready = argv[i + 1];
        else if (!strcmp(argv[i], "--out"))
            out = argv[i + 1];
    }
    if (!ready || !out || argc != 5) {
        fprintf(stderr, "usage: obs_sink --ready-file PATH --out FILE\n");
        return 2;
    }
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    sink_t s = {.mu = PTHREAD_MUTEX_INITIALIZER, .out = fopen(out, "a")};
    if (!s.out) {
        fprintf(stderr, "obs_sink: %s: %s\n", out, strerror(errno));
        return 1;
    }
    cm_http_server_cfg_t cfg = {.threads = 2, .name = "obs.sink"};
    cm_http_server_t *srv = cm_http_server_new(&cfg);
    char err[CM_ERR_LEN] = "";
    cm_err_t rc = srv ? cm_http_server_route(srv, "POST /*", on_post, &s) : CM_ENOMEM;
    if (!rc)
        rc = cm_http_server_start(srv, err);
    if (!rc && write_ready(ready, cm_http_server_port(srv)) != 0) {
        cm_errf(err, "%s: %s", ready, strerror(errno));
        rc = CM_EIO;
    }
    if (rc) {
        fprintf(stderr, "obs_sink: %s\n", err[0] ? err : cm_strerror(rc));
    } else {
        int sig = 0;
        while (sigwait(&stop, &sig) != 0)
            ;
    }
    cm_http_server_free(&srv);
    fclose(s.out);
    return rc ? 1 : 0;
}
