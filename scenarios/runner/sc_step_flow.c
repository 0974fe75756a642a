/* sc_step_flow.c - the steps that hold steps: "repeat" (N iterations, in order or from a
 * pool of threads, optionally shuffled) and "include" (a file of steps inlined at load,
 * with "with" variables: a template). */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_clock.h"
#include "cm_json.h"
#include "cm_rand.h"
#include "sc_log.h"
#include "sc_signal.h"
#include "sc_step_def.h"
#include "sc_vars.h"

/* An include's "with": each variable set (expanded now), then the included steps. The
 * variables stay set afterwards, like a sc_step_capture's. */
static cm_err_t run_include(sc_ctx_t *ctx, const sc_step_t *s, const char *label, const char *actor)
{
    (void)actor; /* its children log as themselves */
    if (s->with) {
        char err[CM_ERR_LEN];
        json_t *w = NULL;
        if (sc_vars_expand_json(ctx->vars, s->with, &w, err) != CM_OK)
            return sc_step_fail_var(ctx, label, err);
        const char *k;
        json_t *x;
        cm_err_t rc = CM_OK;
        json_object_foreach(w, k, x)
        {
            if (!rc && sc_vars_set(ctx->vars, k, x) != CM_OK)
                rc = sc_fail(ctx, RP_ERRORED, "internal", "%s: out of memory", label);
        }
        json_decref(w);
        if (rc)
            return rc;
    }
    return sc_step_run_children(ctx, s);
}

/* Before an iteration: the runner was interrupted, or the scenario's deadline passed. */
static cm_err_t iteration_blocked(sc_ctx_t *ctx, const char *label, long long i)
{
    if (sc_signal_caught())
        return sc_fail(ctx, RP_ERRORED, "interrupted", "%s: interrupted by signal %d before %lld",
                       label, sc_signal_caught(), i);
    if (cm_clock_mono_ms() >= ctx->deadline_ms)
        return sc_fail(ctx, RP_FAILED, "timeout",
                       "%s: the scenario's --timeout passed before iteration %lld", label, i);
    return CM_OK;
}

static void set_iter(sc_ctx_t *ctx, const char *outer, const char *var, long long i)
{
    /* "outer var=i", cut at the buffer's end (labels only need the start). */
    char num[24];
    const char *parts[] = {outer, *outer ? " " : "", var, "=", num};
    size_t n = 0;
    snprintf(num, sizeof num, "%lld", i);
    for (size_t k = 0; k < sizeof parts / sizeof parts[0]; k++)
        for (const char *c = parts[k]; *c && n + 1 < sizeof ctx->iter; c++)
            ctx->iter[n++] = *c;
    ctx->iter[n] = '\0';
}

typedef struct repeat_pool repeat_pool_t;

typedef struct {
    repeat_pool_t *pool;
    sc_ctx_t ctx;
    pthread_t tid;
    int index, started;
} repeat_worker_t;

struct repeat_pool {
    sc_ctx_t *parent;
    const sc_step_t *s;
    const char *label;
    const long long *order;
    atomic_llong next;
    atomic_int stop;
    pthread_mutex_t lock; /* the log, and first/others below */
    int first;            /* the worker whose failure is reported, or -1 */
    long long others;     /* further failed iterations */
};

static void *repeat_worker(void *arg)
{
    repeat_worker_t *w = arg;
    repeat_pool_t *pl = w->pool;
    sc_ctx_t *ctx = &w->ctx;
    for (;;) {
        long long k = atomic_fetch_add(&pl->next, 1);
        if (k >= pl->s->times || atomic_load(&pl->stop))
            break;
        long long i = pl->order[k];
        cm_err_t rc = iteration_blocked(ctx, pl->label, i);
        if (!rc) {
            set_iter(ctx, pl->parent->iter, pl->s->var, i);
            if (!(ctx->vars = sc_vars_clone(pl->parent->vars)) ||
                sc_vars_set_int(ctx->vars, pl->s->var, i) != CM_OK)
                rc = sc_fail(ctx, RP_ERRORED, "internal", "%s: out of memory", pl->label);
            else
                rc = sc_step_run_children(ctx, pl->s);
            sc_vars_free(&ctx->vars);
        }
        if (rc) {
            pthread_mutex_lock(&pl->lock);
            if (pl->first < 0)
                pl->first = w->index;
            else
                pl->others++;
            pthread_mutex_unlock(&pl->lock);
            atomic_store(&pl->stop, 1);
            break;
        }
    }
    return NULL;
}

