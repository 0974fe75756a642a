/* sc_http.c - requests to the gateway, the simulators' control port and provider ports. */
#include "sc_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cm_clock.h"
#include "cm_json.h"
#include "sc_attach.h"
#include "sc_log.h"

#define SC_HTTP_MAX_HEADERS 40
#define SC_HTTP_MAX_ANSWER (16u << 20)

int sc_http_default_auth(sc_target_t to, const char *path)
{
    return to == SC_TO_GATEWAY && strncmp(path, "/admin/", 7) == 0;
}

static const char *provider_key(sc_target_t to)
{
    const char *env = NULL, *def = NULL;
    switch (to) {
    case SC_TO_RETELL:
        env = "SIM_RETELL_API_KEY";
        def = "key_sim_retell";
        break;
    case SC_TO_CALCOM:
        env = "SIM_CALCOM_API_KEY";
        def = "cal_sim_key";
        break;
    case SC_TO_STRIPE:
        env = "SIM_STRIPE_API_KEY";
        def = "sk_test_sim";
        break;
    default:
        return NULL;
    }
    const char *v = getenv(env);
    return v && *v ? v : def;
}

const char *sc_answer_show(const sc_answer_t *a, char *out, size_t cap)
{
    if (a->transport != CM_OK) {
        snprintf(out, cap, "no answer: %s", *a->err ? a->err : cm_strerror(a->transport));
        return out;
    }
    /* One line: newlines in bodies become spaces. */
    size_t show = a->body_len > SC_HTTP_SHOW ? SC_HTTP_SHOW : a->body_len;
    int n = snprintf(out, cap, "%ld %s%.*s%s", a->status, a->json ? "" : "\"", (int)show,
                     a->body ? a->body : "", a->json ? "" : "\"");
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    if (n > 0 && (size_t)n < cap && show < a->body_len)
        snprintf(out + n, cap - (size_t)n, "... (%zu bytes)", a->body_len);
    return out;
}

cm_err_t sc_http_do(sc_ctx_t *ctx, const char *actor, const sc_http_req_t *r, int quiet,
                    sc_answer_t *a)
{
    const char *hdrs[SC_HTTP_MAX_HEADERS + 3];
    char *owned[SC_HTTP_MAX_HEADERS + 3];
    size_t nh = 0, no = 0;
    int has_ct = 0;
    char url[2048];
    cm_err_t rc = CM_OK;

    memset(a, 0, sizeof *a);
    char scoped[1024];
    const char *path = sc_attach_path(ctx, r, scoped, sizeof scoped);
    if (snprintf(url, sizeof url, "%s%s", ctx->url[r->to], path) >= (int)sizeof url) {
        a->transport = CM_EINVAL;
        snprintf(a->err, sizeof a->err, "URL too long");
        return a->transport;
    }
    if (!*ctx->url[r->to]) {
        a->transport = CM_ESTATE;
        snprintf(a->err, sizeof a->err, "%s is not running", sc_target_name(r->to));
        return a->transport;
    }

    if (r->headers) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)r->headers, k, v)
        {
            if (nh >= SC_HTTP_MAX_HEADERS) {
                rc = CM_ETOOBIG;
                break;
            }
            char *h = NULL;
            size_t len = strlen(k) + json_string_length(v) + 3;
            if (!(h = malloc(len))) {
                rc = CM_ENOMEM;
                break;
            }
            snprintf(h, len, "%s: %s", k, json_string_value(v));
            owned[no++] = h;
            hdrs[nh++] = h;
            has_ct |= strcasecmp(k, "Content-Type") == 0;
        }
    }
    char authz[300];
    if (!rc && r->auth) {
        const char *secret = r->to == SC_TO_GATEWAY ? ctx->admin_token : provider_key(r->to);
        if (secret) {
            snprintf(authz, sizeof authz, "Authorization: Bearer %s", secret);
            hdrs[nh++] = authz;
        }
    }
    if (!rc && r->body && !has_ct)
        hdrs[nh++] = "Content-Type: application/json";
    hdrs[nh] = NULL;

    if (rc) {
        a->transport = rc;
        snprintf(a->err, sizeof a->err, "%s",
                 rc == CM_ETOOBIG ? "too many headers" : "out of memory");
        goto out;
    }

    int64_t timeout = r->timeout_ms > 0 ? r->timeout_ms : SC_HTTP_TIMEOUT_MS;
    int64_t left = ctx->deadline_ms - cm_clock_mono_ms();
    if (left <= 0) {
        a->transport = CM_ETIMEOUT;
        snprintf(a->err, sizeof a->err, "the scenario's deadline (--timeout) has passed");
        goto out;
    }
    if (timeout > left)
        timeout = left;

    cm_http_request_t req = {
        .method = r->method,
        .url = url,
        .headers = hdrs,
        .body = r->body,
        .body_len = r->body ? r->body_len : 0,
        .connect_timeout_ms = timeout < 2000 ? (long)timeout : 2000,
        .timeout_ms = (long)timeout,
        .max_response = SC_HTTP_MAX_ANSWER,
    };
    cm_http_response_t resp;
    a->transport = cm_http_client_do(ctx->http, &req, &resp);
    a->status = resp.status;
    a->ms = resp.total_ms;
    snprintf(a->err, sizeof a->err, "%s", resp.err);
    a->body_len = resp.body.len;
    a->body = cm_buf_take(&resp.body);
    a->headers = resp.headers.len ? cm_buf_take(&resp.headers) : NULL;
    cm_http_response_free(&resp);
    if (!a->body) {
        a->transport = CM_ENOMEM;
        goto out;
    }
    if (a->transport == CM_OK && a->body_len > 0)
        SC_BEST_EFFORT(cm_json_parse(a->body, a->body_len, SC_HTTP_MAX_ANSWER, &a->json, NULL));
    sc_attach_answer(ctx, r, a);

out:
    if (!quiet) {
        char shown[SC_HTTP_SHOW + 128];
        sc_log(ctx, actor, "%s %s %s -> %s (%.1f ms)", r->method, sc_target_name(r->to), path,
               sc_answer_show(a, shown, sizeof shown), a->ms);
    }
    for (size_t i = 0; i < no; i++)
        free(owned[i]);
    return a->transport;
}

void sc_answer_free(sc_answer_t *a)
{
    free(a->body);
    free(a->headers);
    json_decref(a->json);
    memset(a, 0, sizeof *a);
}

cm_err_t sc_http_send_json(sc_ctx_t *ctx, const char *actor, sc_target_t to, const char *method,
                           const char *path, const json_t *body, sc_answer_t *a)
{
    char *text = cm_json_dumps(body);
    if (!text)
        return CM_ENOMEM;
    sc_http_req_t r = {
        .to = to, .method = method, .path = path, .body = text, .body_len = strlen(text)};
    sc_http_do(ctx, actor, &r, 0, a);
    free(text);
    return CM_OK;
}
