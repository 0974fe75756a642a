/* test_ch_fault.c - fault JSON: every type's good and bad input, the messages with their
 * paths, defaults, and the list's JSON. No sockets. */
#include <criterion/criterion.h>
#include <string.h>

#include "ch_fault.h"
#include "cm_json.h"

/* Parses text as a request body; returns the list (or NULL) and leaves the message in err. */
static ch_faults_t *parse(const char *text, char *err)
{
    json_t *body = NULL;
    err[0] = '\0';
    cr_assert_eq(cm_json_parse(text, strlen(text), 1 << 20, &body, err), CM_OK, "%s: %s", text,
                 err);
    ch_faults_t *l = NULL;
    cm_err_t rc = ch_faults_parse(body, &l, err);
    json_decref(body);
    cr_assert_eq(rc == CM_OK, l != NULL);
    return l;
}

static void bad(const char *text, const char *expected)
{
    char err[CM_ERR_LEN];
    ch_faults_t *l = parse(text, err);
    cr_expect_null(l, "accepted %s", text);
    ch_faults_unref(&l);
    cr_expect_str_eq(err, expected, "for %s\n  got:      %s\n  expected: %s", text, err, expected);
}

static ch_faults_t *good(const char *text)
{
    char err[CM_ERR_LEN];
    ch_faults_t *l = parse(text, err);
    cr_assert_not_null(l, "refused %s: %s", text, err);
    return l;
}

Test(fault, body_shape)
{
    bad("[]", "the body must be a JSON object {\"faults\":[...]}");
    bad("{}", "faults: required (an array of faults, [] for none)");
    bad("{\"faults\":{}}", "faults: must be an array");
    bad("{\"faults\":[],\"extra\":1}", "extra: unknown field (expected faults)");
    bad("{\"faults\":[1]}", "faults[0]: must be an object");
    bad("{\"faults\":[{\"type\":\"latency\",\"ms\":1},\"x\"]}", "faults[1]: must be an object");
    char many[4096] = "{\"faults\":[";
    for (int i = 0; i < CH_FAULT_MAX + 1; i++)
        strcat(many, i ? ",{\"type\":\"blackhole\"}" : "{\"type\":\"blackhole\"}");
    strcat(many, "]}");
    bad(many, "faults: at most 32 faults");
    ch_faults_t *l = good("{\"faults\":[]}");
    cr_expect_eq(l->n, 0);
    ch_faults_unref(&l);
    cr_expect_null(l, "unref clears the pointer");
}

Test(fault, common_fields)
{
    bad("{\"faults\":[{}]}",
        "faults[0].type: required (one of latency, bandwidth, slice, reset, blackhole, timeout, "
        "down)");
    bad("{\"faults\":[{\"type\":\"lag\"}]}",
        "faults[0].type: must be one of latency, bandwidth, slice, reset, blackhole, timeout, "
        "down");
    bad("{\"faults\":[{\"type\":7}]}",
        "faults[0].type: must be one of latency, bandwidth, slice, reset, blackhole, timeout, "
        "down");
    bad("{\"faults\":[{\"type\":\"blackhole\",\"direction\":\"up\"}]}",
        "faults[0].direction: must be \"upstream\", \"downstream\" or \"both\"");
    bad("{\"faults\":[{\"type\":\"blackhole\",\"direction\":1}]}",
        "faults[0].direction: must be \"upstream\", \"downstream\" or \"both\"");
    bad("{\"faults\":[{\"type\":\"blackhole\",\"probability\":1.5}]}",
        "faults[0].probability: must be a number from 0 to 1");
    bad("{\"faults\":[{\"type\":\"blackhole\",\"probability\":-0.1}]}",
        "faults[0].probability: must be a number from 0 to 1");
    bad("{\"faults\":[{\"type\":\"blackhole\",\"probability\":\"0.5\"}]}",
        "faults[0].probability: must be a number from 0 to 1");
    bad("{\"faults\":[{\"type\":\"blackhole\",\"ms\":5}]}",
        "faults[0].ms: unknown field for blackhole (expected type, direction, probability)");
}

