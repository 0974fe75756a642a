/* sim_delivery.c - one webhook attempt (signed POST, timed, journaled) and the delivery log. */
#include "sim_delivery.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_clock.h"
#include "cm_json.h"

void sim_delivery_send(cm_http_client_t *c, const sim_delivery_req_t *req, sim_attempt_t *a)
{
    char sighdr[CM_SIG_HDR_LEN + 64];
    const char *headers[6] = {sighdr};
    snprintf(sighdr, sizeof sighdr, "%s: %s", req->sig_header, a->sig);
    for (size_t i = 0; req->headers && req->headers[i] && i < 4; i++)
        headers[i + 1] = req->headers[i];
    cm_http_request_t hr = {.method = "POST",
                            .url = a->url,
                            .headers = headers,
                            .body = req->body,
                            .body_len = req->len,
                            .timeout_ms = req->timeout_ms,
                            .abort = req->abort};
    cm_http_response_t resp;
    int64_t at = cm_clock_now_ms(), t0 = cm_clock_mono_ns();
    cm_err_t rc = cm_http_client_do(c, &hr, &resp);
    a->ms = (double)(cm_clock_mono_ns() - t0) / 1e6;
    a->status = rc ? 0 : resp.status;
    a->err[0] = '\0';
    if (rc)
        snprintf(a->err, sizeof a->err, "%s: %.120s", cm_strerror(rc), resp.err);
    cm_http_response_free(&resp);
    if (!req->journal)
        return;
    json_t *h = json_pack("{s:s}", req->sig_header, a->sig);
    sim_journal_add(req->journal, &(sim_journal_rec_t){.kind = SIM_JOURNAL_DELIVERY,
                                                       .provider = req->provider,
                                                       .method = "POST",
                                                       .path = a->url,
                                                       .headers = h,
                                                       .body = req->body,
                                                       .body_len = req->len,
                                                       .status = (int)a->status,
                                                       .outcome = rc ? a->err : "answered",
                                                       .at_ms = at,
                                                       .duration_ms = a->ms,
                                                       .delivery_id = req->delivery_id,
                                                       .event = req->event,
                                                       .attempt = req->attempt});
    json_decref(h);
}

json_t *sim_delivery_attempt_json(const sim_attempt_t *a)
{
    return json_pack("{s:o,s:o,s:f,s:o,s:o}", "status",
                     a->status ? json_integer(a->status) : json_null(), "error",
                     a->err[0] ? json_string(a->err) : json_null(), "ms", a->ms, "url",
                     a->url ? json_string(a->url) : json_null(), "signature",
                     a->sig[0] ? json_string(a->sig) : json_null());
}

json_t *sim_delivery_item(json_t *attempts)
{
    if (!attempts)
        return NULL;
    size_t n = json_array_size(attempts);
    const json_t *last = n ? json_array_get(attempts, n - 1) : NULL;
    json_t *err = last ? json_object_get(last, "error") : NULL;
    /* "o" throughout: each value is a new reference, taken by the pack. */
    return json_pack("{s:o,s:o,s:o,s:o}", "status",
                     last ? json_incref(json_object_get(last, "status")) : json_null(), "error",
                     last ? json_incref(err) : json_string("not sent (stopping)"), "ms",
                     last ? json_incref(json_object_get(last, "ms")) : json_real(0), "attempts",
                     attempts);
}

/* ---- queued jobs -------------------------------------------------------------------- */

sim_delivery_job_t *sim_delivery_job_new(const char *event, const char *id, char *body)
{
    sim_delivery_job_t *j = body ? calloc(1, sizeof *j) : NULL;
    if (j) {
        j->body = body;
        j->len = strlen(body);
        j->event = strdup(event);
        j->id = id ? strdup(id) : NULL;
        j->due_mono_ms = cm_clock_mono_ms();
    }
    if (!j || !j->event || (id && !j->id)) {
        if (j)
            sim_delivery_job_free(j);
        else
            free(body);
        return NULL;
    }
    return j;
}

const char *sim_delivery_job_id(const sim_delivery_job_t *j)
{
    return j->report.seq ? j->report.id : j->id;
}

void sim_delivery_job_free(sim_delivery_job_t *j)
{
    if (!j)
        return;
    free(j->event);
    free(j->id);
    free(j->body);
    free(j);
}

