/* gw_config.c - configuration loading and checking. */
#include "gw_config.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cm_codec.h"
#include "cm_json.h"

#define CONFIG_FILE_CAP (1u << 20)

/* Collects problems instead of stopping at the first, so one run of --check-config
 * shows the operator everything to fix. */
typedef struct {
    FILE *report;
    int n;
} checker_t;

static void problem(checker_t *ck, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void problem(checker_t *ck, const char *path, const char *fmt, ...)
{
    va_list ap;
    ck->n++;
    if (!ck->report)
        return;
    fprintf(ck->report, "%s: ", path);
    va_start(ap, fmt);
    vfprintf(ck->report, fmt, ap);
    va_end(ap);
    fputc('\n', ck->report);
}

static const char *const top_keys[] = {
    "listen",    "data_dir", "admin_token", "log_level",    "seed",      "webhooks",
    "store",     "worker",   "providers",   "tenants",      "sources",   "saga",
    "retention", "tracing",  "event_types", "admin_tokens", "reconcile", NULL};

static void unknown_keys(checker_t *ck, const char *path, const json_t *obj,
                         const char *const *known)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        int ok = 0;
        for (const char *const *p = known; *p && !ok; p++)
            ok = strcmp(*p, k) == 0;
        if (!ok)
            problem(ck, path, "unknown key \"%s\"", k);
    }
}

/* Resolves a secret written as {"env":"NAME"} or a literal. Returns a new string or NULL
 * (after reporting why). */
static char *secret(checker_t *ck, const char *path, const json_t *v)
{
    if (json_is_string(v)) {
        if (!*json_string_value(v)) {
            problem(ck, path, "must not be empty");
            return NULL;
        }
        return strdup(json_string_value(v));
    }
    const char *name = cm_json_str(v, "env", NULL);
    if (!json_is_object(v) || !name || json_object_size(v) != 1) {
        problem(ck, path, "must be a string or {\"env\": \"VARIABLE\"}");
        return NULL;
    }
    const char *val = getenv(name);
    if (!val || !*val) {
        problem(ck, path, "environment variable %s is not set or empty", name);
        return NULL;
    }
    return strdup(val);
}

/* Loads an optional array of 1..GW_MAX_KEYS secrets at obj.key into out. A present but
 * empty list is an error: it would read as "configured" while verifying nothing. */
static void secret_list(checker_t *ck, const char *path, const json_t *obj, const char *key,
                        char **out, size_t *n, int required, const char *why)
{
    const json_t *arr = json_object_get(obj, key);
    *n = 0;
    if (!arr && !required)
        return;
    if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > GW_MAX_KEYS) {
        problem(ck, path, "\"%s\" must list 1 to %d secrets%s", key, GW_MAX_KEYS, why);
        return;
    }
    for (size_t k = 0; k < json_array_size(arr); k++) {
        char kp[192];
        snprintf(kp, sizeof kp, "%s.%s[%zu]", path, key, k);
        char *sec = secret(ck, kp, json_array_get(arr, k));
        if (sec)
            out[(*n)++] = sec;
    }
}

static char *str_field(checker_t *ck, const char *path, const json_t *obj, const char *key,
                       const char *def)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        if (!def)
            problem(ck, path, "\"%s\" is required", key);
        return def ? strdup(def) : NULL;
    }
    if (!json_is_string(v) || !*json_string_value(v)) {
        problem(ck, path, "\"%s\" must be a non-empty string", key);
        return NULL;
    }
    return strdup(json_string_value(v));
}

static int64_t int_field(checker_t *ck, const char *path, const json_t *obj, const char *key,
                         int64_t def, int64_t min, int64_t max)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return def;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        problem(ck, path, "\"%s\" must be an integer from %lld to %lld", key, (long long)min,
                (long long)max);
        return def;
    }
    return json_integer_value(v);
}

static const json_t *obj_field(checker_t *ck, const char *path, const json_t *obj, const char *key,
                               int required)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        if (required)
            problem(ck, path, "\"%s\" is required", key);
        return NULL;
    }
    if (!json_is_object(v)) {
        problem(ck, path, "\"%s\" must be an object", key);
        return NULL;
    }
    return v;
}

