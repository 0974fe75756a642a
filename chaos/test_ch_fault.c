/* test_ch_fault.c - fault JSON: every effect's good and bad input in the current form, the
 * messages with their paths, defaults, the deprecated {"type":...} form and its notes, and
 * the list's JSON (which must parse back to the same list). No sockets. */
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

/* The one fault of {"faults":[fault]}, which must parse in the current form. */
static ch_fault_t one(const char *fault)
{
    char text[512];
    snprintf(text, sizeof text, "{\"faults\":[%s]}", fault);
    ch_faults_t *l = good(text);
    cr_assert_eq(l->n, 1);
    cr_expect_eq(l->deprecated, 0, "%s is not the deprecated form", fault);
    ch_fault_t f = l->items[0];
    ch_faults_unref(&l);
    return f;
}

/* The list's JSON (GET's) as sorted compact text, and that it parses back to the same. */
static void shows_as(const char *text, const char *expected)
{
    ch_faults_t *l = good(text);
    json_t *a = ch_faults_json(l);
    char *shown = json_dumps(a, JSON_COMPACT | JSON_SORT_KEYS);
    cr_expect_str_eq(shown, expected, "for %s", text);
    json_t *body = json_pack("{s:O}", "faults", a);
    ch_faults_t *again = NULL;
    char err[CM_ERR_LEN] = "";
    cr_assert_eq(ch_faults_parse(body, &again, err), CM_OK, "%s: %s", shown, err);
    cr_expect_eq(again->n, l->n);
    cr_expect_eq(again->has_down, l->has_down);
    cr_expect_eq(again->deprecated, 0, "GET shows the current form");
    cr_expect_eq(memcmp(again->items, l->items, sizeof l->items[0] * l->n), 0,
                 "%s does not parse back to the list of %s", shown, text);
    free(shown);
    json_decref(a);
    json_decref(body);
    ch_faults_unref(&again);
    ch_faults_unref(&l);
}

