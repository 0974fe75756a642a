/* test_sc_schema.c - docs/scenario.schema.json agrees with the runner: it is valid JSON,
 * names every top-level key and every step kind the runner accepts (and no others), and
 * every step kind is a strict object. (scenarios/schema-check.sh validates the shipped
 * scenario files against it with ajv when npm can install it.) Run from the repo root. */
#include <criterion/criterion.h>
#include <string.h>

#include "cm_json.h"
#include "rp_health.h"
#include "sc_scenario.h"

static json_t *schema;

static void load(void)
{
    char err[CM_ERR_LEN] = "";
    cr_assert_eq(cm_json_load_file("docs/scenario.schema.json", 1 << 20, &schema, err), CM_OK,
                 "docs/scenario.schema.json: %s (run from the repository root)", err);
}

static void unload(void)
{
    json_decref(schema);
}

TestSuite(schema, .init = load, .fini = unload);

Test(schema, top_level_keys_match_the_runner)
{
    const json_t *props = json_object_get(schema, "properties");
    size_t n = 0;
    for (const char *const *k = sc_scenario_keys; *k; k++, n++)
        cr_assert_not_null(json_object_get(props, *k), "the schema lacks \"%s\"", *k);
    cr_assert_eq(json_object_size(props), n, "the schema has keys the runner refuses");
    cr_assert(json_is_false(json_object_get(schema, "additionalProperties")));
}

Test(schema, every_step_kind_is_there)
{
    const json_t *defs = json_object_get(schema, "definitions");
    const json_t *one = json_object_get(json_object_get(defs, "step"), "oneOf");
    cr_assert_eq(json_array_size(one), (size_t)SC_STEP__COUNT,
                 "definitions.step.oneOf must list each of the %d step kinds", SC_STEP__COUNT);
    for (int k = 0; k < SC_STEP__COUNT; k++) {
        char def[64], ref[96];
        snprintf(def, sizeof def, "step_%s", sc_step_kind_name((sc_step_kind_t)k));
        snprintf(ref, sizeof ref, "#/definitions/%s", def);
        const json_t *d = json_object_get(defs, def);
        cr_assert_not_null(d, "the schema lacks definitions.%s", def);
        cr_assert(json_is_false(json_object_get(d, "additionalProperties")), "%s", def);
        cr_assert_not_null(json_object_get(json_object_get(d, "properties"),
                                           sc_step_kind_name((sc_step_kind_t)k)));
        int listed = 0;
        for (size_t i = 0; i < json_array_size(one); i++)
            listed |= !strcmp(cm_json_str(json_array_get(one, i), "$ref", ""), ref);
        cr_assert(listed, "%s is not in definitions.step.oneOf", ref);
    }
}

Test(schema, sign_schemes_and_gateway_actions_match)
{
    const json_t *defs = json_object_get(schema, "definitions");
    const json_t *schemes = json_object_get(
        json_object_get(json_object_get(json_object_get(defs, "sign"), "properties"), "scheme"),
        "enum");
    cr_assert_eq(json_array_size(schemes), 4);
    for (int s = SC_SIGN_RETELL; s <= SC_SIGN_STD; s++)
        cr_assert_str_eq(json_string_value(json_array_get(schemes, (size_t)s - 1)),
                         sc_sign_scheme_name((sc_sign_scheme_t)s));
    const json_t *gw = json_object_get(
        json_object_get(json_object_get(defs, "step_gateway"), "properties"), "gateway");
    const json_t *actions =
        json_object_get(json_object_get(json_object_get(gw, "properties"), "action"), "enum");
    cr_assert_eq(json_array_size(actions), SC_GW_WAIT_EXIT + 1);
    for (int a = SC_GW_KILL; a <= SC_GW_WAIT_EXIT; a++)
        cr_assert_str_eq(json_string_value(json_array_get(actions, (size_t)a)),
                         sc_gw_action_name((sc_gw_action_t)a));
}

Test(schema, postgres_actions_and_store_forms_match)
{
    const json_t *defs = json_object_get(schema, "definitions");
    const json_t *pg = json_object_get(
        json_object_get(json_object_get(defs, "step_postgres"), "properties"), "postgres");
    const json_t *actions =
        json_object_get(json_object_get(json_object_get(pg, "properties"), "action"), "enum");
    cr_assert_eq(json_array_size(actions), SC_PG_RESTART + 1);
    for (int a = SC_PG_STOP; a <= SC_PG_RESTART; a++)
        cr_assert_str_eq(json_string_value(json_array_get(actions, (size_t)a)),
                         sc_pg_action_name((sc_pg_action_t)a));
    /* "store": the two names, or the object with a backend and a server */
    const json_t *forms =
        json_object_get(json_object_get(json_object_get(schema, "properties"), "store"), "oneOf");
    cr_assert_eq(json_array_size(forms), 2);
    const json_t *obj = json_object_get(json_array_get(forms, 1), "properties");
    cr_assert_not_null(json_object_get(obj, "backend"));
    cr_assert_not_null(json_object_get(obj, "server"));
}

Test(schema, areas_match_the_health_report)
{
    const json_t *area = json_object_get(json_object_get(schema, "properties"), "area");
    const json_t *names = json_object_get(area, "enum");
    size_t n = 0;
    for (const char *const *a = rp_health_areas; *a; a++, n++)
        cr_assert_str_eq(json_string_value(json_array_get(names, n)), *a,
                         "properties.area.enum[%zu] must be the health report's area %s", n, *a);
    cr_assert_eq(json_array_size(names), n, "the schema has areas the health report lacks");
}