void sim_delivery_jobs_append(sim_delivery_job_t **list, sim_delivery_job_t *j)
{
    while (*list)
        list = &(*list)->next;
    *list = j;
}

void sim_delivery_jobs_drop(sim_delivery_log_t *l, sim_delivery_job_t *list, const char *why)
{
    while (list) {
        sim_delivery_job_t *n = list->next;
        if (l)
            sim_delivery_log_unsent(l, &list->report, why);
        sim_delivery_job_free(list);
        list = n;
    }
}

/* ---- the log ------------------------------------------------------------------------- */

typedef struct rec {
    uint64_t seq;
    char id[SIM_DELIVERY_ID_LEN];
    json_t *event;
    char *url;
    unsigned copies;
    unsigned first_left; /* copies whose first attempt has not ended */
    unsigned open;       /* copies with another attempt to come */
    unsigned waiters;    /* threads in sim_delivery_log_wait_first: not dropped meanwhile */
    unsigned char *started, *more; /* per copy */
    json_t *attempts;              /* per copy, an array of attempts */
    struct rec *next;
} rec_t;

struct sim_delivery_log {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* broadcast when a first attempt ends and at stop */
    char prefix[17];
    int stopping;
    uint64_t next_seq;
    rec_t *recs; /* newest first */
};

static void rec_free(rec_t *r)
{
    if (!r)
        return;
    json_decref(r->event);
    json_decref(r->attempts);
    free(r->url);
    free(r->started);
    free(r->more);
    free(r);
}

sim_delivery_log_t *sim_delivery_log_new(const char *prefix)
{
    if (!prefix || strlen(prefix) > 16)
        return NULL;
    sim_delivery_log_t *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    snprintf(l->prefix, sizeof l->prefix, "%s", prefix);
    l->next_seq = 1;
    return l;
}

void sim_delivery_log_free(sim_delivery_log_t **lp)
{
    sim_delivery_log_t *l = lp ? *lp : NULL;
    if (!l)
        return;
    while (l->recs) {
        rec_t *n = l->recs->next;
        rec_free(l->recs);
        l->recs = n;
    }
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    free(l);
    *lp = NULL;
}

static int finished(const rec_t *r)
{
    return !r->first_left && !r->open && !r->waiters;
}

cm_err_t sim_delivery_log_open(sim_delivery_log_t *l, const json_t *event, const char *url,
                               unsigned copies, sim_delivery_ref_t *ref)
{
    rec_t *r = copies ? calloc(1, sizeof *r) : NULL;
    if (!r)
        return copies ? CM_ENOMEM : CM_EINVAL;
    r->event = json_deep_copy(event);
    r->url = strdup(url);
    r->copies = r->first_left = r->open = copies;
    r->started = calloc(copies, 1);
    r->more = calloc(copies, 1);
    r->attempts = json_array();
    for (unsigned i = 0; r->attempts && i < copies; i++)
        if (json_array_append_new(r->attempts, json_array()))
            break;
    if (!r->event || !r->url || !r->started || !r->more || json_array_size(r->attempts) != copies) {
        rec_free(r);
        return CM_ENOMEM;
    }
    /* A copy is open until its last attempt: the first one is still to come. */
    memset(r->more, 1, copies);
    pthread_mutex_lock(&l->mu);
    r->seq = l->next_seq++;
    snprintf(r->id, sizeof r->id, "%s_%06llu", l->prefix, (unsigned long long)r->seq);
    r->next = l->recs;
    l->recs = r;
    size_t n = 0;
    for (rec_t **pp = &l->recs; *pp;) {
        rec_t *x = *pp;
        if (++n > SIM_DELIVERY_HISTORY && finished(x)) {
            *pp = x->next;
            rec_free(x);
            continue;
        }
        pp = &x->next;
    }
    *ref = (sim_delivery_ref_t){.seq = r->seq, .copy = 0};
    memcpy(ref->id, r->id, sizeof r->id);
    pthread_mutex_unlock(&l->mu);
    return CM_OK;
}

/* Under mu. */
static rec_t *find_seq(sim_delivery_log_t *l, uint64_t seq)
{
    rec_t *r = l->recs;
    while (r && r->seq != seq)
        r = r->next;
    return r;
}