/* Every refusal: a fault list and the message that names its path and field. */
static const char *const refusals[][2] = {
    /* the body */
    {"[]", "the body must be a JSON object {\"faults\":[...]}"},
    {"{}", "faults: required (an array of faults, [] for none)"},
    {"{\"faults\":{}}", "faults: must be an array"},
    {"{\"faults\":[],\"extra\":1}", "extra: unknown field (expected faults)"},
    {"{\"faults\":[1]}", "faults[0]: must be an object"},
    {"{\"faults\":[{\"latency\":\"1ms\"},\"x\"]}", "faults[1]: must be an object"},
    /* one effect per fault */
    {"{\"faults\":[{}]}",
     "faults[0]: a fault needs one of latency, bandwidth, slice, socket, down"},
    {"{\"faults\":[{\"direction\":\"both\"}]}",
     "faults[0]: a fault needs one of latency, bandwidth, slice, socket, down"},
    {"{\"faults\":[{\"latency\":\"1ms\"},{\"latency\":\"5ms\",\"socket\":\"reset\"}]}",
     "faults[1].socket: one effect per fault, and this one has latency already (write them "
     "as two faults)"},
    {"{\"faults\":[{\"down\":true,\"slice\":8}]}",
     "faults[0].down: one effect per fault, and this one has slice already (write them as two "
     "faults)"},
    /* direction, probability, unknown fields (a simulator rule's word, and the deprecated
     * form's, are named as such) */
    {"{\"faults\":[{\"socket\":\"hang\",\"direction\":\"up\"}]}",
     "faults[0].direction: must be \"upstream\", \"downstream\" or \"both\""},
    {"{\"faults\":[{\"socket\":\"hang\",\"direction\":1}]}",
     "faults[0].direction: must be \"upstream\", \"downstream\" or \"both\""},
    {"{\"faults\":[{\"socket\":\"hang\",\"probability\":1.5}]}",
     "faults[0].probability: must be a number from 0 to 1"},
    {"{\"faults\":[{\"socket\":\"hang\",\"probability\":-0.1}]}",
     "faults[0].probability: must be a number from 0 to 1"},
    {"{\"faults\":[{\"socket\":\"hang\",\"probability\":\"0.5\"}]}",
     "faults[0].probability: must be a number from 0 to 1"},
    {"{\"faults\":[{\"latency\":\"5ms\",\"interval\":\"1ms\"}]}",
     "faults[0].interval: unknown field for latency (expected latency, jitter, direction, "
     "probability)"},
    {"{\"faults\":[{\"latency\":\"5ms\",\"status\":503}]}",
     "faults[0].status: unknown field for latency (a simulator rule's field: a link moves "
     "bytes, it does not parse HTTP) (expected latency, jitter, direction, probability)"},
    {"{\"faults\":[{\"latency\":\"5ms\",\"jitter_ms\":3}]}",
     "faults[0].jitter_ms: unknown field for latency (a field of the deprecated "
     "{\"type\":...} form) (expected latency, jitter, direction, probability)"},
    {"{\"faults\":[{\"type\":\"latency\",\"latency\":\"5ms\"}]}",
     "faults[0].type: not with latency (\"type\" is the deprecated form; leave it out)"},
    /* latency: durations in the one grammar; the proxy draws uniformly */
    {"{\"faults\":[{\"latency\":300}]}",
     "faults[0].latency: must be a duration string such as \"250ms\" or \"1.5s\" (bare "
     "numbers of milliseconds are the deprecated form's)"},
    {"{\"faults\":[{\"latency\":true}]}",
     "faults[0].latency: must be a duration such as \"250ms\", \"1.5s\" or \"2m\""},
    {"{\"faults\":[{\"latency\":\"5x\"}]}",
     "faults[0].latency: \"5x\" is not a duration: the unit must be ms, s, m or h (write e.g. "
     "\"250ms\", \"1.5s\", \"2m\", \"1h\")"},
    {"{\"faults\":[{\"latency\":\"0.5ms\"}]}",
     "faults[0].latency: \"0.5ms\" is not a whole number of milliseconds"},
    {"{\"faults\":[{\"latency\":\"25h\"}]}", "faults[0].latency: \"25h\" is longer than 24h"},
    {"{\"faults\":[{\"latency\":\"1s\",\"jitter\":\"-1ms\"}]}",
     "faults[0].jitter: \"-1ms\" is not a duration (write e.g. \"250ms\", \"1.5s\", \"2m\", "
     "\"1h\")"},
    {"{\"faults\":[{\"latency\":{\"lognormal\":{\"median\":\"200ms\",\"sigma\":0.5}}}]}",
     "faults[0].latency.lognormal: the proxy draws delays uniformly, it cannot do a lognormal "
     "one (a simulator rule can); write \"jitter\" or {\"uniform\": [min, max]}"},
    {"{\"faults\":[{\"latency\":{}}]}",
     "faults[0].latency: must have exactly one of fixed, uniform"},
    {"{\"faults\":[{\"latency\":{\"fixed\":\"1ms\",\"uniform\":[\"1ms\",\"2ms\"]}}]}",
     "faults[0].latency: must have exactly one of fixed, uniform"},
    {"{\"faults\":[{\"latency\":{\"fixed\":5}}]}",
     "faults[0].latency.fixed: must be a duration string such as \"250ms\" or \"1.5s\" (bare "
     "numbers of milliseconds are the deprecated form's)"},
    {"{\"faults\":[{\"latency\":{\"uniform\":[\"1ms\"]}}]}",
     "faults[0].latency.uniform: must be [min, max], two durations"},
    {"{\"faults\":[{\"latency\":{\"uniform\":[\"1ms\",\"2\"]}}]}",
     "faults[0].latency.uniform[1]: \"2\" is not a duration: the unit must be ms, s, m or h "
     "(write e.g. \"250ms\", \"1.5s\", \"2m\", \"1h\")"},
    {"{\"faults\":[{\"latency\":{\"uniform\":[\"3ms\",\"2ms\"]}}]}",
     "faults[0].latency.uniform: min must not be above max"},
    {"{\"faults\":[{\"latency\":{\"uniform\":[\"1ms\",\"2ms\"]},\"jitter\":\"1ms\"}]}",
     "faults[0].jitter: not with latency.uniform (its range says how much the delay varies)"},
    /* bandwidth */
    {"{\"faults\":[{\"bandwidth\":0}]}",
     "faults[0].bandwidth: must be a positive integer of bytes per second"},
    {"{\"faults\":[{\"bandwidth\":\"1000\"}]}",
     "faults[0].bandwidth: must be a positive integer of bytes per second"},
    {"{\"faults\":[{\"bandwidth\":1099511627777}]}",
     "faults[0].bandwidth: must be at most 1099511627776"},
    {"{\"faults\":[{\"bandwidth\":10,\"interval\":\"1s\"}]}",
     "faults[0].interval: unknown field for bandwidth (expected bandwidth, direction, "
     "probability)"},
    /* slice */
    {"{\"faults\":[{\"slice\":0}]}",
     "faults[0].slice: must be a positive integer of bytes per piece"},
    {"{\"faults\":[{\"slice\":8,\"interval\":5}]}",
     "faults[0].interval: must be a duration string such as \"250ms\" or \"1.5s\" (bare "
     "numbers of milliseconds are the deprecated form's)"},
    {"{\"faults\":[{\"slice\":8,\"chunk_bytes\":5}]}",
     "faults[0].chunk_bytes: unknown field for slice (a simulator rule's field: a link moves "
     "bytes, it does not parse HTTP) (expected slice, interval, direction, probability)"},
    /* socket reset */
    {"{\"faults\":[{\"socket\":\"reset\",\"after_bytes\":-1}]}",
     "faults[0].after_bytes: must be a non-negative integer"},
    {"{\"faults\":[{\"socket\":\"reset\",\"after_bytes\":null}]}",
     "faults[0].after_bytes: must be a non-negative integer"},
    {"{\"faults\":[{\"socket\":\"reset\",\"after_bytes\":1099511627777}]}",
     "faults[0].after_bytes: must be at most 1099511627776"},
    {"{\"faults\":[{\"socket\":\"reset\",\"hang_max\":\"1s\"}]}",
     "faults[0].hang_max: unknown field for socket reset (expected socket, after_bytes, "
     "direction, probability)"},
    /* socket hang */
    {"{\"faults\":[{\"socket\":\"hang\",\"hang_max\":\"0s\"}]}",
     "faults[0].hang_max: must be longer than 0 (leave it out to hang until a peer gives up)"},
    {"{\"faults\":[{\"socket\":\"hang\",\"hang_max\":2000}]}",
     "faults[0].hang_max: must be a duration string such as \"250ms\" or \"1.5s\" (bare "
     "numbers of milliseconds are the deprecated form's)"},
    {"{\"faults\":[{\"socket\":\"hang\",\"after_bytes\":3}]}",
     "faults[0].after_bytes: unknown field for socket hang (expected socket, hang_max, "
     "direction, probability)"},
    /* socket faults only a simulator rule can make (they need HTTP) */
    {"{\"faults\":[{\"socket\":\"truncate\"}]}",
     "faults[0].socket: 'truncate' is a simulator rule's (it shapes an HTTP answer, which a "
     "link does not parse); a link can reset, hang or be down"},
    {"{\"faults\":[{\"socket\":\"close\"}]}",
     "faults[0].socket: 'close' is a simulator rule's (it shapes an HTTP answer, which a link "
     "does not parse); a link can reset, hang or be down"},
    {"{\"faults\":[{\"socket\":\"slow_body\"}]}",
     "faults[0].socket: 'slow_body' is a simulator rule's (it dribbles an HTTP answer's "
     "body); on a link write {\"slice\": BYTES, \"interval\": DURATION}"},
    {"{\"faults\":[{\"socket\":\"rst\"}]}",
     "faults[0].socket: unknown socket fault 'rst' (expected reset, hang or down)"},
    {"{\"faults\":[{\"socket\":1}]}",
     "faults[0].socket: unknown socket fault '(not a string)' (expected reset, hang or down)"},
    /* down */
    {"{\"faults\":[{\"down\":false}]}",
     "faults[0].down: must be true (leave the fault out for a link that is up)"},
    {"{\"faults\":[{\"down\":\"yes\"}]}",
     "faults[0].down: must be true (leave the fault out for a link that is up)"},
    {"{\"faults\":[{\"down\":true,\"probability\":1}]}",
     "faults[0].probability: not allowed for down (a link is down for every connection)"},
    {"{\"faults\":[{\"socket\":\"down\",\"direction\":\"upstream\"}]}",
     "faults[0].direction: not allowed for down (a link that is down refuses connections "
     "both ways)"},
    {"{\"faults\":[{\"down\":true,\"hang_max\":\"1s\"}]}",
     "faults[0].hang_max: unknown field for down (expected down)"},
    /* the deprecated form refuses what it always refused */
    {"{\"faults\":[{\"type\":\"lag\"}]}",
     "faults[0].type: must be one of latency, bandwidth, slice, reset, blackhole, timeout, down "
     "(\"type\" is the deprecated form; now write e.g. {\"latency\": \"100ms\"})"},
    {"{\"faults\":[{\"type\":\"latency\"}]}", "faults[0].ms: required (a non-negative integer)"},
    {"{\"faults\":[{\"type\":\"latency\",\"ms\":\"100ms\"}]}",
     "faults[0].ms: must be a non-negative integer"},
    {"{\"faults\":[{\"type\":\"latency\",\"ms\":86400001}]}",
     "faults[0].ms: must be at most 86400000"},
    {"{\"faults\":[{\"type\":\"latency\",\"ms\":1,\"jitter\":\"5ms\"}]}",
     "faults[0].jitter: unknown field for latency (expected type, direction, probability, ms, "
     "jitter_ms)"},
    {"{\"faults\":[{\"type\":\"blackhole\",\"ms\":5}]}",
     "faults[0].ms: unknown field for blackhole (expected type, direction, probability)"},
    {"{\"faults\":[{\"type\":\"slice\",\"bytes\":10,\"delay_ms\":-1}]}",
     "faults[0].delay_ms: must be a non-negative integer"},
    {"{\"faults\":[{\"type\":\"down\",\"probability\":1}]}",
     "faults[0].probability: not allowed for down (a link is down for every connection)"},
    {"{\"faults\":[{\"type\":\"down\",\"ms\":1}]}",
     "faults[0].ms: unknown field for down (expected type, direction)"},
};