static void load_provider(checker_t *ck, const char *name, const json_t *obj, gw_provider_t *p,
                          double default_rate)
{
    char path[64];
    snprintf(path, sizeof path, "providers.%s", name);
    static const char *const known[] = {
        "base_url",    "connect_timeout_ms", "timeout_ms", "read_timeout_ms", "write_timeout_ms",
        "deadline_ms", "rate_per_min",       "burst",      "breaker",         "retry",
        NULL};
    unknown_keys(ck, path, obj, known);
    p->base_url = str_field(ck, path, obj, "base_url", NULL);
    if (p->base_url && strncmp(p->base_url, "http://", 7) && strncmp(p->base_url, "https://", 8))
        problem(ck, path, "\"base_url\" must start with http:// or https://");
    p->connect_timeout_ms = (long)int_field(ck, path, obj, "connect_timeout_ms", 1000, 1, 60000);
    long t = (long)int_field(ck, path, obj, "timeout_ms", 5000, 1, 300000);
    p->read_timeout_ms = (long)int_field(ck, path, obj, "read_timeout_ms", t, 1, 300000);
    p->write_timeout_ms = (long)int_field(ck, path, obj, "write_timeout_ms", t * 2, 1, 300000);
    p->deadline_ms = (long)int_field(ck, path, obj, "deadline_ms", 30000, 1, 3600000);
    p->rate_per_min =
        (double)int_field(ck, path, obj, "rate_per_min", (int64_t)default_rate, 1, 1000000);
    p->burst = (double)int_field(ck, path, obj, "burst", 10, 1, 100000);

    char sub[96];
    snprintf(sub, sizeof sub, "%s.breaker", path);
    const json_t *br = obj_field(ck, path, obj, "breaker", 0);
    static const char *const bknown[] = {"failures",  "failure_pct", "window",  "open_ms",
                                         "half_open", "successes",   "slow_ms", NULL};
    if (br)
        unknown_keys(ck, sub, br, bknown);
    p->breaker_failures = (int)int_field(ck, sub, br, "failures", 5, 0, 10000);
    p->breaker_failure_pct = (int)int_field(ck, sub, br, "failure_pct", 50, 0, 100);
    p->breaker_window = (int)int_field(ck, sub, br, "window", 20, 1, 10000);
    p->breaker_open_ms = (long)int_field(ck, sub, br, "open_ms", 60000, 1, 86400000);
    p->breaker_half_open = (int)int_field(ck, sub, br, "half_open", 3, 1, 1000);
    p->breaker_successes = (int)int_field(ck, sub, br, "successes", 2, 1, 1000);
    p->breaker_slow_ms = (long)int_field(ck, sub, br, "slow_ms", 0, 0, 3600000);
    if (p->breaker_successes > p->breaker_half_open)
        problem(ck, sub, "\"successes\" cannot exceed \"half_open\"");

    snprintf(sub, sizeof sub, "%s.retry", path);
    const json_t *rt = obj_field(ck, path, obj, "retry", 0);
    static const char *const rknown[] = {"max_attempts",       "base_ms",    "cap_ms",
                                         "max_retry_after_ms", "budget_pct", NULL};
    if (rt)
        unknown_keys(ck, sub, rt, rknown);
    p->retry_max_attempts = (int)int_field(ck, sub, rt, "max_attempts", 3, 1, 20);
    p->retry_base_ms = (long)int_field(ck, sub, rt, "base_ms", 200, 1, 600000);
    p->retry_cap_ms = (long)int_field(ck, sub, rt, "cap_ms", 5000, 1, 3600000);
    p->retry_max_after_ms = (long)int_field(ck, sub, rt, "max_retry_after_ms", 10000, 0, 3600000);
    p->budget_ratio = (double)int_field(ck, sub, rt, "budget_pct", 20, 1, 100) / 100.0;
}

/* A header name as RFC 9110 allows (a token), so nothing can be smuggled into the request
 * the exporter sends. */