/* concurrency > 1: workers with their own HTTP client, variables (a copy per iteration:
 * what an iteration captures stays in it) and failure record, sharing the log. The first
 * failure stops the others from taking new iterations and becomes the step's failure. */
static cm_err_t run_repeat_concurrent(sc_ctx_t *ctx, const sc_step_t *s, const char *label,
                                      const long long *order)
{
    int n = s->concurrency < s->times ? s->concurrency : (int)s->times;
    repeat_pool_t pl = {.parent = ctx, .s = s, .label = label, .order = order, .first = -1};
    repeat_worker_t *w = calloc((size_t)n, sizeof *w);
    cm_err_t rc = CM_OK;
    if (!w)
        return sc_fail(ctx, RP_ERRORED, "internal", "%s: out of memory", label);
    atomic_init(&pl.next, 0);
    atomic_init(&pl.stop, 0);
    pthread_mutex_init(&pl.lock, NULL);
    /* From here on the scenario's own context is only read (and its log shared). */
    ctx->log_lock = &pl.lock;
    int started = 0;
    for (int k = 0; k < n; k++) {
        w[k].pool = &pl;
        w[k].index = k;
        w[k].ctx = *ctx;
        w[k].ctx.worker = 1;
        w[k].ctx.vars = NULL;
        memset(&w[k].ctx.fail, 0, sizeof w[k].ctx.fail);
        if (!(w[k].ctx.http = cm_http_client_new()))
            break;
        if (pthread_create(&w[k].tid, NULL, repeat_worker, &w[k]) != 0) {
            cm_http_client_free(&w[k].ctx.http);
            break;
        }
        w[k].started = 1;
        started++;
    }
    if (started < n)
        atomic_store(&pl.stop, 1);
    for (int k = 0; k < n; k++)
        if (w[k].started)
            pthread_join(w[k].tid, NULL);
    ctx->log_lock = NULL;
    pthread_mutex_destroy(&pl.lock);

    if (pl.first >= 0) {
        const sc_failure_t *f = &w[pl.first].ctx.fail;
        sc_fail(ctx, f->status, f->type, "%s", f->message);
        const char *rest = f->detail.data ? strchr(f->detail.data, '\n') : NULL;
        if (rest && rest[1])
            sc_fail_text(ctx, rest + 1);
        if (pl.others)
            sc_fail_detail(ctx, "(%lld more iteration(s) failed at the same time)\n", pl.others);
        rc = CM_EINVAL;
    } else if (started < n) {
        rc = sc_fail(ctx, RP_ERRORED, "internal", "%s: could only start %d of %d threads", label,
                     started, n);
    } else if (atomic_load(&pl.next) < s->times) {
        /* Nobody failed, yet not every iteration ran: only a signal or the deadline. */
        rc = iteration_blocked(ctx, label, atomic_load(&pl.next));
        if (!rc)
            rc = sc_fail(ctx, RP_ERRORED, "internal", "%s: iterations left undone", label);
    }
    for (int k = 0; k < n; k++) {
        cm_buf_free(&w[k].ctx.fail.detail);
        cm_http_client_free(&w[k].ctx.http);
    }
    free(w);
    return rc;
}

/* concurrency 1: in order on this thread, in the scenario's own variables (captures stay
 * after the repeat); the repeat's variable is restored to what it was before. */