Test(fault, refusals)
{
    for (size_t i = 0; i < sizeof refusals / sizeof refusals[0]; i++)
        bad(refusals[i][0], refusals[i][1]);
}

Test(fault, body_shape)
{
    char many[4096] = "{\"faults\":[";
    for (int i = 0; i < CH_FAULT_MAX + 1; i++)
        strcat(many, i ? ",{\"socket\":\"hang\"}" : "{\"socket\":\"hang\"}");
    strcat(many, "]}");
    bad(many, "faults: at most 32 faults");
    ch_faults_t *l = good("{\"faults\":[]}");
    cr_expect_eq(l->n, 0);
    ch_faults_unref(&l);
    cr_expect_null(l, "unref clears the pointer");
}

Test(fault, direction_and_probability)
{
    ch_fault_t f = one("{\"socket\":\"hang\"}");
    cr_expect_eq(f.dirs, CH_DIR_BOTH, "direction defaults to both");
    cr_expect_float_eq(f.probability, 1.0, 1e-12, "probability defaults to 1");
    f = one("{\"socket\":\"hang\",\"direction\":\"upstream\",\"probability\":0}");
    cr_expect_eq(f.dirs, CH_DIR_UPSTREAM);
    cr_expect_float_eq(f.probability, 0.0, 1e-12);
}