static int header_name_ok(const char *k)
{
    if (!*k)
        return 0;
    for (const char *p = k; *p; p++)
        if (!strchr("!#$%&'*+-.^_`|~", *p) && !(*p >= '0' && *p <= '9') &&
            !(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z'))
            return 0;
    return 1;
}

static void load_tracing(checker_t *ck, const json_t *tr, gw_tracing_t *t)
{
    static const char *const known[] = {"enabled",      "endpoint",   "headers",    "service_name",
                                        "sample_ratio", "queue_size", "batch_size", "flush_ms",
                                        "timeout_ms",   NULL};
    t->sample_ratio = 1;
    t->queue_size = 2048;
    t->batch_size = 256;
    t->flush_ms = 1000;
    t->timeout_ms = 2000;
    if (!tr)
        return;
    unknown_keys(ck, "tracing", tr, known);
    const json_t *en = json_object_get(tr, "enabled");
    if (en && !json_is_boolean(en))
        problem(ck, "tracing", "\"enabled\" must be true or false");
    t->enabled = !en || json_is_true(en);
    /* "enabled": false keeps a section (and its endpoint) in the file with tracing off. */
    if (t->enabled || json_object_get(tr, "endpoint"))
        t->endpoint = str_field(ck, "tracing", tr, "endpoint", NULL);
    if (t->endpoint && strncmp(t->endpoint, "http://", 7) && strncmp(t->endpoint, "https://", 8))
        problem(ck, "tracing", "\"endpoint\" must start with http:// or https://");
    t->service_name = str_field(ck, "tracing", tr, "service_name", "bookbench-gateway");
    const json_t *r = json_object_get(tr, "sample_ratio");
    if (r && (!json_is_number(r) || json_number_value(r) < 0 || json_number_value(r) > 1))
        problem(ck, "tracing", "\"sample_ratio\" must be a number from 0 to 1");
    else if (r)
        t->sample_ratio = json_number_value(r);
    t->queue_size = (unsigned)int_field(ck, "tracing", tr, "queue_size", 2048, 1, 1000000);
    t->batch_size = (unsigned)int_field(ck, "tracing", tr, "batch_size", 256, 1, 10000);
    if (t->batch_size > t->queue_size)
        problem(ck, "tracing", "\"batch_size\" cannot exceed \"queue_size\" (%u)", t->queue_size);
    t->flush_ms = (long)int_field(ck, "tracing", tr, "flush_ms", 1000, 1, 600000);
    t->timeout_ms = (long)int_field(ck, "tracing", tr, "timeout_ms", 2000, 1, 60000);
    const json_t *hs = json_object_get(tr, "headers");
    if (hs && (!json_is_object(hs) || json_object_size(hs) > GW_TRACING_MAX_HEADERS)) {
        problem(ck, "tracing", "\"headers\" must be an object of at most %d headers",
                GW_TRACING_MAX_HEADERS);
        return;
    }
    const char *k;
    const json_t *v;
    size_t n = 0;
    json_object_foreach((json_t *)hs, k, v)
    {
        char path[128];
        snprintf(path, sizeof path, "tracing.headers.%.64s", k);
        if (!header_name_ok(k) || !strcasecmp(k, "Content-Type") ||
            !strcasecmp(k, "Content-Length")) {
            problem(ck, path, "not a header name the exporter may set");
            continue;
        }
        /* A collector's API key is a secret like the providers' ({"env": ...}). */
        char *val = secret(ck, path, v);
        if (!val)
            continue;
        int bad = 0;
        for (const char *p = val; *p; p++)
            bad |= (unsigned char)*p < 0x20 || *p == 0x7f;
        if (bad) {
            problem(ck, path, "the value holds a control character");
        } else {
            size_t len = strlen(k) + strlen(val) + 3;
            t->headers[n] = malloc(len);
            if (t->headers[n])
                snprintf(t->headers[n++], len, "%s: %s", k, val);
        }
        free(val);
    }
}

static void load_source(checker_t *ck, size_t i, const json_t *o, gw_source_t *out)
{
    char path[64];
    snprintf(path, sizeof path, "sources[%zu]", i);
    if (!json_is_object(o)) {
        problem(ck, path, "must be an object");
        return;
    }
    static const char *const known[] = {"id", "secrets", NULL};
    unknown_keys(ck, path, o, known);
    out->id = str_field(ck, path, o, "id", NULL);
    if (out->id && strspn(out->id, "abcdefghijklmnopqrstuvwxyz0123456789_-") != strlen(out->id))
        problem(ck, path, "\"id\" may use only a-z, 0-9, _ and - (it is part of a URL)");
    secret_list(ck, path, o, "secrets", out->secrets, &out->nsecrets, 1,
                " (Standard Webhooks secrets, whsec_<base64>)");
    /* A secret that is not base64 would make every verification fail at request time;
     * say so now instead. */
    for (size_t k = 0; k < out->nsecrets; k++) {
        const char *sec = out->secrets[k];
        if (!strncmp(sec, "whsec_", 6))
            sec += 6;
        uint8_t raw[256];
        if (cm_b64_decode(sec, strlen(sec), raw, sizeof raw) <= 0)
            problem(ck, path, "secrets[%zu] is not base64 (after an optional whsec_ prefix)", k);
    }
}

const gw_source_t *gw_config_source(const gw_config_t *cfg, const char *id)
{
    for (size_t i = 0; id && i < cfg->nsources; i++)
        if (cfg->sources[i].id && strcmp(cfg->sources[i].id, id) == 0)
            return &cfg->sources[i];
    return NULL;
}

/* admin_tokens[i]: {"name", "token" (a secret), "tenant" (optional)}. The tenant is checked
 * against the tenants once they are loaded. */
static void load_admin_token(checker_t *ck, size_t i, const json_t *o, gw_admin_token_t *out)
{
    static const char *const known[] = {"name", "token", "tenant", NULL};
    char path[48];
    snprintf(path, sizeof path, "admin_tokens[%zu]", i);
    if (!json_is_object(o)) {
        problem(ck, path, "must be an object {\"name\", \"token\", \"tenant\"}");
        return;
    }
    unknown_keys(ck, path, o, known);
    out->name = str_field(ck, path, o, "name", NULL);
    if (out->name &&
        (strlen(out->name) > 64 || strcspn(out->name, "\"\\\r\n") != strlen(out->name)))
        problem(ck, path, "\"name\" must be at most 64 characters, without quotes or newlines");
    if (json_object_get(o, "token")) {
        char tp[64];
        snprintf(tp, sizeof tp, "%s.token", path);
        out->token = secret(ck, tp, json_object_get(o, "token"));
    } else {
        problem(ck, path, "\"token\" is required");
    }
    if (json_object_get(o, "tenant"))
        out->tenant = str_field(ck, path, o, "tenant", NULL);
}

static void load_tenant(checker_t *ck, size_t i, const json_t *t, gw_tenant_t *out)
{
    char path[64], sub[128];
    snprintf(path, sizeof path, "tenants[%zu]", i);
    if (!json_is_object(t)) {
        problem(ck, path, "must be an object");
        return;
    }
    static const char *const known[] = {"id",     "name",    "retell", "calcom",
                                        "stripe", "booking", NULL};
    unknown_keys(ck, path, t, known);
    out->id = str_field(ck, path, t, "id", NULL);
    /* The id is part of the tenant's webhook URLs (/webhooks/retell/{id}). */
    if (out->id && strspn(out->id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   "0123456789_-.") != strlen(out->id))
        problem(ck, path, "\"id\" may use only letters, digits, _, - and . (it is part of a URL)");
    out->name = str_field(ck, path, t, "name", "");

    snprintf(sub, sizeof sub, "%s.retell", path);
    const json_t *rt = obj_field(ck, path, t, "retell", 1);
    if (rt) {
        static const char *const rknown[] = {"agent_ids", "api_keys", NULL};
        unknown_keys(ck, sub, rt, rknown);
        const json_t *ids = json_object_get(rt, "agent_ids");
        if (!json_is_array(ids) || json_array_size(ids) == 0) {
            problem(ck, sub, "\"agent_ids\" must be a non-empty array of strings");
        } else {
            out->agent_ids = calloc(json_array_size(ids), sizeof(char *));
            for (size_t k = 0; out->agent_ids && k < json_array_size(ids); k++) {
                const json_t *a = json_array_get(ids, k);
                if (!json_is_string(a) || !*json_string_value(a))
                    problem(ck, sub, "agent_ids[%zu] must be a non-empty string", k);
                else
                    out->agent_ids[out->nagent_ids++] = strdup(json_string_value(a));
            }
        }
        /* Without a key the gateway could not verify, and would have to accept unsigned
         * webhooks: that is the audit's first finding, so it is a hard error. */
        secret_list(ck, sub, rt, "api_keys", out->retell_keys, &out->nretell_keys, 1,
                    " (Retell API keys: webhooks are verified with them; unsigned webhooks "
                    "are never accepted)");
    }
    snprintf(sub, sizeof sub, "%s.calcom", path);
    const json_t *cc = obj_field(ck, path, t, "calcom", 1);
    if (cc) {
        static const char *const cknown[] = {"api_key", "event_type_id",   "event_type_slug",
                                             "team_id", "webhook_secrets", NULL};
        unknown_keys(ck, sub, cc, cknown);
        char kp[192];
        snprintf(kp, sizeof kp, "%s.api_key", sub);
        if (!json_object_get(cc, "api_key"))
            problem(ck, sub, "\"api_key\" is required");
        else
            out->calcom_api_key = secret(ck, kp, json_object_get(cc, "api_key"));
        out->calcom_event_type_id = int_field(ck, sub, cc, "event_type_id", 0, 1, INT32_MAX);
        if (!json_object_get(cc, "event_type_id"))
            problem(ck, sub, "\"event_type_id\" is required");
        if (json_object_get(cc, "event_type_slug"))
            out->calcom_event_type_slug = str_field(ck, sub, cc, "event_type_slug", NULL);
        out->calcom_team_id = int_field(ck, sub, cc, "team_id", 0, 1, INT32_MAX);
        secret_list(ck, sub, cc, "webhook_secrets", out->calcom_webhook_secrets,
                    &out->ncalcom_webhook_secrets, 0, "");
    }
    snprintf(sub, sizeof sub, "%s.stripe", path);
    const json_t *sp = obj_field(ck, path, t, "stripe", 0);
    if (sp) {
        static const char *const sknown[] = {"api_key",  "webhook_secrets", "deposit_amount",
                                             "currency", "payment_method",  NULL};
        unknown_keys(ck, sub, sp, sknown);
        char kp[192];
        snprintf(kp, sizeof kp, "%s.api_key", sub);
        if (!json_object_get(sp, "api_key"))
            problem(ck, sub, "\"api_key\" is required");
        else
            out->stripe_api_key = secret(ck, kp, json_object_get(sp, "api_key"));
        secret_list(ck, sub, sp, "webhook_secrets", out->stripe_webhook_secrets,
                    &out->nstripe_webhook_secrets, 1,
                    " (Stripe signing secrets, whsec_...: Stripe webhooks are verified with them)");
        out->deposit_amount = int_field(ck, sub, sp, "deposit_amount", 0, 0, 100000000);
    }
}

static void load_tenant_defaults(checker_t *ck, const char *path, const json_t *t, gw_tenant_t *out)
{
    char sub[128];
    const json_t *sp = json_object_get(t, "stripe");
    snprintf(sub, sizeof sub, "%s.stripe", path);
    out->deposit_currency = str_field(ck, sub, sp, "currency", "eur");
    out->payment_method = str_field(ck, sub, sp, "payment_method", "pm_card_visa");
    snprintf(sub, sizeof sub, "%s.booking", path);
    const json_t *bk = obj_field(ck, path, t, "booking", 0);
    static const char *const bknown[] = {"alternatives", "step_min", NULL};
    if (bk)
        unknown_keys(ck, sub, bk, bknown);
    out->alternatives = (int)int_field(ck, sub, bk, "alternatives", 4, 0, 48);
    out->alternative_step_ms = int_field(ck, sub, bk, "step_min", 30, 5, 1440) * 60000;
}

const gw_tenant_t *gw_config_tenant(const gw_config_t *cfg, const char *id)
{
    for (size_t i = 0; id && i < cfg->ntenants; i++)
        if (cfg->tenants[i].id && strcmp(cfg->tenants[i].id, id) == 0)
            return &cfg->tenants[i];
    return NULL;
}

const gw_tenant_t *gw_config_tenant_by_agent(const gw_config_t *cfg, const char *agent_id)
{
    for (size_t i = 0; agent_id && i < cfg->ntenants; i++)
        for (size_t k = 0; k < cfg->tenants[i].nagent_ids; k++)
            if (strcmp(cfg->tenants[i].agent_ids[k], agent_id) == 0)
                return &cfg->tenants[i];
    return NULL;
}

cm_err_t gw_config_load(const char *path, gw_config_t **out, FILE *report, int *nproblems)
{
    checker_t ck = {.report = report};
    char err[CM_ERR_LEN];
    json_t *root = NULL;
    *out = NULL;
    *nproblems = 0;
    cm_err_t rc = cm_json_load_file(path, CONFIG_FILE_CAP, &root, err);
    if (rc) {
        problem(&ck, "$", "%s", err);
        *nproblems = ck.n;
        return CM_ECONFIG;
    }
    gw_config_t *c = calloc(1, sizeof *c);
    if (!c) {
        json_decref(root);
        return CM_ENOMEM;
    }
    if (!json_is_object(root)) {
        problem(&ck, "$", "the configuration must be a JSON object");
        goto done;
    }
    unknown_keys(&ck, "$", root, top_keys);

    const json_t *listen = obj_field(&ck, "$", root, "listen", 0);
    c->listen_addr = str_field(&ck, "listen", listen, "addr", "127.0.0.1");
    c->listen_port = (uint16_t)int_field(&ck, "listen", listen, "port", 8080, 0, 65535);
    c->http_threads = (unsigned)int_field(&ck, "listen", listen, "threads", 2, 1, 64);
    /* Defaults that survive 1,100 slowloris or 2,000 idle connections from one address
     * with capacity to spare (ci/bench-hostile), within a default hard RLIMIT_NOFILE. */
    c->max_connections =
        (unsigned)int_field(&ck, "listen", listen, "max_connections", 8192, 16, 1000000);
    c->max_connections_per_ip = (unsigned)int_field(&ck, "listen", listen, "max_connections_per_ip",
                                                    c->max_connections / 2, 1, 1000000);
    if (c->max_connections_per_ip > c->max_connections)
        problem(&ck, "listen.max_connections_per_ip", "cannot exceed max_connections (%u)",
                c->max_connections);
    c->header_timeout_ms =
        (unsigned)int_field(&ck, "listen", listen, "header_timeout_ms", 10000, 100, 600000);
    c->header_timeout_busy_ms =
        (unsigned)int_field(&ck, "listen", listen, "header_timeout_busy_ms", 1000, 100, 600000);
    if (c->header_timeout_busy_ms > c->header_timeout_ms)
        problem(&ck, "listen.header_timeout_busy_ms", "cannot exceed header_timeout_ms (%u)",
                c->header_timeout_ms);
    c->body_timeout_ms =
        (unsigned)int_field(&ck, "listen", listen, "body_timeout_ms", 20000, 100, 3600000);
    c->header_limit = (unsigned)int_field(&ck, "listen", listen, "header_limit", 8192, 1024, 16384);
    static const char *const lknown[] = {"addr",
                                         "port",
                                         "threads",
                                         "max_connections",
                                         "max_connections_per_ip",
                                         "header_timeout_ms",
                                         "header_timeout_busy_ms",
                                         "body_timeout_ms",
                                         "header_limit",
                                         NULL};
    if (listen)
        unknown_keys(&ck, "listen", listen, lknown);

    c->data_dir = str_field(&ck, "$", root, "data_dir", NULL);
    if (c->data_dir) {
        size_t n = strlen(c->data_dir) + sizeof "/gateway.db";
        c->db_path = malloc(n);
        if (c->db_path)
            snprintf(c->db_path, n, "%s/gateway.db", c->data_dir);
    }
    const json_t *toks = json_object_get(root, "admin_tokens");
    if (json_object_get(root, "admin_token"))
        c->admin_token = secret(&ck, "admin_token", json_object_get(root, "admin_token"));
    else if (!toks)
        problem(&ck, "$",
                "\"admin_token\" or \"admin_tokens\" is required (the admin API is never open)");
    if (toks && (!json_is_array(toks) || json_array_size(toks) == 0 ||
                 json_array_size(toks) > GW_MAX_ADMIN_TOKENS)) {
        problem(&ck, "admin_tokens", "must list 1 to %d tokens", GW_MAX_ADMIN_TOKENS);
    } else if (toks) {
        c->nadmin_tokens = json_array_size(toks);
        c->admin_tokens = calloc(c->nadmin_tokens, sizeof *c->admin_tokens);
        for (size_t i = 0; c->admin_tokens && i < c->nadmin_tokens; i++)
            load_admin_token(&ck, i, json_array_get(toks, i), &c->admin_tokens[i]);
        /* Names tell the audit log's entries apart; tokens tell the callers apart. */
        for (size_t i = 0; c->admin_tokens && i < c->nadmin_tokens; i++)
            for (size_t k = 0; k < i; k++) {
                const gw_admin_token_t *a = &c->admin_tokens[i], *b = &c->admin_tokens[k];
                char p[48];
                snprintf(p, sizeof p, "admin_tokens[%zu]", i);
                if (a->name && b->name && !strcmp(a->name, b->name))
                    problem(&ck, p, "name \"%s\" appears twice", a->name);
                if (a->token && b->token && !strcmp(a->token, b->token))
                    problem(&ck, p, "the same token as admin_tokens[%zu]", k);
            }
    }
    c->log_level = str_field(&ck, "$", root, "log_level", "info");
    if (c->log_level && strcmp(c->log_level, "debug") && strcmp(c->log_level, "info") &&
        strcmp(c->log_level, "warn") && strcmp(c->log_level, "error"))
        problem(&ck, "log_level", "must be one of debug, info, warn, error");
    c->seed = (uint64_t)int_field(&ck, "$", root, "seed", 1, 0, INT64_MAX);

    const json_t *wh = obj_field(&ck, "$", root, "webhooks", 0);
    /* 2 MiB: Retell's call_analyzed carries the whole transcript with word timings: the
     * full call object (sim_retell, test_sim_retell_call_object) is 155 KB at 10 minutes
     * and 229 KB at 15, so a call of an hour (Retell's default max_call_duration_ms) is
     * about 1 MB; 256 KiB refused every call over about 17 minutes. */
    c->body_limit = (size_t)int_field(&ck, "webhooks", wh, "body_limit", 2 << 20, 1024, 16 << 20);
    c->body_budget =
        (size_t)int_field(&ck, "webhooks", wh, "body_budget", 64LL << 20, 1 << 20, 4LL << 30);
    if (c->body_budget < c->body_limit)
        problem(&ck, "webhooks.body_budget",
                "%zu bytes is less than body_limit (%zu): no body of the largest size could "
                "be received",
                c->body_budget, c->body_limit);
    c->retell_tolerance_ms =
        int_field(&ck, "webhooks", wh, "retell_tolerance_ms", 300000, 1000, 3600000);
    c->calcom_replay_window_ms =
        int_field(&ck, "webhooks", wh, "calcom_replay_window_ms", 300000, 1000, 86400000);
    c->stripe_tolerance_s = int_field(&ck, "webhooks", wh, "stripe_tolerance_s", 300, 1, 86400);
    c->std_tolerance_s = int_field(&ck, "webhooks", wh, "std_tolerance_s", 300, 1, 86400);
    /* 8: two tenants with every key slot of a rotation in use, or eight with one key. */
    c->shared_route_max_keys =
        (unsigned)int_field(&ck, "webhooks", wh, "shared_route_max_keys", 8, 0, 64);
    static const char *const whknown[] = {
        "body_limit",         "body_budget",     "retell_tolerance_ms",   "calcom_replay_window_ms",
        "stripe_tolerance_s", "std_tolerance_s", "shared_route_max_keys", NULL};
    if (wh)
        unknown_keys(&ck, "webhooks", wh, whknown);

    const json_t *st = obj_field(&ck, "$", root, "store", 0);
    char *sync = str_field(&ck, "store", st, "synchronous", "full");
    if (sync && strcmp(sync, "full") && strcmp(sync, "normal"))
        problem(&ck, "store.synchronous", "must be \"full\" or \"normal\"");
    c->store_sync_full = !sync || strcmp(sync, "normal") != 0;
    free(sync);
    /* "sqlite" (the default, one file in data_dir) or "postgres" (several instances on one
     * database); the URL holds a password, so it is a secret like the API keys. */
    char *backend = str_field(&ck, "store", st, "backend", "sqlite");
    if (backend && strcmp(backend, "sqlite") && strcmp(backend, "postgres"))
        problem(&ck, "store.backend", "must be \"sqlite\" or \"postgres\"");
    c->store_pg = backend && !strcmp(backend, "postgres");
    free(backend);
    const json_t *url = st ? json_object_get(st, "url") : NULL;
    if (c->store_pg && !url)
        problem(&ck, "store.url", "is required with the postgres backend");
    else if (!c->store_pg && url)
        problem(&ck, "store.url", "is only for the postgres backend");
    else if (url)
        c->store_url = secret(&ck, "store.url", url);
    static const char *const stknown[] = {"synchronous", "backend", "url", NULL};
    if (st)
        unknown_keys(&ck, "store", st, stknown);

    const json_t *sg = obj_field(&ck, "$", root, "saga", 0);
    c->saga_deadline_ms = int_field(&ck, "saga", sg, "deadline_ms", 600000, 1000, 7 * 86400000LL);
    static const char *const sgknown[] = {"deadline_ms", NULL};
    if (sg)
        unknown_keys(&ck, "saga", sg, sgknown);
    const json_t *wk = obj_field(&ck, "$", root, "worker", 0);
    c->worker_threads = (unsigned)int_field(&ck, "worker", wk, "threads", 2, 1, 16);
    c->max_attempts = (int)int_field(&ck, "worker", wk, "max_attempts", 6, 1, 100);
    c->backoff_base_ms = int_field(&ck, "worker", wk, "backoff_base_ms", 200, 1, 3600000);
    c->backoff_factor = (double)int_field(&ck, "worker", wk, "backoff_factor", 2, 1, 10);
    c->backoff_cap_ms = int_field(&ck, "worker", wk, "backoff_cap_ms", 60000, 1, 86400000);
    /* At least a few seconds: renewals come every third of it, between jobs. */
    c->job_lease_ms = int_field(&ck, "worker", wk, "lease_ms", 30000, 3000, 86400000);
    /* An accepted webhook wakes a worker at once; this bounds an idle worker's sleep all
     * the same (a wake-up missed, breakers due to half-open, leases to check). */
    c->worker_idle_recheck_ms = int_field(&ck, "worker", wk, "idle_recheck_ms", 1000, 100, 600000);
    static const char *const wkknown[] = {
        "threads",        "max_attempts", "backoff_base_ms", "backoff_factor",
        "backoff_cap_ms", "lease_ms",     "idle_recheck_ms", NULL};
    if (wk)
        unknown_keys(&ck, "worker", wk, wkknown);

    const json_t *rt = obj_field(&ck, "$", root, "retention", 0);
    static const char *const rtknown[] = {"max_age_ms", "interval_ms", "batch", NULL};
    if (rt)
        unknown_keys(&ck, "retention", rt, rtknown);
    c->retention_max_age_ms =
        int_field(&ck, "retention", rt, "max_age_ms", 30LL * 86400000, 0, 3650LL * 86400000);
    c->retention_interval_ms =
        int_field(&ck, "retention", rt, "interval_ms", 60000, 1000, 86400000);
    c->retention_batch = (int)int_field(&ck, "retention", rt, "batch", 500, 1, 10000);
    /* A purged event's key no longer refuses a copy: the signature's time window must
     * do it, so what is kept must outlast every window, on either side of the receipt. */
    int64_t window = c->retell_tolerance_ms;
    if (c->calcom_replay_window_ms > window)
        window = c->calcom_replay_window_ms;
    if (c->stripe_tolerance_s * 1000 > window)
        window = c->stripe_tolerance_s * 1000;
    if (c->std_tolerance_s * 1000 > window)
        window = c->std_tolerance_s * 1000;
    if (c->retention_max_age_ms && c->retention_max_age_ms < 2 * window)
        problem(&ck, "retention.max_age_ms",
                "%lld ms is shorter than twice the longest webhook time window (%lld ms): a "
                "copy of a purged webhook could still pass its signature check and be taken "
                "as new (0 keeps everything)",
                (long long)c->retention_max_age_ms, (long long)(2 * window));

    const json_t *et = obj_field(&ck, "$", root, "event_types", 0);
    static const char *const etknown[] = {"check_interval_ms", NULL};
    if (et)
        unknown_keys(&ck, "event_types", et, etknown);
    c->event_type_check_ms =
        int_field(&ck, "event_types", et, "check_interval_ms", 600000, 0, 86400000);
    if (c->event_type_check_ms && c->event_type_check_ms < 1000)
        problem(&ck, "event_types.check_interval_ms",
                "%lld ms would list the event types more than once a second (0 turns the "
                "check off)",
                (long long)c->event_type_check_ms);

    const json_t *prov = obj_field(&ck, "$", root, "providers", 1);
    static const char *const pknown[] = {"calcom", "stripe", "retell", "slot_cache_ttl_ms", NULL};
    if (prov)
        unknown_keys(&ck, "providers", prov, pknown);
    const json_t *cal = prov ? obj_field(&ck, "providers", prov, "calcom", 1) : NULL;
    if (cal)
        load_provider(&ck, "calcom", cal, &c->calcom, 120);
    c->slot_cache_ttl_ms =
        prov ? int_field(&ck, "providers", prov, "slot_cache_ttl_ms", 60000, 1, 3600000) : 60000;
    const json_t *stp = prov ? obj_field(&ck, "providers", prov, "stripe", 0) : NULL;
    if (stp)
        load_provider(&ck, "stripe", stp, &c->stripe, 25 * 60);
    const json_t *rtp = prov ? obj_field(&ck, "providers", prov, "retell", 0) : NULL;
    if (rtp)
        load_provider(&ck, "retell", rtp, &c->retell, 60);

    /* Reconciliation: periodic only when the section is given, so that a gateway whose
     * operator never asked for it makes no extra calls to the providers. */
    const json_t *rcs = obj_field(&ck, "$", root, "reconcile", 0);
    static const char *const rcknown[] = {"enabled", "interval_ms", "lookback_ms", "grace_ms",
                                          NULL};
    if (rcs)
        unknown_keys(&ck, "reconcile", rcs, rcknown);
    const json_t *rce = rcs ? json_object_get(rcs, "enabled") : NULL;
    if (rce && !json_is_boolean(rce))
        problem(&ck, "reconcile.enabled", "must be true or false");
    c->reconcile_enabled = rcs && (!rce || json_is_true(rce));
    c->reconcile_interval_ms =
        int_field(&ck, "reconcile", rcs, "interval_ms", 300000, 1000, 86400000);
    c->reconcile_lookback_ms =
        int_field(&ck, "reconcile", rcs, "lookback_ms", 86400000, 60000, 31LL * 86400000);
    c->reconcile_grace_ms = int_field(&ck, "reconcile", rcs, "grace_ms", 120000, 0, 86400000);
    if (c->reconcile_grace_ms >= c->reconcile_lookback_ms)
        problem(&ck, "reconcile.grace_ms",
                "%lld ms leaves nothing to look at in a lookback of %lld ms",
                (long long)c->reconcile_grace_ms, (long long)c->reconcile_lookback_ms);

    const json_t *tenants = json_object_get(root, "tenants");
    if (!json_is_array(tenants) || json_array_size(tenants) == 0) {
        problem(&ck, "$", "\"tenants\" must be a non-empty array");
    } else {
        c->ntenants = json_array_size(tenants);
        c->tenants = calloc(c->ntenants, sizeof *c->tenants);
        for (size_t i = 0; c->tenants && i < c->ntenants; i++) {
            char tp[32];
            snprintf(tp, sizeof tp, "tenants[%zu]", i);
            load_tenant(&ck, i, json_array_get(tenants, i), &c->tenants[i]);
            if (json_is_object(json_array_get(tenants, i)))
                load_tenant_defaults(&ck, tp, json_array_get(tenants, i), &c->tenants[i]);
        }
        /* A tenant id names its webhook routes and its rows: two would share both. */
        for (size_t i = 0; c->tenants && i < c->ntenants; i++)
            if (c->tenants[i].id && gw_config_tenant(c, c->tenants[i].id) != &c->tenants[i]) {
                char p[64];
                snprintf(p, sizeof p, "tenants[%zu].id", i);
                problem(&ck, p, "tenant id \"%s\" appears twice", c->tenants[i].id);
            }
        /* An agent id in two tenants would make routing ambiguous. */
        for (size_t i = 0; c->tenants && i < c->ntenants; i++)
            for (size_t k = 0; k < c->tenants[i].nagent_ids; k++) {
                const gw_tenant_t *o = gw_config_tenant_by_agent(c, c->tenants[i].agent_ids[k]);
                if (o != &c->tenants[i]) {
                    char p[128];
                    snprintf(p, sizeof p, "tenants[%zu].retell.agent_ids[%zu]", i, k);
                    problem(&ck, p, "agent id \"%s\" already belongs to tenant \"%s\"",
                            c->tenants[i].agent_ids[k], o->id ? o->id : "?");
                }
            }
    }
    for (size_t i = 0; c->admin_tokens && c->tenants && i < c->nadmin_tokens; i++)
        if (c->admin_tokens[i].tenant && !gw_config_tenant(c, c->admin_tokens[i].tenant)) {
            char p[48];
            snprintf(p, sizeof p, "admin_tokens[%zu].tenant", i);
            problem(&ck, p, "no tenant \"%s\"", c->admin_tokens[i].tenant);
        }
    const json_t *sources = json_object_get(root, "sources");
    if (sources && !json_is_array(sources)) {
        problem(&ck, "$", "\"sources\" must be an array");
    } else if (sources) {
        c->nsources = json_array_size(sources);
        c->sources = calloc(c->nsources ? c->nsources : 1, sizeof *c->sources);
        for (size_t i = 0; c->sources && i < c->nsources; i++)
            load_source(&ck, i, json_array_get(sources, i), &c->sources[i]);
        for (size_t i = 0; c->sources && i < c->nsources; i++)
            if (c->sources[i].id && gw_config_source(c, c->sources[i].id) != &c->sources[i])
                problem(&ck, "sources", "id \"%s\" appears twice", c->sources[i].id);
    }
    const json_t *tr = obj_field(&ck, "$", root, "tracing", 0);
    load_tracing(&ck, tr, &c->tracing);
done:
    json_decref(root);
    *nproblems = ck.n;
    if (ck.n) {
        gw_config_free(&c);
        return CM_ECONFIG;
    }
    *out = c;
    return CM_OK;
}

void gw_config_free(gw_config_t **cp)
{
    gw_config_t *c = cp ? *cp : NULL;
    if (!c)
        return;
    for (size_t i = 0; c->tenants && i < c->ntenants; i++) {
        gw_tenant_t *t = &c->tenants[i];
        free(t->id);
        free(t->name);
        for (size_t k = 0; k < t->nagent_ids; k++)
            free(t->agent_ids[k]);
        free(t->agent_ids);
        for (size_t k = 0; k < t->nretell_keys; k++)
            free(t->retell_keys[k]);
        free(t->calcom_api_key);
        free(t->calcom_event_type_slug);
        for (size_t k = 0; k < t->ncalcom_webhook_secrets; k++)
            free(t->calcom_webhook_secrets[k]);
        free(t->stripe_api_key);
        free(t->deposit_currency);
        free(t->payment_method);
        for (size_t k = 0; k < t->nstripe_webhook_secrets; k++)
            free(t->stripe_webhook_secrets[k]);
    }
    for (size_t i = 0; c->sources && i < c->nsources; i++) {
        free(c->sources[i].id);
        for (size_t k = 0; k < c->sources[i].nsecrets; k++)
            free(c->sources[i].secrets[k]);
    }
    for (size_t i = 0; c->admin_tokens && i < c->nadmin_tokens; i++) {
        free(c->admin_tokens[i].name);
        free(c->admin_tokens[i].token);
        free(c->admin_tokens[i].tenant);
    }
    free(c->admin_tokens);
    free(c->sources);
    free(c->tenants);
    free(c->listen_addr);
    free(c->data_dir);
    free(c->db_path);
    free(c->store_url);
    free(c->admin_token);
    free(c->log_level);
    free(c->calcom.base_url);
    free(c->stripe.base_url);
    free(c->retell.base_url);
    free(c->tracing.endpoint);
    free(c->tracing.service_name);
    for (size_t i = 0; c->tracing.headers[i]; i++)
        free(c->tracing.headers[i]);
    free(c);
    *cp = NULL;
}
