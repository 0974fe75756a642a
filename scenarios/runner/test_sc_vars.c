/* test_sc_vars.c - the variable store and ${...} expansion, typed and in text. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "cm_json.h"
#include "sc_vars.h"

static sc_vars_t *vars(void)
{
    sc_vars_t *v = sc_vars_new();
    cr_assert_not_null(v);
    cr_assert_eq(sc_vars_set_int(v, "seed", 7), CM_OK);
    cr_assert_eq(sc_vars_set_str(v, "gateway_url", "http://127.0.0.1:4100"), CM_OK);
    json_t *call =
        json_pack("{s:s,s:{s:{s:s,s:i}},s:[i,i,i],s:b,s:n}", "call_id", "call_1", "call_analysis",
                  "custom_analysis_data", "attendee_email", "jane@example.com", "event_type_id",
                  101, "list", 1, 2, 3, "flag", 1, "nothing");
    cr_assert_eq(sc_vars_set(v, "call", call), CM_OK);
    json_decref(call); /* the store keeps its own reference */
    return v;
}

static char *expand(sc_vars_t *v, const char *in)
{
    char *out = NULL, err[CM_ERR_LEN] = "";
    cr_assert_eq(sc_vars_expand(v, in, &out, err), CM_OK, "%s: %s", in, err);
    return out;
}

Test(vars, names)
{
    cr_assert(sc_vars_valid_name("call"));
    cr_assert(sc_vars_valid_name("_x1"));
    cr_assert_not(sc_vars_valid_name("1x"));
    cr_assert_not(sc_vars_valid_name("a.b"));
    cr_assert_not(sc_vars_valid_name(""));
    cr_assert_not(sc_vars_valid_name("a-b"));
    sc_vars_t *v = sc_vars_new();
    cr_assert_eq(sc_vars_set_str(v, "a.b", "x"), CM_EINVAL);
    sc_vars_free(&v);
    cr_assert_null(v);
    sc_vars_free(&v);
}

Test(vars, text_expansion)
{
    sc_vars_t *v = vars();
    char *s = expand(v, "${gateway_url}/admin/calls/${call.call_id}?seed=${seed}");
    cr_assert_str_eq(s, "http://127.0.0.1:4100/admin/calls/call_1?seed=7");
    free(s);
    s = expand(v, "${call.call_analysis.custom_analysis_data.attendee_email}");
    cr_assert_str_eq(s, "jane@example.com");
    free(s);
    s = expand(v, "n=${call.list.1} l=${call.list} f=${call.flag} z=${call.nothing}");
    cr_assert_str_eq(s, "n=2 l=[1,2,3] f=true z=null");
    free(s);
    s = expand(v, "no refs, a $ sign, $$ and $${literal}");
    cr_assert_str_eq(s, "no refs, a $ sign, $$ and ${literal}");
    free(s);
    s = expand(v, "");
    cr_assert_str_eq(s, "");
    free(s);
    sc_vars_free(&v);
}

Test(vars, unknown_variable_is_named)
{
    sc_vars_t *v = vars();
    char *out = (char *)1, err[CM_ERR_LEN] = "";
    cr_assert_eq(sc_vars_expand(v, "/x/${cal.call_id}", &out, err), CM_EINVAL);
    cr_assert_null(out);
    cr_assert_not_null(strstr(err, "unknown variable ${cal.call_id}"), "%s", err);
    cr_assert_not_null(strstr(err, "known: seed, gateway_url, call"), "%s", err);

    cr_assert_eq(sc_vars_expand(v, "${call.nope}", &out, err), CM_EINVAL);
    cr_assert_not_null(strstr(err, "variable \"call\" has no \"nope\""), "%s", err);

    cr_assert_eq(sc_vars_expand(v, "${call.call_id", &out, err), CM_EINVAL);
    cr_assert_not_null(strstr(err, "unterminated"), "%s", err);

    cr_assert_eq(sc_vars_expand(v, "${}", &out, err), CM_EINVAL);
    cr_assert_not_null(strstr(err, "bad variable reference"), "%s", err);
    cr_assert_eq(sc_vars_expand(v, "${1abc}", &out, err), CM_EINVAL);
    sc_vars_free(&v);
}

Test(vars, json_expansion_keeps_types)
{
    sc_vars_t *v = vars();
    json_t *in = json_pack("{s:s,s:s,s:s,s:[s,i],s:{s:s}}", "count", "${seed}", "text",
                           "seed is ${seed}", "obj", "${call.call_analysis}", "arr",
                           "${call.call_id}", 5, "${call.call_id}", "k", "v");
    json_t *out = NULL;
    char err[CM_ERR_LEN] = "";
    cr_assert_eq(sc_vars_expand_json(v, in, &out, err), CM_OK, "%s", err);
    cr_assert(json_is_integer(json_object_get(out, "count")));
    cr_assert_eq(json_integer_value(json_object_get(out, "count")), 7);
    cr_assert_str_eq(cm_json_str(out, "text", ""), "seed is 7");
    cr_assert_str_eq(cm_json_str(out, "obj.custom_analysis_data.attendee_email", ""),
                     "jane@example.com");
    cr_assert_str_eq(cm_json_str(out, "arr.0", ""), "call_1");
    cr_assert_str_eq(cm_json_str(out, "call_1.k", ""), "v", "keys are expanded too");
    /* The copy is deep: changing it leaves the variable alone. */
    json_object_set_new(json_object_get(out, "obj"), "x", json_true());
    cr_assert_null(sc_vars_lookup(v, "call.call_analysis.x"));
    json_decref(out);
    json_decref(in);

    in = json_pack("{s:[s]}", "a", "${missing}");
    out = (json_t *)1;
    cr_assert_eq(sc_vars_expand_json(v, in, &out, err), CM_EINVAL);
    cr_assert_null(out);
    cr_assert_not_null(strstr(err, "${missing}"), "%s", err);
    json_decref(in);
    sc_vars_free(&v);
}

Test(vars, replace_and_lookup)
{
    sc_vars_t *v = vars();
    cr_assert_eq(sc_vars_set_str(v, "seed", "eight"), CM_OK);
    cr_assert_str_eq(json_string_value(sc_vars_lookup(v, "seed")), "eight");
    cr_assert_eq(json_integer_value(sc_vars_lookup(v, "call.list.2")), 3);
    cr_assert_null(sc_vars_lookup(v, "nobody"));
    sc_vars_free(&v);
}

Test(vars, clone_is_deep_and_unset_removes)
{
    sc_vars_t *v = vars();
    sc_vars_t *c = sc_vars_clone(v);
    cr_assert_not_null(c);
    cr_assert_eq(json_integer_value(sc_vars_lookup(c, "call.list.2")), 3);
    /* the copies are separate: a change in one is not seen in the other */
    json_object_set_new((json_t *)sc_vars_lookup(c, "call"), "x", json_true());
    cr_assert_null(sc_vars_lookup(v, "call.x"));
    cr_assert_eq(sc_vars_set_int(c, "i", 4), CM_OK);
    cr_assert_null(sc_vars_lookup(v, "i"));
    sc_vars_unset(c, "i");
    sc_vars_unset(c, "i"); /* absent: nothing happens */
    cr_assert_null(sc_vars_lookup(c, "i"));
    sc_vars_unset(c, "seed");
    cr_assert_null(sc_vars_lookup(c, "seed"));
    cr_assert_not_null(sc_vars_lookup(c, "call"), "the others stay");
    sc_vars_free(&c);
    sc_vars_free(&v);
}