static cm_err_t run_repeat_serial(sc_ctx_t *ctx, const sc_step_t *s, const char *label,
                                  const long long *order)
{
    char outer[sizeof ctx->iter];
    const json_t *old = sc_vars_lookup(ctx->vars, s->var);
    json_t *saved = old ? json_incref((json_t *)old) : NULL;
    cm_err_t rc = CM_OK;
    snprintf(outer, sizeof outer, "%s", ctx->iter);
    for (long long k = 0; k < s->times && !rc; k++) {
        long long i = order[k];
        if ((rc = iteration_blocked(ctx, label, i)))
            break;
        set_iter(ctx, outer, s->var, i);
        if (sc_vars_set_int(ctx->vars, s->var, i) != CM_OK)
            rc = sc_fail(ctx, RP_ERRORED, "internal", "%s: out of memory", label);
        else
            rc = sc_step_run_children(ctx, s);
    }
    snprintf(ctx->iter, sizeof ctx->iter, "%s", outer);
    if (saved) {
        if (sc_vars_set(ctx->vars, s->var, saved) != CM_OK && !rc)
            rc = sc_fail(ctx, RP_ERRORED, "internal", "%s: out of memory", label);
        json_decref(saved);
    } else {
        sc_vars_unset(ctx->vars, s->var);
    }
    return rc;
}

static cm_err_t run_repeat(sc_ctx_t *ctx, const sc_step_t *s, const char *label, const char *actor)
{
    (void)actor; /* its children log as themselves */
    long long *order = malloc((size_t)s->times * sizeof *order);
    if (!order)
        return sc_fail(ctx, RP_ERRORED, "internal", "%s: out of memory", label);
    for (long long k = 0; k < s->times; k++)
        order[k] = k;
    if (s->shuffle) {
        cm_rand_t r;
        cm_rand_seed(&r, s->shuffle_seed);
        for (long long k = s->times - 1; k > 0; k--) {
            long long j = (long long)cm_rand_below(&r, (uint64_t)k + 1);
            long long t = order[k];
            order[k] = order[j];
            order[j] = t;
        }
    }
    int64_t t0 = cm_clock_mono_ms();
    sc_log(ctx, "runner", "%s: %lld times%s, %s = %lld first, %d thread(s)", label, s->times,
           s->shuffle ? " in shuffled order" : "", s->var, order[0],
           s->concurrency < s->times ? s->concurrency : (int)s->times);
    cm_err_t rc = s->concurrency > 1 && s->times > 1 ? run_repeat_concurrent(ctx, s, label, order)
                                                     : run_repeat_serial(ctx, s, label, order);
    if (!rc)
        sc_log(ctx, "runner", "%s: all %lld iterations passed in %lld ms", label, s->times,
               (long long)(cm_clock_mono_ms() - t0));
    free(order);
    return rc;
}

static cm_err_t parse_repeat(sc_parse_t *v, const json_t *step, const json_t *obj, sc_step_t *s)
{
    (void)step; /* everything is in the kind's own object */
    static const char *const keys[] = {"times",       "step",         "steps", "var",
                                       "concurrency", "shuffle_seed", NULL};
    long long conc, seed;
    cm_err_t rc;
    if (!json_is_object(obj))
        return sc_parse_fail(v, "\"repeat\" must be an object {\"times\": N, \"step\": {...}}");
    if ((rc = sc_parse_keys(v, obj, "\"repeat\"", keys)) ||
        (rc = sc_parse_opt_str(v, obj, "var", &s->var)) ||
        (rc = sc_parse_opt_int(v, obj, "concurrency", 1, 1, SC_REPEAT_MAX_CONCURRENCY, &conc)) ||
        (rc = sc_parse_opt_int(v, obj, "shuffle_seed", -1, 0, INT64_MAX, &seed)))
        return rc;
    const json_t *t = json_object_get(obj, "times");
    if (!json_is_integer(t) || json_integer_value(t) < 1 ||
        json_integer_value(t) > SC_REPEAT_MAX_TIMES)
        return sc_parse_fail(v, "\"times\" is required (an integer from 1 to %d)",
                             SC_REPEAT_MAX_TIMES);
    s->times = json_integer_value(t);
    s->concurrency = (int)conc;
    s->shuffle = seed >= 0;
    s->shuffle_seed = seed >= 0 ? (unsigned long long)seed : 0;
    if (!s->var)
        s->var = "i";
    if ((rc = sc_parse_var_name(v, "var", s->var)))
        return rc;
    if (v->in_concurrent && s->concurrency > 1)
        return sc_parse_fail(v, "a repeat with \"concurrency\" > 1 cannot sit inside another one");
    const json_t *one = json_object_get(obj, "step"), *many = json_object_get(obj, "steps");
    if ((one != NULL) == (many != NULL))
        return sc_parse_fail(v, "give exactly one of \"step\" (one step) and \"steps\" (a list)");
    if (one && !json_is_object(one))
        return sc_parse_fail(v, "\"step\" must be a step object");
    json_t *list = one ? json_pack("[O]", one) : json_incref((json_t *)many);
    if (!list)
        return sc_parse_fail(v, "out of memory");
    int outer = v->in_concurrent;
    v->in_concurrent |= s->concurrency > 1;
    rc = sc_parse_children(v, list, one ? ".step" : ".steps", s);
    v->in_concurrent = outer;
    json_decref(list);
    return rc;
}