void sim_delivery_log_attempt(sim_delivery_log_t *l, const sim_delivery_ref_t *ref,
                              const sim_attempt_t *a, int more)
{
    if (!ref->seq)
        return;
    unsigned copy = ref->copy;
    json_t *aj = sim_delivery_attempt_json(a);
    pthread_mutex_lock(&l->mu);
    rec_t *r = find_seq(l, ref->seq);
    if (r && copy < r->copies) {
        /* Out of memory, the report shows one attempt fewer; its status still moves on. */
        if (aj)
            (void)json_array_append(json_array_get(r->attempts, copy), aj);
        if (!r->started[copy]) {
            r->started[copy] = 1;
            r->first_left--;
        }
        if (r->more[copy] && !more)
            r->open--;
        r->more[copy] = more ? 1 : 0;
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    json_decref(aj);
}

void sim_delivery_log_unsent(sim_delivery_log_t *l, const sim_delivery_ref_t *ref, const char *why)
{
    sim_attempt_t a = {.status = 0};
    snprintf(a.err, sizeof a.err, "%s", why);
    sim_delivery_log_attempt(l, ref, &a, 0);
}

/* Under mu. */
static json_t *report_of(const rec_t *r)
{
    json_t *list = json_array();
    for (unsigned i = 0; list && i < r->copies; i++)
        if (json_array_append_new(
                list, sim_delivery_item(json_deep_copy(json_array_get(r->attempts, i))))) {
            json_decref(list);
            list = NULL;
        }
    if (!list)
        return NULL;
    const char *status = r->first_left ? "pending" : r->open ? "retrying" : "done";
    return json_pack("{s:s,s:s,s:O,s:s,s:o}", "delivery_id", r->id, "status", status, "event",
                     r->event, "url", r->url, "deliveries", list);
}

cm_err_t sim_delivery_log_queue(sim_delivery_log_t *l, const json_t *event, const char *url,
                                const sim_delivery_copies_t *c, sim_delivery_ref_t *ref,
                                sim_delivery_job_t **jobs)
{
    sim_delivery_job_t *list = NULL, **tail = &list;
    /* One serialisation: every copy and every retry carries the same bytes. */
    char *body = cm_json_dumps(event);
    cm_err_t rc = body ? CM_OK : CM_ENOMEM;
    for (unsigned k = 0; !rc && k < c->copies; k++) {
        sim_delivery_job_t *j = sim_delivery_job_new(c->event, c->id, strdup(body));
        if (!j) {
            rc = CM_ENOMEM;
            break;
        }
        j->forge = c->forge;
        j->ts_offset_ms = c->ts_offset_ms;
        j->generation = c->generation;
        j->report.copy = k;
        *tail = j;
        tail = &j->next;
    }
    free(body);
    if (!rc)
        rc = sim_delivery_log_open(l, event, url, c->copies, ref);
    for (sim_delivery_job_t *j = list; !rc && j; j = j->next) {
        j->report.seq = ref->seq;
        memcpy(j->report.id, ref->id, sizeof ref->id);
    }
    if (rc) {
        sim_delivery_jobs_drop(NULL, list, NULL);
        list = NULL;
    }
    *jobs = list;
    return rc;
}

json_t *sim_delivery_log_wait_first(sim_delivery_log_t *l, const sim_delivery_ref_t *ref)
{
    json_t *v = NULL;
    pthread_mutex_lock(&l->mu);
    rec_t *r = find_seq(l, ref->seq);
    if (r) {
        /* Only delivery workers end attempts; this waits for them, not for time. */
        r->waiters++;
        while (r->first_left && !l->stopping)
            pthread_cond_wait(&l->cv, &l->mu);
        r->waiters--;
        v = report_of(r);
    }
    pthread_mutex_unlock(&l->mu);
    return v;
}

json_t *sim_delivery_log_report(sim_delivery_log_t *l, const char *id)
{
    json_t *v = NULL;
    pthread_mutex_lock(&l->mu);
    for (rec_t *r = l->recs; r; r = r->next) {
        if (strcmp(r->id, id) == 0) {
            v = report_of(r);
            break;
        }
    }
    pthread_mutex_unlock(&l->mu);
    return v;
}

void sim_delivery_log_stop(sim_delivery_log_t *l)
{
    pthread_mutex_lock(&l->mu);
    l->stopping = 1;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}