Test(fault, latency)
{
    ch_fault_t f = one("{\"latency\":\"300ms\"}");
    cr_expect_eq(f.type, CH_FAULT_LATENCY);
    cr_expect_eq(f.min_ms, 300);
    cr_expect_eq(f.max_ms, 300);
    f = one("{\"latency\":\"300ms\",\"jitter\":\"100ms\",\"direction\":\"downstream\","
            "\"probability\":0.25}");
    cr_expect_eq(f.min_ms, 200, "latency +- jitter");
    cr_expect_eq(f.max_ms, 400);
    cr_expect_eq(f.dirs, CH_DIR_DOWNSTREAM);
    cr_expect_float_eq(f.probability, 0.25, 1e-12);
    f = one("{\"latency\":{\"fixed\":\"1.5s\"},\"jitter\":\"0ms\"}");
    cr_expect_eq(f.min_ms, 1500);
    cr_expect_eq(f.max_ms, 1500);
    f = one("{\"latency\":{\"uniform\":[\"200ms\",\"400ms\"]}}");
    cr_expect_eq(f.min_ms, 200, "the same range as 300ms +- 100ms");
    cr_expect_eq(f.max_ms, 400);
    f = one("{\"latency\":\"10ms\",\"jitter\":\"50ms\"}");
    cr_expect_eq(f.min_ms, -40, "wider jitter than latency: the draw is clamped at 0");
    f = one("{\"latency\":\"0ms\"}");
    cr_expect_eq(f.max_ms, 0);
}