static cm_err_t parse_include(sc_parse_t *v, const json_t *x, sc_step_t *s)
{
    char path[PATH_MAX], err[SC_ERR_LEN], jerr[CM_ERR_LEN], suffix[sizeof s->loc];
    json_t *doc = NULL;
    cm_err_t rc;
    if (!json_is_string(x) || json_string_length(x) == 0)
        return sc_parse_fail(v, "\"include\" must name a file of steps");
    s->include = json_string_value(x);
    if (strstr(s->include, "${"))
        return sc_parse_fail(v,
                             "\"include\": the path is read at load time, it cannot hold ${...}");
    if (v->depth >= SC_INCLUDE_DEPTH)
        return sc_parse_fail(v, "\"include\": more than %d levels (does a file include itself?)",
                             SC_INCLUDE_DEPTH);
    if (sc_scenario_resolve(v->sc, s->include, path, sizeof path, err) != CM_OK)
        return sc_parse_fail(v, "\"include\": %s", err);
    if (sc_parse_load_doc(path, &doc, jerr) != CM_OK)
        return sc_parse_fail(v, "\"include\": %s", jerr);
    /* The scenario keeps the document: the steps borrow their strings from it. */
    if ((rc = sc_parse_keep(v, doc)))
        return rc;
    const json_t *list = json_is_object(doc) ? json_object_get(doc, "steps") : doc;
    if (!json_is_array(list) || (json_is_object(doc) && json_object_size(doc) != 1))
        return sc_parse_fail(v, "\"include\": %s must hold a list of steps, or {\"steps\": [...]}",
                             path);
    /* The file's base name: nested includes must still fit a message. */
    const char *base = strrchr(s->include, '/') ? strrchr(s->include, '/') + 1 : s->include;
    snprintf(suffix, sizeof suffix, ":%s", base);
    int in_concurrent = v->in_concurrent;
    v->depth++;
    rc = sc_parse_children(v, list, suffix, s);
    v->depth--;
    v->in_concurrent = in_concurrent;
    return rc;
}

/* "with": variable -> value, set when the step runs (a template's parameters). */
static cm_err_t include_parse(sc_parse_t *v, const json_t *obj, const json_t *body, sc_step_t *s)
{
    if ((s->with = json_object_get(obj, "with"))) {
        const char *k;
        json_t *x;
        if (!json_is_object(s->with) || json_object_size(s->with) == 0)
            return sc_parse_fail(v, "\"with\" must be an object of variable -> value");
        json_object_foreach((json_t *)s->with, k, x)
        {
            cm_err_t rc = sc_parse_var_name(v, "with", k);
            if (rc)
                return rc;
        }
    }
    return parse_include(v, body, s);
}

const sc_step_def_t sc_step_repeat = {
    .key = "repeat",
    .keys = (const char *const[]){"name", "repeat", NULL},
    .parse = parse_repeat,
    .run = run_repeat,
};

const sc_step_def_t sc_step_include = {
    .key = "include",
    .keys = (const char *const[]){"name", "include", "with", NULL},
    .parse = include_parse,
    .run = run_include,
};
