/* gw_stripe.c - Stripe payment intents and refunds. */
#include "gw_stripe.h"

#include <stdio.h>
#include <string.h>

#include "cm_json.h"
#include "cm_log.h"

static cm_err_t form_escape(cm_buf_t *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    cm_err_t rc = CM_OK;
    for (const unsigned char *p = (const unsigned char *)s; !rc && *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '*') {
            rc = cm_buf_add(out, p, 1);
        } else if (*p == ' ') {
            rc = cm_buf_add(out, "+", 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            rc = cm_buf_add(out, e, 3);
        }
    }
    return rc;
}

cm_err_t gw_stripe_form_add(cm_buf_t *out, const char *k, const char *v)
{
    cm_err_t rc = out->len ? cm_buf_add(out, "&", 1) : CM_OK;
    if (!rc)
        rc = form_escape(out, k);
    if (!rc)
        rc = cm_buf_add(out, "=", 1);
    if (!rc)
        rc = form_escape(out, v);
    return rc;
}

static gw_stripe_out_t post(gw_stripe_ctx_t *c, const char *op, const char *path,
                            const char *idem_key, const cm_buf_t *form, json_t **ans, char *err)
{
    char url[512], auth[512], idem[320];
    cm_http_response_t r;
    gw_policy_outcome_t po;
    gw_prov_rt_t *p = gw_outbound_provider(c->ob, "stripe");
    gw_stripe_out_t out;
    *ans = NULL;
    if (!p) {
        cm_errf(err, "Stripe is not configured (providers.stripe)");
        return GW_STRIPE_FAIL;
    }
    snprintf(url, sizeof url, "%s%s", p->cfg->base_url, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->api_key);
    snprintf(idem, sizeof idem, "Idempotency-Key: %.255s", idem_key);
    const char *hdrs[] = {auth, idem, "Content-Type: application/x-www-form-urlencoded",
                          "Stripe-Version: " GW_STRIPE_API_VERSION, NULL};
    /* Safe to retry: the Idempotency-Key makes Stripe replay the first result. */
    gw_call_t call = {.operation = op,
                      .safe = 1,
                      .write = 1,
                      .rl_key = c->api_key,
                      .traceparent = c->traceparent,
                      .req = {.method = "POST",
                              .url = url,
                              .headers = hdrs,
                              .body = form->data,
                              .body_len = form->len}};
    gw_policy_status_t st = gw_outbound_call(c->ob, p, c->http, c->rng, &call, &r, &po);
    c->retry_in_ms = po.retry_in_ms;
    c->unavailable = st == GW_POL_BREAKER_OPEN || st == GW_POL_RATE_LIMITED;
    /* The body is read for error details; an unreadable one leaves *ans NULL. */
    if (r.body.len && cm_json_parse(r.body.data, r.body.len, r.body.toobig, ans, NULL) != CM_OK)
        *ans = NULL;
    /* A run that ended on an HTTP answer (e.g. 402 with Stripe-Should-Retry: false) is
     * judged by that answer; only runs without one are judged by how the run ended. */
    int answered = st == GW_POL_DONE || (st == GW_POL_FAILED && po.last.kind == GW_ATT_OK);
    if (!answered) {
        cm_errf(err, "Stripe %s after %d attempt(s)%s%s", gw_policy_status_name(st), po.attempts,
                r.err[0] ? ": " : "", r.err);
        out = po.transient ? GW_STRIPE_RETRY : GW_STRIPE_FAIL;
    } else if (r.status >= 200 && r.status < 300) {
        out = GW_STRIPE_OK;
    } else if (r.status == 402) {
        cm_errf(err, "%s",
                cm_json_str(*ans, "error.decline_code",
                            cm_json_str(*ans, "error.code", "card_declined")));
        out = GW_STRIPE_DECLINED;
    } else {
        cm_errf(err, "HTTP %ld: %.160s", r.status,
                cm_json_str(*ans, "error.message", r.body.data ? r.body.data : ""));
        /* 409 idempotency_key_in_use: the first try is still running, ask again later. */
        out = r.status == 409 || r.status == 429 || r.status >= 500 ? GW_STRIPE_RETRY
                                                                    : GW_STRIPE_FAIL;
    }
    cm_http_response_free(&r);
    return out;
}

gw_stripe_out_t gw_stripe_charge(gw_stripe_ctx_t *c, const char *idem_key, int64_t amount,
                                 const char *currency, const char *payment_method,
                                 const char *saga_id, char *pi, size_t cap, char *err)
{
    cm_buf_t f;
    char amt[32];
    json_t *ans = NULL;
    snprintf(amt, sizeof amt, "%lld", (long long)amount);
    cm_buf_init(&f, 4096);
    cm_err_t rc = gw_stripe_form_add(&f, "amount", amt);
    if (!rc)
        rc = gw_stripe_form_add(&f, "currency", currency);
    if (!rc)
        rc = gw_stripe_form_add(&f, "payment_method", payment_method);
    if (!rc)
        rc = gw_stripe_form_add(&f, "confirm", "true");
    if (!rc)
        rc = gw_stripe_form_add(&f, "payment_method_types[0]", "card");
    if (!rc)
        rc = gw_stripe_form_add(&f, "metadata[saga_id]", saga_id);
    if (rc) {
        cm_buf_free(&f);
        cm_errf(err, "cannot encode the charge");
        return GW_STRIPE_FAIL;
    }
    gw_stripe_out_t out = post(c, "charge", "/v1/payment_intents", idem_key, &f, &ans, err);
    if (out == GW_STRIPE_OK) {
        const char *id = cm_json_str(ans, "id", NULL);
        const char *status = cm_json_str(ans, "status", "");
        if (!id) {
            cm_errf(err, "payment intent answer without id");
            out = GW_STRIPE_FAIL;
        } else if (strcmp(status, "succeeded") && strcmp(status, "requires_capture") &&
                   strcmp(status, "processing")) {
            /* requires_payment_method after a confirm is a decline reported in the body. */
            snprintf(pi, cap, "%s", id);
            cm_errf(err, "payment intent %s is %s", id, status);
            out = GW_STRIPE_DECLINED;
        } else {
            snprintf(pi, cap, "%s", id);
        }
    }
    json_decref(ans);
    cm_buf_free(&f);
    return out;
}

gw_stripe_out_t gw_stripe_refund(gw_stripe_ctx_t *c, const char *idem_key, const char *pi,
                                 const char *reason, char *err)
{
    cm_buf_t f;
    json_t *ans = NULL;
    cm_buf_init(&f, 4096);
    cm_err_t rc = gw_stripe_form_add(&f, "payment_intent", pi);
    if (!rc)
        rc = gw_stripe_form_add(&f, "reason", "requested_by_customer");
    if (!rc)
        rc = gw_stripe_form_add(&f, "metadata[reason]", reason);
    if (rc) {
        cm_buf_free(&f);
        cm_errf(err, "cannot encode the refund");
        return GW_STRIPE_FAIL;
    }
    gw_stripe_out_t out = post(c, "refund", "/v1/refunds", idem_key, &f, &ans, err);
    /* Already refunded (a retry after a lost answer without the same key): done. */
    if (out == GW_STRIPE_FAIL && ans &&
        !strcmp(cm_json_str(ans, "error.code", ""), "charge_already_refunded"))
        out = GW_STRIPE_OK;
    json_decref(ans);
    cm_buf_free(&f);
    return out;
}