Test(fault, bandwidth)
{
    ch_fault_t f = one("{\"bandwidth\":1000,\"direction\":\"downstream\"}");
    cr_expect_eq(f.type, CH_FAULT_BANDWIDTH);
    cr_expect_eq(f.bytes_per_s, 1000);
}

Test(fault, slice)
{
    ch_fault_t f = one("{\"slice\":64,\"interval\":\"1ms\"}");
    cr_expect_eq(f.type, CH_FAULT_SLICE);
    cr_expect_eq(f.slice_bytes, 64);
    cr_expect_eq(f.interval_ms, 1);
    f = one("{\"slice\":10}");
    cr_expect_eq(f.interval_ms, 0, "interval defaults to 0");
}

Test(fault, socket_reset)
{
    ch_fault_t f = one("{\"socket\":\"reset\",\"direction\":\"upstream\"}");
    cr_expect_eq(f.type, CH_FAULT_RESET);
    cr_expect_eq(f.after_bytes, 0, "after_bytes defaults to 0");
    cr_expect_eq(f.dirs, CH_DIR_UPSTREAM);
    f = one("{\"socket\":\"reset\",\"after_bytes\":1000}");
    cr_expect_eq(f.after_bytes, 1000);
}

Test(fault, socket_hang)
{
    ch_fault_t f = one("{\"socket\":\"hang\"}");
    cr_expect_eq(f.type, CH_FAULT_HANG);
    cr_expect_eq(f.hang_max_ms, 0, "without hang_max: until a peer gives up");
    f = one("{\"socket\":\"hang\",\"hang_max\":\"2s\",\"direction\":\"downstream\"}");
    cr_expect_eq(f.hang_max_ms, 2000);
}

Test(fault, down)
{
    ch_faults_t *l = good("{\"faults\":[{\"latency\":\"5ms\"},{\"down\":true}]}");
    cr_expect_eq(l->has_down, 1);
    cr_expect_eq(l->items[1].type, CH_FAULT_DOWN);
    cr_expect_eq(l->items[1].dirs, CH_DIR_BOTH);
    ch_faults_unref(&l);
    ch_fault_t f = one("{\"socket\":\"down\"}");
    cr_expect_eq(f.type, CH_FAULT_DOWN, "socket down is down");
}

Test(fault, json_round_trip)
{
    shows_as("{\"faults\":[{\"latency\":\"100ms\"},"
             "{\"slice\":8,\"interval\":\"3ms\",\"direction\":\"upstream\"},{\"down\":true}]}",
             "[{\"direction\":\"both\",\"jitter\":\"0ms\",\"latency\":\"100ms\",\"probability\":"
             "1.0},{\"direction\":\"upstream\",\"interval\":\"3ms\",\"probability\":1.0,"
             "\"slice\":8},{\"down\":true}]");
    /* A range with a whole-millisecond centre shows as latency and jitter, any other as
     * itself; a jitter wider than the latency stays as written. */
    shows_as("{\"faults\":[{\"latency\":{\"uniform\":[\"200ms\",\"400ms\"]}},"
             "{\"latency\":{\"uniform\":[\"100ms\",\"301ms\"]},\"probability\":0.5},"
             "{\"latency\":\"10ms\",\"jitter\":\"1m\",\"direction\":\"downstream\"}]}",
             "[{\"direction\":\"both\",\"jitter\":\"100ms\",\"latency\":\"300ms\",\"probability\":"
             "1.0},{\"direction\":\"both\",\"latency\":{\"uniform\":[\"100ms\",\"301ms\"]},"
             "\"probability\":0.5},{\"direction\":\"downstream\",\"jitter\":\"1m\",\"latency\":"
             "\"10ms\",\"probability\":1.0}]");
    shows_as("{\"faults\":[{\"bandwidth\":500},{\"socket\":\"reset\"},{\"socket\":\"hang\"},"
             "{\"socket\":\"hang\",\"hang_max\":\"1.5s\",\"probability\":0.25},"
             "{\"socket\":\"down\"}]}",
             "[{\"bandwidth\":500,\"direction\":\"both\",\"probability\":1.0},{\"after_bytes\":0,"
             "\"direction\":\"both\",\"probability\":1.0,\"socket\":\"reset\"},{\"direction\":"
             "\"both\",\"probability\":1.0,\"socket\":\"hang\"},{\"direction\":\"both\","
             "\"hang_max\":\"1500ms\",\"probability\":0.25,\"socket\":\"hang\"},{\"down\":true}]");
}