Test(fault, latency)
{
    bad("{\"faults\":[{\"type\":\"latency\"}]}", "faults[0].ms: required (a non-negative integer)");
    bad("{\"faults\":[{\"type\":\"latency\",\"ms\":-1}]}",
        "faults[0].ms: must be a non-negative integer");
    bad("{\"faults\":[{\"type\":\"blackhole\"},{\"type\":\"latency\",\"ms\":1.5}]}",
        "faults[1].ms: must be a non-negative integer");
    bad("{\"faults\":[{\"type\":\"latency\",\"ms\":\"100\"}]}",
        "faults[0].ms: must be a non-negative integer");
    bad("{\"faults\":[{\"type\":\"latency\",\"ms\":86400001}]}",
        "faults[0].ms: must be at most 86400000");
    bad("{\"faults\":[{\"type\":\"latency\",\"ms\":1,\"jitter_ms\":-5}]}",
        "faults[0].jitter_ms: must be a non-negative integer");
    bad("{\"faults\":[{\"type\":\"latency\",\"ms\":1,\"bytes\":5}]}",
        "faults[0].bytes: unknown field for latency (expected type, direction, probability, ms, "
        "jitter_ms)");
    ch_faults_t *l = good("{\"faults\":[{\"type\":\"latency\",\"ms\":100,\"jitter_ms\":20,"
                          "\"direction\":\"downstream\",\"probability\":0.25}]}");
    cr_assert_eq(l->n, 1);
    cr_expect_eq(l->items[0].type, CH_FAULT_LATENCY);
    cr_expect_eq(l->items[0].ms, 100);
    cr_expect_eq(l->items[0].jitter_ms, 20);
    cr_expect_eq(l->items[0].dirs, CH_DIR_DOWNSTREAM);
    cr_expect_float_eq(l->items[0].probability, 0.25, 1e-12);
    cr_expect_eq(l->has_down, 0);
    ch_faults_unref(&l);
}

Test(fault, bandwidth)
{
    bad("{\"faults\":[{\"type\":\"bandwidth\"}]}",
        "faults[0].bytes_per_s: required (a positive integer)");
    bad("{\"faults\":[{\"type\":\"bandwidth\",\"bytes_per_s\":0}]}",
        "faults[0].bytes_per_s: must be a positive integer");
    bad("{\"faults\":[{\"type\":\"bandwidth\",\"bytes_per_s\":true}]}",
        "faults[0].bytes_per_s: must be a positive integer");
    ch_faults_t *l = good("{\"faults\":[{\"type\":\"bandwidth\",\"bytes_per_s\":1000}]}");
    cr_expect_eq(l->items[0].bytes_per_s, 1000);
    cr_expect_eq(l->items[0].dirs, CH_DIR_BOTH, "direction defaults to both");
    cr_expect_float_eq(l->items[0].probability, 1.0, 1e-12, "probability defaults to 1");
    ch_faults_unref(&l);
}

Test(fault, slice)
{
    bad("{\"faults\":[{\"type\":\"slice\"}]}", "faults[0].bytes: required (a positive integer)");
    bad("{\"faults\":[{\"type\":\"slice\",\"bytes\":0}]}",
        "faults[0].bytes: must be a positive integer");
    bad("{\"faults\":[{\"type\":\"slice\",\"bytes\":10,\"delay_ms\":-1}]}",
        "faults[0].delay_ms: must be a non-negative integer");
    ch_faults_t *l = good("{\"faults\":[{\"type\":\"slice\",\"bytes\":10}]}");
    cr_expect_eq(l->items[0].bytes, 10);
    cr_expect_eq(l->items[0].delay_ms, 0, "delay_ms defaults to 0");
    ch_faults_unref(&l);
}

Test(fault, reset)
{
    bad("{\"faults\":[{\"type\":\"reset\",\"after_bytes\":-1}]}",
        "faults[0].after_bytes: must be a non-negative integer");
    bad("{\"faults\":[{\"type\":\"reset\",\"after_bytes\":null}]}",
        "faults[0].after_bytes: must be a non-negative integer");
    bad("{\"faults\":[{\"type\":\"reset\",\"after_bytes\":1099511627777}]}",
        "faults[0].after_bytes: must be at most 1099511627776");
    ch_faults_t *l = good("{\"faults\":[{\"type\":\"reset\",\"direction\":\"upstream\"}]}");
    cr_expect_eq(l->items[0].after_bytes, 0, "after_bytes defaults to 0");
    cr_expect_eq(l->items[0].dirs, CH_DIR_UPSTREAM);
    ch_faults_unref(&l);
}

