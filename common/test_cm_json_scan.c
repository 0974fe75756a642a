/* test_cm_json_scan.c - cm_json_scan must agree with cm_json_parse (jansson) on every
 * document: the same accept/refuse answer, and the same wanted strings. Hand-picked edge
 * cases first, then seeded random documents and mutations of a real Retell webhook. */
#include <criterion/criterion.h>
#include <string.h>

#include "cm_buf.h"
#include "cm_json.h"
#include "cm_json_scan.h"
#include "cm_rand.h"

static const char *const paths[] = {"event", "call.call_id", "call.agent_id", "a", "a.b", "x.y.z"};
enum { NPATHS = sizeof paths / sizeof paths[0] };

static int n_agree, n_general;

/* Scans and parses len bytes and asserts agreement; returns the scan's answer. */
static cm_err_t agree(const char *text, size_t len)
{
    cm_json_want_t want[NPATHS];
    for (int i = 0; i < NPATHS; i++)
        want[i].path = paths[i];
    cm_err_t rc = cm_json_scan(text, len, 1 << 20, want, NPATHS);
    json_t *v = NULL;
    cm_err_t jrc = cm_json_parse(text, len, 1 << 20, &v, NULL);
    if (rc == CM_EAGAIN) {
        n_general++;
        json_decref(v);
        return rc;
    }
    cr_assert(rc == CM_OK || rc == CM_EINVAL, "scan answered %d", rc);
    cr_assert_eq(rc == CM_OK, jrc == CM_OK, "scan says %s, jansson says %s for [%.*s]",
                 rc ? "invalid" : "valid", jrc ? "invalid" : "valid", (int)len, text);
    for (int i = 0; v && i < NPATHS; i++) {
        const char *js = cm_json_str(v, paths[i], NULL);
        if (!js) {
            cr_assert_null(want[i].val, "%s found by the scan only in [%.*s]", paths[i], (int)len,
                           text);
            continue;
        }
        cr_assert_not_null(want[i].val, "%s missed by the scan in [%.*s]", paths[i], (int)len,
                           text);
        cr_assert(strlen(js) == want[i].len && !memcmp(js, want[i].val, want[i].len),
                  "%s differs in [%.*s]", paths[i], (int)len, text);
    }
    json_decref(v);
    n_agree++;
    return rc;
}

static cm_err_t agree_str(const char *text)
{
    return agree(text, strlen(text));
}

