/* test_sim_form.c - form-urlencoded decoding, Stripe's nested keys. */
#include <criterion/criterion.h>
#include <string.h>

#include "cm_json.h"
#include "sim_form.h"

static json_t *decode_ok(const char *body)
{
    json_t *v = NULL;
    char err[CM_ERR_LEN] = "";
    cm_err_t rc = sim_form_decode(body, strlen(body), &v, err);
    cr_assert_eq(rc, CM_OK, "decode '%s': %s (%s)", body, cm_strerror(rc), err);
    cr_assert(json_is_object(v));
    return v;
}

static void decode_fails(const char *body, const char *err_part)
{
    json_t *v = (json_t *)1;
    char err[CM_ERR_LEN] = "";
    cm_err_t rc = sim_form_decode(body, strlen(body), &v, err);
    cr_assert_eq(rc, CM_EINVAL, "'%s' decoded (rc %d) but must fail", body, rc);
    cr_assert_null(v);
    cr_assert(strstr(err, err_part), "error '%s' lacks '%s'", err, err_part);
}

Test(form, url_decode_plus_and_percent)
{
    char out[64];
    cr_assert_eq(sim_form_url_decode("a+b%20c%2Bd", 11, out), 7);
    cr_assert_str_eq(out, "a b c+d");
    cr_assert_eq(sim_form_url_decode("%e2%82%ac", 9, out), 3);
    cr_assert_str_eq(out, "\xe2\x82\xac");
    cr_assert_eq(sim_form_url_decode("%zz", 3, out), -1);
    cr_assert_eq(sim_form_url_decode("%4", 2, out), -1);
    cr_assert_eq(sim_form_url_decode("%", 1, out), -1);
    cr_assert_eq(sim_form_url_decode("%00", 3, out), -1, "an escaped NUL would cut the string");
}

Test(form, flat_pairs_are_strings)
{
    json_t *v = decode_ok("amount=2000&currency=eur&confirm=true");
    cr_assert_str_eq(cm_json_str(v, "amount", ""), "2000");
    cr_assert_str_eq(cm_json_str(v, "currency", ""), "eur");
    cr_assert_str_eq(cm_json_str(v, "confirm", ""), "true");
    cr_assert_eq(json_object_size(v), 3);
    json_decref(v);
}

Test(form, nested_hash_and_arrays)
{
    json_t *v = decode_ok("metadata[order_id]=42&metadata[call_id]=call_1"
                          "&payment_method_types[0]=card&payment_method_types[1]=sepa_debit"
                          "&expand[]=customer&expand[]=latest_charge"
                          "&a[b][c]=deep");
    cr_assert_str_eq(cm_json_str(v, "metadata.order_id", ""), "42");
    cr_assert_str_eq(cm_json_str(v, "metadata.call_id", ""), "call_1");
    cr_assert_str_eq(cm_json_str(v, "payment_method_types.0", ""), "card");
    cr_assert_str_eq(cm_json_str(v, "payment_method_types.1", ""), "sepa_debit");
    cr_assert_str_eq(cm_json_str(v, "expand.1", ""), "latest_charge");
    cr_assert_str_eq(cm_json_str(v, "a.b.c", ""), "deep");
    json_decref(v);
}

Test(form, percent_encoded_brackets_and_values)
{
    /* Many clients escape the brackets; the key is decoded before it is split. */
    json_t *v = decode_ok("metadata%5Bnote%5D=hello+world%21&description=caf%C3%A9");
    cr_assert_str_eq(cm_json_str(v, "metadata.note", ""), "hello world!");
    cr_assert_str_eq(cm_json_str(v, "description", ""), "caf\xc3\xa9");
    json_decref(v);
}

Test(form, edge_cases_that_decode)
{
    json_t *v = decode_ok("");
    cr_assert_eq(json_object_size(v), 0);
    json_decref(v);
    v = decode_ok("a=1&&b=&c&a=2");
    cr_assert_str_eq(cm_json_str(v, "a", ""), "2", "a repeated scalar keeps the last value");
    cr_assert_str_eq(cm_json_str(v, "b", "x"), "");
    cr_assert_str_eq(cm_json_str(v, "c", "x"), "", "a key without '=' has an empty value");
    json_decref(v);
    v = decode_ok("x=a%26b%3Dc");
    cr_assert_str_eq(cm_json_str(v, "x", ""), "a&b=c", "escaped separators are data");
    json_decref(v);
}

Test(form, malformed_input_is_refused)
{
    decode_fails("a[b=1", "malformed key");
    decode_fails("a]b=1", "malformed key");
    decode_fails("a[b]c=1", "malformed key");
    decode_fails("[x]=1", "malformed key");
    decode_fails("a[1]=x", "gap");
    decode_fails("a=1&a[b]=2", "a[b]");
    decode_fails("a[b]=2&a=1", "a");
    decode_fails("a[]=1&a[x]=2", "another shape");
    decode_fails("a=%zz", "percent-escape");
    decode_fails("a=%ff", "UTF-8");
    decode_fails("a[b][c][d][e][f][g][h][i]=1", "nesting");
}

/* Found by fuzz/fuzz_form: a bad escape quoted the raw key, bytes that are not UTF-8
 * included, so the message could not be put in a JSON answer. */
Test(form, a_bad_escape_is_quoted_as_printable_ascii)
{
    decode_fails("metadata[k%5B1%5D]\xc3%zz=1", "bad percent-escape in 'metadata[k%5B1%5D]?%zz'");
    decode_fails("a\x01\xff%=1", "'a??%'");
}