Test(fault, blackhole_timeout)
{
    bad("{\"faults\":[{\"type\":\"timeout\",\"ms\":-3}]}",
        "faults[0].ms: must be a non-negative integer");
    bad("{\"faults\":[{\"type\":\"timeout\",\"jitter_ms\":3}]}",
        "faults[0].jitter_ms: unknown field for timeout (expected type, direction, probability, "
        "ms)");
    ch_faults_t *l = good("{\"faults\":[{\"type\":\"timeout\"},{\"type\":\"blackhole\","
                          "\"direction\":\"upstream\",\"probability\":0}]}");
    cr_expect_eq(l->items[0].ms, 0, "timeout ms defaults to 0 (hold)");
    cr_expect_eq(l->items[1].type, CH_FAULT_BLACKHOLE);
    cr_expect_float_eq(l->items[1].probability, 0.0, 1e-12);
    ch_faults_unref(&l);
}

Test(fault, down)
{
    bad("{\"faults\":[{\"type\":\"down\",\"probability\":1}]}",
        "faults[0].probability: not allowed for down (a link is down for every connection)");
    bad("{\"faults\":[{\"type\":\"down\",\"ms\":1}]}",
        "faults[0].ms: unknown field for down (expected type, direction)");
    ch_faults_t *l = good("{\"faults\":[{\"type\":\"latency\",\"ms\":5},"
                          "{\"type\":\"down\",\"direction\":\"upstream\"}]}");
    cr_expect_eq(l->has_down, 1);
    cr_expect_eq(l->items[1].dirs, CH_DIR_BOTH, "direction means nothing for down");
    ch_faults_unref(&l);
}

Test(fault, json_round_trip)
{
    ch_faults_t *l = good("{\"faults\":[{\"type\":\"latency\",\"ms\":100},"
                          "{\"type\":\"slice\",\"bytes\":8,\"delay_ms\":3,\"direction\":"
                          "\"upstream\"},{\"type\":\"down\"}]}");
    json_t *a = ch_faults_json(l);
    char *text = json_dumps(a, JSON_COMPACT | JSON_SORT_KEYS);
    cr_expect_str_eq(text,
                     "[{\"direction\":\"both\",\"jitter_ms\":0,\"ms\":100,\"probability\":1.0,"
                     "\"type\":\"latency\"},{\"bytes\":8,\"delay_ms\":3,\"direction\":"
                     "\"upstream\",\"probability\":1.0,\"type\":\"slice\"},{\"type\":\"down\"}]");
    /* What GET shows parses back to the same list. */
    json_t *body = json_pack("{s:O}", "faults", a);
    ch_faults_t *again = NULL;
    char err[CM_ERR_LEN] = "";
    cr_assert_eq(ch_faults_parse(body, &again, err), CM_OK, "%s", err);
    cr_expect_eq(again->n, 3);
    cr_expect_eq(memcmp(again->items, l->items, sizeof l->items[0] * 3), 0);
    free(text);
    json_decref(a);
    json_decref(body);
    ch_faults_unref(&again);
    ch_faults_unref(&l);
}

Test(fault, refcount)
{
    ch_faults_t *l = ch_faults_empty();
    ch_faults_t *r = ch_faults_ref(l);
    cr_assert_eq(l, r);
    ch_faults_unref(&l);
    cr_expect_null(l);
    cr_expect_eq(r->n, 0, "still alive with one reference left");
    ch_faults_unref(&r);
    ch_faults_unref(&r); /* NULL is fine */
    cr_expect_str_eq(ch_fault_type_name(CH_FAULT_TIMEOUT), "timeout");
    cr_expect_str_eq(ch_dir_name(CH_DIR_DOWNSTREAM), "downstream");
}