Test(json_scan, edge_cases_agree_with_jansson)
{
    static const char *const docs[] = {
        "{}",
        "[]",
        " {} ",
        "\t[\n]\r",
        "",
        " ",
        "1",
        "\"s\"",
        "null",
        "true",
        "{}x",
        "{} {}",
        "[1,]",
        "[,1]",
        "{\"a\":1,}",
        "{,}",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\" 1}",
        "{1:2}",
        "[01]",
        "[-0]",
        "[-]",
        "[1.]",
        "[.5]",
        "[1e]",
        "[1e+]",
        "[1E-2]",
        "[-1.5e+10]",
        "[+1]",
        "[9223372036854775807]",
        "[9223372036854775808]",
        "[-9223372036854775808]",
        "[-9223372036854775809]",
        "[12345678901234567890123]",
        "[1e308]",
        "[1e309]",
        "[-1e309]",
        "[1e-400]",
        "[123456789012345678901234567890.5]",
        "[0.0000000001e-5]",
        "[true]",
        "[tru]",
        "[truex]",
        "[nul]",
        "[null,false,true]",
        "[True]",
        "{\"a\":1,\"a\":2}",
        "{\"a\":{\"b\":1,\"b\":1}}",
        "{\"a\":1,\"b\":{\"a\":2}}",
        "{\"a\":\"x\",\"A\":\"y\"}",
        "[\"\\u0000\"]",
        "[\"\\ud834\\udd1e\"]",
        "[\"\\ud834\"]",
        "[\"\\udd1e\"]",
        "[\"\\ud834x\"]",
        "[\"\\ud834\\u0041\"]",
        "[\"\\u12\"]",
        "[\"\\uZZZZ\"]",
        "[\"\\x\"]",
        "[\"\\/\\b\\f\\n\\r\\t\\\"\\\\\"]",
        "[\"a\tb\"]",
        "[\"\xc3\xa9\"]",
        "[\"\xc0\x80\"]",
        "[\"\xc1\xbf\"]",
        "[\"\xe0\x80\x80\"]",
        "[\"\xed\xa0\x80\"]",
        "[\"\xf4\x90\x80\x80\"]",
        "[\"\xf5\x80\x80\x80\"]",
        "[\"\xf0\x9f\x98\x80\"]",
        "[\"\xe2\x82\"]",
        "[\"\x80\"]",
        "[\"abc",
        "{\"a\":\"b",
        "{\"event\":\"call_started\",\"call\":{\"call_id\":\"c1\",\"agent_id\":\"ag\"}}",
        "{\"event\":5,\"call\":\"c\"}",
        "{\"call\":{\"call_id\":[\"c1\"]}}",
        "{\"a\":{\"b\":\"deep\"},\"x\":{\"y\":{\"z\":\"zz\"}}}",
        "[{\"a\":\"in array\"}]",
        "{\"a\":[{\"b\":\"x\"}]}",
        "{\"a\":\"\"}",
        "{\"\":\"empty key\"}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++)
        (void)agree_str(docs[i]);
    /* Bytes a C string cannot hold. */
    (void)agree("[\"a\0b\"]", 7);
    (void)agree("{}\0", 3);
    (void)agree("[1\0]", 4);
    cr_assert_gt(n_agree, 80);
}

Test(json_scan, needs_the_general_path_only_where_it_must)
{
    cm_json_want_t w[1] = {{.path = "a"}};
    /* An escape in a wanted value, an escaped key, a very deep document. */
    cr_assert_eq(cm_json_scan("{\"a\":\"x\\ny\"}", 12, 100, w, 1), CM_EAGAIN);
    cr_assert_eq(cm_json_scan("{\"\\u0061\":1}", 12, 100, w, 1), CM_EAGAIN);
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    cr_assert_eq(cm_json_scan(deep, 200, 1000, w, 1), CM_EAGAIN);
    /* An escape elsewhere is fine, and the wanted plain value comes out. */
    const char *ok = "{\"b\":\"x\\ny\",\"a\":\"plain\"}";
    cr_assert_eq(cm_json_scan(ok, strlen(ok), 100, w, 1), CM_OK);
    cr_assert_eq(w[0].len, 5);
    cr_assert(!memcmp(w[0].val, "plain", 5));
    cr_assert_eq(cm_json_scan(ok, strlen(ok), 10, w, 1), CM_ETOOBIG);
}

/* ---- generated documents ---------------------------------------------------------- */

static void gen_value(cm_rand_t *r, cm_buf_t *b, int depth);

/* Appends; a document over the buffer's cap is dropped later (its length is then 0). */
static void put(cm_buf_t *b, const char *s)
{
    if (cm_buf_addstr(b, s) != CM_OK)
        b->len = 0;
}

static void gen_string(cm_rand_t *r, cm_buf_t *b)
{
    static const char *const parts[] = {"a",    "call_id", "event",          "b",        "z",
                                        "\\n",  "\\u00e9", "\\ud83d\\ude00", "\xc3\xa9", "x y",
                                        "\\\"", "\\\\",    "\xe2\x82\xac",   "agent_id", "call",
                                        "y"};
    put(b, "\"");
    int n = (int)cm_rand_below(r, 3);
    for (int i = 0; i < n; i++)
        put(b, parts[cm_rand_below(r, sizeof parts / sizeof parts[0])]);
    put(b, "\"");
}

static void gen_value(cm_rand_t *r, cm_buf_t *b, int depth)
{
    static const char *const scalars[] = {
        "0", "-1", "12.5e3", "true", "false", "null", "1e400", "-0.0", "9223372036854775807"};
    unsigned k = (unsigned)cm_rand_below(r, depth > 4 ? 3 : 5);
    if (k == 0) {
        put(b, scalars[cm_rand_below(r, sizeof scalars / sizeof scalars[0])]);
    } else if (k <= 2) {
        gen_string(r, b);
    } else if (k == 3) {
        put(b, "[");
        int n = (int)cm_rand_below(r, 4);
        for (int i = 0; i < n; i++) {
            if (i)
                put(b, ",");
            gen_value(r, b, depth + 1);
        }
        put(b, "]");
    } else {
        put(b, "{");
        int n = (int)cm_rand_below(r, 4);
        for (int i = 0; i < n; i++) {
            if (i)
                put(b, cm_rand_below(r, 8) ? "," : " , ");
            gen_string(r, b);
            put(b, ":");
            gen_value(r, b, depth + 1);
        }
        put(b, "}");
    }
}

/* Damages a document the way a buggy sender or a proxy might. */
static size_t mutate(cm_rand_t *r, char *d, size_t len, size_t cap)
{
    static const char alphabet[] = "{}[]\":,\\u0123456789eE+-. \t\nabcdefxtrn\x80\xc3\xa9\xff";
    if (!len)
        return 0;
    size_t at = (size_t)cm_rand_below(r, len);
    switch (cm_rand_below(r, 4)) {
    case 0: /* replace a byte */
        d[at] = alphabet[cm_rand_below(r, sizeof alphabet - 1)];
        return len;
    case 1: /* delete a byte */
        memmove(d + at, d + at + 1, len - at - 1);
        return len - 1;
    case 2: /* insert a byte */
        if (len + 1 >= cap)
            return len;
        memmove(d + at + 1, d + at, len - at);
        d[at] = alphabet[cm_rand_below(r, sizeof alphabet - 1)];
        return len + 1;
    default: /* cut short */
        return at;
    }
}

Test(json_scan, random_documents_and_their_mutations_agree, .timeout = 60)
{
    cm_rand_t r;
    cm_rand_seed(&r, 20261125);
    char doc[4096];
    int valid = 0, invalid = 0;
    for (int i = 0; i < 20000; i++) {
        cm_buf_t b;
        cm_buf_init(&b, sizeof doc - 1);
        if (cm_rand_below(&r, 2))
            gen_value(&r, &b, 0);
        else {
            put(&b, "{\"event\":");
            gen_string(&r, &b);
            put(&b, ",\"call\":");
            gen_value(&r, &b, 1);
            put(&b, "}");
        }
        size_t len = b.len < sizeof doc ? b.len : 0;
        memcpy(doc, b.data ? b.data : "", len);
        cm_buf_free(&b);
        cm_err_t rc = agree(doc, len);
        valid += rc == CM_OK;
        for (int m = 0; m < 4; m++) {
            len = mutate(&r, doc, len, sizeof doc);
            rc = agree(doc, len);
            invalid += rc == CM_EINVAL;
        }
    }
    /* The generator must reach both answers often, or the test proves little. */
    cr_assert_gt(valid, 2000, "valid %d", valid);
    cr_assert_gt(invalid, 20000, "invalid %d", invalid);
    cr_log_info("agreed on %d documents, %d left to the general path", n_agree, n_general);
}

Test(json_scan, retell_webhook_mutations_agree, .timeout = 60)
{
    static const char body[] =
        "{\"event\":\"call_analyzed\",\"call\":{\"call_id\":\"call_bench_00000000\",\"agent_id\":"
        "\"agent_bench\",\"agent_version\":1,\"call_status\":\"ended\",\"from_number\":"
        "\"+14155550123\",\"start_timestamp\":1795632525677,\"duration_ms\":84000,"
        "\"call_analysis\":{\"call_summary\":\"The caller asked for opening hours.\","
        "\"in_voicemail\":false,\"user_sentiment\":\"Neutral\",\"custom_analysis_data\":{}}}}";
    cm_rand_t r;
    cm_rand_seed(&r, 7);
    char doc[1024];
    cr_assert_eq(agree(body, sizeof body - 1), CM_OK);
    for (int i = 0; i < 20000; i++) {
        size_t len = sizeof body - 1;
        memcpy(doc, body, len);
        int n = 1 + (int)cm_rand_below(&r, 3);
        for (int m = 0; m < n; m++)
            len = mutate(&r, doc, len, sizeof doc);
        (void)agree(doc, len);
    }
}