/* Each fault of the old form next to the current one it must equal. */
static const char *const old_and_new[][2] = {
    {"{\"type\":\"latency\",\"ms\":300,\"jitter_ms\":100}",
     "{\"latency\":\"300ms\",\"jitter\":\"100ms\"}"},
    {"{\"type\":\"latency\",\"ms\":1500,\"direction\":\"downstream\"}",
     "{\"latency\":\"1.5s\",\"direction\":\"downstream\"}"},
    {"{\"type\":\"bandwidth\",\"bytes_per_s\":2000,\"probability\":0.5}",
     "{\"bandwidth\":2000,\"probability\":0.5}"},
    {"{\"type\":\"slice\",\"bytes\":64,\"delay_ms\":1}", "{\"slice\":64,\"interval\":\"1ms\"}"},
    {"{\"type\":\"reset\",\"after_bytes\":7,\"direction\":\"upstream\"}",
     "{\"socket\":\"reset\",\"after_bytes\":7,\"direction\":\"upstream\"}"},
    {"{\"type\":\"blackhole\",\"direction\":\"downstream\"}",
     "{\"socket\":\"hang\",\"direction\":\"downstream\"}"},
    {"{\"type\":\"timeout\"}", "{\"socket\":\"hang\"}"},
    {"{\"type\":\"timeout\",\"ms\":2000}", "{\"socket\":\"hang\",\"hang_max\":\"2s\"}"},
    {"{\"type\":\"down\",\"direction\":\"upstream\"}", "{\"down\":true}"},
};

Test(fault, deprecated_form_still_parses_with_its_notes)
{
    size_t n = sizeof old_and_new / sizeof old_and_new[0];
    char text[2048] = "{\"faults\":[";
    for (size_t i = 0; i < n; i++) {
        strcat(text, i ? "," : "");
        strcat(text, old_and_new[i][0]);
    }
    strcat(text, ",{\"latency\":\"1ms\"}]}");
    ch_faults_t *l = good(text);
    cr_assert_eq(l->n, n + 1);
    cr_expect_eq(l->deprecated, (1u << n) - 1, "every fault but the last is deprecated");
    for (size_t i = 0; i < n; i++) {
        ch_fault_t now = one(old_and_new[i][1]);
        cr_expect_eq(memcmp(&l->items[i], &now, sizeof now), 0, "%s is not %s", old_and_new[i][0],
                     old_and_new[i][1]);
    }
    /* One note per deprecated fault, with the current way to write it. */
    json_t *notes = ch_faults_deprecation_notes(l);
    cr_assert_eq(json_array_size(notes), n);
    cr_expect_str_eq(json_string_value(json_array_get(notes, 0)),
                     "faults[0]: the {\"type\":...} form with integer milliseconds is deprecated "
                     "and goes in the next release; write {\"latency\":\"300ms\",\"jitter\":"
                     "\"100ms\"}");
    cr_expect_str_eq(json_string_value(json_array_get(notes, 7)),
                     "faults[7]: the {\"type\":...} form with integer milliseconds is deprecated "
                     "and goes in the next release; write {\"socket\":\"hang\",\"hang_max\":"
                     "\"2s\"}");
    json_decref(notes);
    ch_faults_unref(&l);
    l = good("{\"faults\":[{\"latency\":\"1ms\"}]}");
    cr_expect_null(ch_faults_deprecation_notes(l), "no notes for the current form");
    ch_faults_unref(&l);
}

Test(fault, refcount_and_names)
{
    ch_faults_t *l = ch_faults_empty();
    ch_faults_t *r = ch_faults_ref(l);
    cr_assert_eq(l, r);
    ch_faults_unref(&l);
    cr_expect_null(l);
    cr_expect_eq(r->n, 0, "still alive with one reference left");
    ch_faults_unref(&r);
    ch_faults_unref(&r); /* NULL is fine */
    cr_expect_str_eq(ch_fault_type_name(CH_FAULT_HANG), "hang");
    cr_expect_str_eq(ch_fault_type_name(CH_FAULT__COUNT), "?");
    cr_expect_str_eq(ch_dir_name(CH_DIR_DOWNSTREAM), "downstream");
}
