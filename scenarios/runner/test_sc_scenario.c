/* test_sc_scenario.c - loading scenario files: a full valid file, and the messages for
 * each kind of mistake (they must name the file, the step and the field). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cm_buf.h"
#include "sc_log.h"
#include "sc_match.h"
#include "sc_scenario.h"

static char dir[64];
static char gw[128], fx[128];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/sc_scn_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(gw, sizeof gw, "%s/gw.json", dir);
    snprintf(fx, sizeof fx, "%s/call.json", dir);
    FILE *f = fopen(gw, "w");
    fputs("{}", f);
    fclose(f);
    f = fopen(fx, "w");
    fputs("{\"agent_id\":\"a\"}", f);
    fclose(f);
}

static void teardown(void)
{
    unlink(gw);
    unlink(fx);
    rmdir(dir);
}

TestSuite(scenario, .init = setup, .fini = teardown);

/* A scenario around the given steps (JSON text of the array's contents), with %G for the
 * gateway config and %F for the fixture path. */
static char *make(const char *top_extra, const char *steps)
{
    static char text[16384];
    char body[12288] = "";
    size_t n = 0;
    for (const char *p = steps; *p && n + 130 < sizeof body; p++) {
        if (p[0] == '%' && p[1] == 'F') {
            n += (size_t)snprintf(body + n, sizeof body - n, "%s", fx);
            p++;
        } else {
            body[n++] = *p;
        }
    }
    body[n] = '\0';
    snprintf(text, sizeof text,
             "{\"name\":\"t\",\"tags\":[\"x\"],\"seed\":7,\"gateway\":{\"config\":\"%s\"}%s,"
             "\"steps\":[%s]}",
             gw, top_extra, body);
    return text;
}

static void expect_error(const char *text, const char *want)
{
    sc_scenario_t *sc = (sc_scenario_t *)1;
    char err[SC_ERR_LEN] = "";
    cr_assert_neq(sc_scenario_parse("sc/x.json", text, strlen(text), &sc, err), CM_OK,
                  "accepted: %s", text);
    cr_assert_null(sc);
    cr_assert_not_null(strstr(err, want), "want \"%s\"\n got \"%s\"\n for %s", want, err, text);
    cr_assert_eq(strncmp(err, "sc/x.json: ", 11), 0, "no file name in \"%s\"", err);
}

static const char *const ok_steps =
    "{\"name\":\"make a call\",\"call\":{\"fixture\":\"%F\",\"set\":{\"a.b\":1}}},"
    "{\"webhook\":{\"provider\":\"retell\",\"call\":\"${call.call_id}\",\"copies\":5,"
    "\"concurrent\":true,\"forge\":false,\"timestamp_offset\":\"-1s\"},"
    "\"expect\":{\"statuses\":[204,200],\"json\":{\"deliveries\":{\"$len\":5}}}},"
    "{\"wait\":{\"request\":{\"to\":\"gateway\",\"path\":\"/admin/calls/${call.call_id}\"},"
    "\"until\":{\"status\":200,\"json\":{\"state\":\"booked\"}},\"within\":\"250ms\"}},"
    "{\"request\":{\"to\":\"control\",\"method\":\"POST\",\"path\":\"/control/reset\","
    "\"headers\":{\"X-A\":\"b\"},\"body\":\"raw\"}},"
    "{\"request\":{\"to\":\"stripe\",\"path\":\"/v1/x\",\"auth\":true,\"json\":[1]},"
    "\"expect\":{\"status\":[200,201]},\"capture\":{\"x\":\"id\",\"all\":\"\"}}";

Test(scenario, valid_file_loads_with_defaults)
{
    const char *text =
        make(",\"description\":\"d\",\"speed\":20,\"env\":{\"A_B\":\"c\"}", ok_steps);
    sc_scenario_t *sc = NULL;
    char err[SC_ERR_LEN] = "";
    cr_assert_eq(sc_scenario_parse("sc/x.json", text, strlen(text), &sc, err), CM_OK, "%s", err);
    cr_assert_str_eq(sc->name, "t");
    cr_assert_str_eq(sc->description, "d");
    cr_assert_str_eq(sc->dir, "sc");
    cr_assert_eq(sc->seed, 7);
    cr_assert_eq(sc->speed, 20);
    cr_assert_eq(sc->nsteps, 5);

    const sc_step_t *s = &sc->steps[0];
    cr_assert_eq(s->kind, SC_STEP_CALL);
    cr_assert_str_eq(s->name, "make a call");
    cr_assert_str_eq(s->as, "call");
    cr_assert_not_null(s->set);

    s = &sc->steps[1];
    cr_assert_eq(s->kind, SC_STEP_WEBHOOK);
    cr_assert_str_eq(s->event, "call_analyzed");
    cr_assert_eq(s->copies, 5);
    cr_assert(s->concurrent);
    cr_assert_not(s->forge);
    cr_assert_eq(s->timestamp_offset_ms, -1000);
    cr_assert_eq(s->expect.nstatuses, 2);
    cr_assert_eq(s->expect.statuses[1], 200);

    s = &sc->steps[2];
    cr_assert_eq(s->kind, SC_STEP_WAIT);
    cr_assert_eq(s->within_ms, 250);
    cr_assert_eq(s->req.to, SC_TO_GATEWAY);
    cr_assert_str_eq(s->req.method, "GET");
    cr_assert_eq(s->req.auth, -1);
    cr_assert(s->expect.present);

    s = &sc->steps[3];
    cr_assert_eq(s->kind, SC_STEP_REQUEST);
    cr_assert_not(s->expect.present, "no expect: any 2xx at run time");
    cr_assert_str_eq(s->req.body, "raw");

    s = &sc->steps[4];
    cr_assert_eq(s->req.to, SC_TO_STRIPE);
    cr_assert_eq(s->req.auth, 1);
    cr_assert_not_null(s->req.json);
    cr_assert_not_null(s->capture);
    sc_scenario_free(&sc);
    cr_assert_null(sc);
}

Test(scenario, top_level_mistakes)
{
    char text[1024];
    expect_error("[]", "a scenario must be a JSON object");
    expect_error("{\"name\":", "invalid JSON at line 1");
    snprintf(text, sizeof text, "%s", make(",\"sped\":20", "{}"));
    expect_error(text, "unknown key \"sped\" (allowed: \"name\", \"description\"");
    snprintf(text, sizeof text, "%s", make(",\"speed\":2.5", "{}"));
    expect_error(text, "\"speed\" must be a whole number from 1 to 100");
    snprintf(text, sizeof text, "%s", make(",\"speed\":0", "{}"));
    expect_error(text, "\"speed\" must be a whole number from 1 to 100");
    expect_error("{\"tags\":[],\"seed\":1}", "\"name\" is required");
    expect_error("{\"name\":\"n\",\"tags\":[1],\"seed\":1}", "\"tags\"[0] must be a string");
    expect_error("{\"name\":\"n\",\"tags\":[],\"seed\":-1}", "\"seed\" is required (a "
                                                             "non-negative integer)");
    expect_error("{\"name\":\"n\",\"tags\":[],\"seed\":1,\"gateway\":{\"config\":\"/nope.json\"},"
                 "\"steps\":[]}",
                 "sc/x.json: gateway: \"config\": /nope.json: no such file");
    expect_error("{\"name\":\"n\",\"tags\":[],\"seed\":1,\"gateway\":{\"config\":\"nope.json\"},"
                 "\"steps\":[]}",
                 "\"nope.json\" not found in");
    snprintf(text, sizeof text, "%s", make(",\"env\":{\"A\":1}", "{}"));
    expect_error(text, "\"env\": \"A\" must be a string");
    snprintf(text, sizeof text, "%s", make("", ""));
    expect_error(text, "\"steps\" is required (a non-empty list)");
    snprintf(text, sizeof text, "%s", make(",\"store\":\"mysql\"", "{}"));
    expect_error(text, "\"store\" must be \"sqlite\" (the default) or \"postgres\"");
    /* Several gateway instances need the proxy that spreads webhooks over them. */
    snprintf(text, sizeof text,
             "{\"name\":\"n\",\"tags\":[],\"seed\":1,\"gateway\":{\"config\":\"%s\","
             "\"instances\":3},\"steps\":[{\"expect\":{\"queue\":{\"dead\":0}}}]}",
             gw);
    expect_error(text, "gateway: \"instances\": 3 instances need the chaos proxy's gateway link");
    snprintf(text, sizeof text,
             "{\"name\":\"n\",\"tags\":[],\"seed\":1,\"gateway\":{\"config\":\"%s\","
             "\"instances\":9},\"steps\":[{\"expect\":{\"queue\":{\"dead\":0}}}]}",
             gw);
    expect_error(text, "\"instances\" must be an integer from 1 to 8");
}

Test(scenario, step_mistakes)
{
    struct {
        const char *steps, *want;
    } cases[] = {
        {"{\"sleep\":\"1s\"}", "steps[0]: unknown step kind (keys: \"sleep\""},
        {"{\"call\":{\"fixture\":\"%F\"},\"wait\":{}}", "steps[0]: a step has exactly one kind"},
        {"1", "steps[0]: a step must be an object"},
        {"{\"call\":{\"fixture\":\"%F\"}},{\"webhook\":{\"provider\":\"retell\",\"call\":\"c\","
         "\"copies\":0}}",
         "steps[1] (webhook): \"copies\" must be an integer from 1 to 1000"},
        {"{\"webhook\":{\"provider\":\"retell\",\"call\":\"c\",\"copies\":\"5\"}}",
         "steps[0] (webhook): \"copies\" must be an integer from 1 to 1000"},
        {"{\"webhook\":{\"provider\":\"stripe\",\"call\":\"c\"}}",
         "unknown key \"call\" in \"webhook\""},
        {"{\"webhook\":{\"provider\":\"twilio\",\"call\":\"c\"}}",
         "\"provider\" must be retell, stripe or calcom (got \"twilio\")"},
        {"{\"webhook\":{\"provider\":\"stripe\",\"object\":{}}}",
         "\"event\" is required: the event type"},
        {"{\"webhook\":{\"provider\":\"stripe\",\"event\":\"charge.refunded\"}}",
         "\"object\" is required: the event's data.object"},
        {"{\"webhook\":{\"provider\":\"stripe\",\"event\":\"a.b\",\"object\":{},"
         "\"copies\":21}}",
         "the stripe simulator sends at most 20 copies"},
        {"{\"webhook\":{\"provider\":\"stripe\",\"event\":\"a.b\",\"object\":{},"
         "\"timestamp_offset\":\"soon\"}}",
         "\"webhook\": \"timestamp_offset\": \"soon\""},
        {"{\"webhook\":{\"provider\":\"calcom\",\"event\":\"BOOKING_CANCELLED\"}}",
         "give exactly one of \"booking\""},
        {"{\"webhook\":{\"provider\":\"calcom\",\"event\":\"BOOKING_CANCELLED\","
         "\"booking\":\"u\",\"payload\":{}}}",
         "give exactly one of \"booking\""},
        {"{\"webhook\":{\"provider\":\"calcom\",\"event\":\"X\",\"booking\":\"u\","
         "\"timestamp_offset\":\"1s\"}}",
         "unknown key \"timestamp_offset\" in \"webhook\""},
        {"{\"webhook\":{\"provider\":\"retell\",\"call\":\"c\",\"timestamp_offset\":\"1s\","
         "\"timestamp_offset_ms\":1}}",
         "give \"timestamp_offset\" only"},
        {"{\"webhook\":{\"provider\":\"retell\"}}", "steps[0] (webhook): \"call\" is required"},
        {"{\"webhook\":{\"provider\":\"retell\",\"call\":\"c\",\"forge\":\"yes\"}}",
         "\"forge\" must be true or false"},
        {"{\"webhook\":{\"provider\":\"retell\",\"call\":\"c\"},\"expect\":{\"status\":204}}",
         "unknown key \"status\" in \"expect\" (allowed: \"statuses\", \"json\")"},
        {"{\"webhook\":{\"provider\":\"retell\",\"call\":\"c\"},\"expect\":{\"statuses\":[]}}",
         "\"statuses\" must be a non-empty list of HTTP statuses"},
        {"{\"request\":{\"to\":\"gateway\",\"path\":\"/x\"},\"expect\":{\"status\":99}}",
         "steps[0] (request): \"status\" must hold HTTP statuses (100-599)"},
        {"{\"request\":{\"to\":\"gateway\",\"path\":\"/x\"},\"expect\":{}}", "\"expect\" is empty"},
        {"{\"request\":{\"to\":\"gateway\",\"path\":\"/x\"},\"expect\":{\"json\":{\"a\":"
         "{\"$foo\":1}}}}",
         "steps[0] (request): \"expect\".\"json\": \"a\": unknown operator \"$foo\""},
        {"{\"request\":{\"to\":\"db\",\"path\":\"/x\"}}",
         "\"to\" must be one of gateway, control, retell, calcom, stripe, chaos (got \"db\")"},
        {"{\"request\":{\"to\":\"gateway\",\"path\":\"x\"}}", "\"path\" must start with '/'"},
        {"{\"request\":{\"to\":\"gateway\"}}", "\"path\" is required"},
        {"{\"request\":{\"to\":\"gateway\",\"path\":\"/x\",\"method\":\"get\"}}",
         "\"method\" must be one of GET"},
        {"{\"request\":{\"to\":\"gateway\",\"path\":\"/x\",\"json\":{},\"body\":\"\"}}",
         "give one of \"json\", \"body\" and \"body_repeat\", not several"},
        {"{\"request\":{\"to\":\"gateway\",\"path\":\"/x\",\"headers\":{\"A\":1}}}",
         "header \"A\" must be a string"},
        {"{\"request\":{\"to\":\"control\",\"path\":\"/x\",\"auth\":true}}",
         "the control port takes no credentials"},
        {"{\"request\":{\"to\":\"gateway\",\"path\":\"/x\",\"timeout\":\"1s\"}}",
         "unknown key \"timeout\" in \"request\""},
        {"{\"request\":{\"to\":\"gateway\",\"path\":\"/x\"},\"until\":{}}",
         "steps[0] (request): unknown key \"until\" (allowed: \"name\", \"request\", "
         "\"expect\", \"capture\")"},
        {"{\"request\":{\"to\":\"gateway\",\"path\":\"/x\"},\"capture\":{\"seed\":\"a\"}}",
         "\"capture\": \"seed\" is a built-in variable"},
        {"{\"request\":{\"to\":\"gateway\",\"path\":\"/x\"},\"capture\":{\"a.b\":\"a\"}}",
         "\"capture\": \"a.b\" is not a variable name"},
        {"{\"request\":{\"to\":\"gateway\",\"path\":\"/x\"},\"capture\":{\"a\":1}}",
         "\"capture\": \"a\" must name an answer path"},
        {"{\"wait\":{\"request\":{\"to\":\"gateway\",\"path\":\"/x\"}}}",
         "steps[0] (wait): \"until\" is required"},
        {"{\"wait\":{\"until\":{\"status\":200}}}", "steps[0] (wait): \"request\" is required"},
        {"{\"wait\":{\"request\":{\"to\":\"gateway\",\"path\":\"/x\"},\"until\":{\"status\":200},"
         "\"within\":\"10\"}}",
         "steps[0] (wait): \"within\": \"10\" is not a duration"},
        {"{\"wait\":{\"saga\":\"c1\"}}",
         "steps[0] (wait): \"wait\" on a saga needs the \"state\" to wait for"},
        {"{\"wait\":{\"saga\":\"c1\",\"call\":\"c1\",\"state\":\"x\"}}",
         "\"wait\" polls one thing: a \"saga\", a \"call\", the \"queue\" or a \"request\""},
        {"{\"wait\":{\"call\":\"a/b\",\"state\":\"x\"}}",
         "\"call\" must be an id (or a ${...} that gives one)"},
        {"{\"wait\":{\"queue\":\"empty\"}}", "\"queue\" must be \"drained\" or an expectation"},
        {"{\"wait\":{\"queue\":\"drained\",\"state\":\"x\"}}",
         "\"state\" goes with \"saga\" or \"call\", not \"queue\""},
        {"{\"wait\":{\"saga\":\"c1\",\"state\":\"x\",\"until\":{}}}",
         "unknown key \"until\" in \"wait\""},
        {"{\"wait\":{\"saga\":\"c1\",\"state\":{\"$most\":1}}}", "unknown operator \"$most\""},
        {"{\"expect\":{}}", "\"expect\" must be an object: \"effects\", \"queue\""},
        {"{\"include\":\"x.json\",\"with\":[]}", "\"with\" must be an object of variable -> value"},
        {"{\"include\":\"x.json\",\"with\":{\"a-b\":1}}",
         "\"with\": \"a-b\" is not a variable name"},
        {"{\"include\":\"x.json\",\"with\":{\"seed\":1}}",
         "\"with\": \"seed\" is a built-in variable"},
        {"{\"expect\":{\"effects\":{\"calcom.charge\":1}}}",
         "\"effects\": \"calcom.charge\" is not provider.kind"},
        {"{\"expect\":{\"effects\":{\"calcom\":1}}}", "\"calcom\" is not provider.kind"},
        {"{\"expect\":{\"saga\":\"c1\"}}", "a \"saga\" needs the \"state\" to check"},
        {"{\"expect\":{\"journal\":{\"calcom\":1}}}",
         "\"journal\": \"calcom\" must be \"PROVIDER METHOD /path\""},
        {"{\"expect\":{\"journal\":{\"calcom GET v2\":1}}}", "must be \"PROVIDER METHOD /path\""},
        {"{\"expect\":{\"journal\":{\"calcom GET /v2\":{}}}}", "is empty: give a count"},
        {"{\"expect\":{\"journal\":{\"calcom GET /v2\":{\"count\":1,\"every\":{}}}}}",
         "unknown key \"every\" in \"journal\".\"calcom GET /v2\""},
        {"{\"expect\":{\"journal\":{\"calcom GET /v2\":{\"statuses\":[]}}}}",
         "\"statuses\" must be the list of statuses in order"},
        {"{\"expect\":{\"journal\":{\"calcom GET /v2\":{\"gaps\":{\"min\":\"soon\"}}}}}",
         "\"journal\".\"calcom GET /v2\": \"entries\": $gaps: \"min\" must be"},
        {"{\"expect\":{\"journal\":[]}}", "\"journal\" must map \"PROVIDER METHOD /path\""},
        {"{\"expect\":{\"breaker\":{\"calcom\":{}}}}", "\"breaker\".\"calcom\" is empty"},
        {"{\"expect\":{\"breaker\":{\"calcom\":{\"state\":\"open\",\"to\":1}}}}",
         "unknown key \"to\" in \"breaker\".\"calcom\""},
        {"{\"expect\":{\"breaker\":{\"calcom\":{\"transitions\":\"open\"}}}}",
         "\"breaker\".\"calcom\".\"transitions\" must be a list of states"},
        {"{\"expect\":{\"breaker\":{\"a.b\":\"open\"}}}", "\"a.b\" is not a provider name"},
        {"{\"expect\":{\"dead_letters\":{\"$most\":1}}}", "unknown operator \"$most\""},
        {"{\"fault\":[]}", "steps[0] (fault): \"fault\" must be a fault rule or a non-empty list"},
        {"{\"gateway\":{\"action\":\"kill\",\"instance\":1}}",
         "\"instance\" must be an integer from 0 to 0"},
        {"{\"fault\":{}}", "\"fault\" must be a fault rule such as"},
        {"{\"fault\":[{\"status\":503},5]}", "\"fault\"[i] must be a fault rule such as"},
        {"{\"fault\":{\"status\":503},\"expect\":{\"status\":201}}",
         "a step has exactly one kind (keys: \"fault\", \"expect\")"},
        {"{\"expect\":{\"state\":\"x\"}}", "\"state\" goes with a \"saga\" or a \"call\""},
        {"{\"expect\":{\"queue\":{\"dead\":{\"$most\":0}}}}", "unknown operator \"$most\""},
        {"{\"expect\":{\"json\":{\"a\":1}}}", "unknown key \"json\" in \"expect\""},
        {"{\"wait\":{\"request\":{\"to\":\"gateway\",\"path\":\"/x\"},\"until\":{\"status\":200},"
         "\"within\":\"0ms\"}}",
         "\"within\" must be longer than 0"},
        {"{\"call\":{\"fixture\":\"missing.json\"}}", "steps[0] (call): \"fixture\": "
                                                      "\"missing.json\" not found"},
        {"{\"call\":{\"fixture\":\"%F\",\"as\":\"gateway_url\"}}", "is a built-in variable"},
        {"{\"call\":{\"fixture\":\"%F\",\"set\":[]}}", "\"set\" must be an object"},
        {"{\"name\":5,\"call\":{\"fixture\":\"%F\"}}", "\"name\" must be a string"},
        /* valid steps but nothing is checked anywhere */
        {"{\"call\":{\"fixture\":\"%F\"}},{\"request\":{\"to\":\"gateway\",\"path\":\"/x\"}}",
         "sc/x.json: the scenario has no expectation"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_error(make("", cases[i].steps), cases[i].want);
}

/* Each verb of an "expect" step becomes the request it stands for, in the verbs' order. */
Test(scenario, expect_verbs_become_requests)
{
    const char *text =
        make("", "{\"expect\":{\"journal\":{\"calcom GET /v2/slots\":{\"statuses\":[503,200],"
                 "\"gaps\":{\"min\":\"1s\"},\"each\":{\"status\":{\"$gte\":200}}},"
                 "\"retell delivery\":{\"$gte\":2}},\"breaker\":{\"calcom\":{\"state\":\"closed\","
                 "\"transitions\":[\"open\",\"closed\"]},\"stripe\":\"closed\"},"
                 "\"dead_letters\":0,\"effects\":{\"stripe.refund\":1}}}");
    sc_scenario_t *sc = NULL;
    char err[SC_ERR_LEN] = "", *got;
    cr_assert_eq(sc_scenario_parse("sc/x.json", text, strlen(text), &sc, err), CM_OK, "%s", err);
    const sc_step_t *s = &sc->steps[0];
    cr_assert_eq(s->kind, SC_STEP_EXPECT);
    cr_assert_eq(s->nchildren, 5);
    cr_assert_str_eq(s->children[0].req.path, "/control/effects?provider=stripe&kind=refund");
    cr_assert_str_eq(s->children[1].req.path, "/admin/dead-letters");
    cr_assert_str_eq(s->children[2].req.path, "/admin/breakers");
    got = json_dumps(s->children[2].expect.json, JSON_SORT_KEYS | JSON_COMPACT);
    cr_assert_str_eq(got,
                     "{\"calcom.journal.*.to\":[\"open\",\"closed\"],\"calcom.state\":\"closed\","
                     "\"stripe.state\":\"closed\"}");
    free(got);
    cr_assert_str_eq(s->children[3].req.path, "/control/journal?provider=calcom&kind=request&"
                                              "route=GET%20/v2/slots&order=started&limit=100000");
    got = json_dumps(s->children[3].expect.json, JSON_SORT_KEYS | JSON_COMPACT);
    cr_assert_str_eq(got, "{\"dropped\":0,\"entries\":{\"$each\":{\"status\":{\"$gte\":200}},"
                          "\"$gaps\":{\"field\":\"at_ms\",\"min\":\"1s\"}},"
                          "\"entries.*.status\":[503,200]}");
    free(got);
    cr_assert_str_eq(s->children[4].req.path,
                     "/control/journal?provider=retell&kind=delivery&order=started&limit=100000");
    cr_assert_str_eq(s->children[4].name, "journal: retell delivery");
    sc_scenario_free(&sc);
}

/* Stripe and Cal.com events the simulators sign and deliver; the offset's old form still
 * loads (with a warning on stderr) for one release. */
Test(scenario, fault_steps_take_a_rule_or_a_list)
{
    const char *text =
        make("", "{\"fault\":{\"provider\":\"calcom\",\"status\":503}},"
                 "{\"fault\":[{\"status\":500},{\"socket\":\"reset\"}]},"
                 "{\"request\":{\"to\":\"gateway\",\"path\":\"/x\"},\"expect\":{\"status\":200}}");
    sc_scenario_t *sc = NULL;
    char err[SC_ERR_LEN] = "";
    cr_assert_eq(sc_scenario_parse("sc/x.json", text, strlen(text), &sc, err), CM_OK, "%s", err);
    cr_assert_eq(sc->steps[0].kind, SC_STEP_FAULT);
    cr_assert(json_is_object(sc->steps[0].faults));
    cr_assert_eq(json_array_size(sc->steps[1].faults), 2);
    sc_scenario_free(&sc);
}

Test(scenario, journal_of_every_route)
{
    const char *text = make("", "{\"expect\":{\"journal\":{\"stripe *\":0}}}");
    sc_scenario_t *sc = NULL;
    char err[SC_ERR_LEN] = "";
    cr_assert_eq(sc_scenario_parse("sc/x.json", text, strlen(text), &sc, err), CM_OK, "%s", err);
    cr_assert_str_eq(sc->steps[0].children[0].req.path,
                     "/control/journal?provider=stripe&kind=request&order=started&limit=100000");
    sc_scenario_free(&sc);
}

Test(scenario, webhook_dialects_and_the_deprecated_offset)
{
    const char *text = make(
        "", "{\"webhook\":{\"provider\":\"stripe\",\"event\":\"payment_intent.succeeded\","
            "\"object\":{\"id\":\"pi_1\"},\"id\":\"evt_${seed}\",\"created\":1700000000,"
            "\"copies\":2,\"timestamp_offset\":\"+6m\"},\"expect\":{\"statuses\":[204]}},"
            "{\"webhook\":{\"provider\":\"calcom\",\"event\":\"BOOKING_CANCELLED\","
            "\"booking\":\"${uid}\",\"forge\":true}},"
            "{\"webhook\":{\"provider\":\"retell\",\"call\":\"c\",\"timestamp_offset_ms\":-1500},"
            "\"expect\":{\"statuses\":[401]}}");
    sc_scenario_t *sc = NULL;
    char err[SC_ERR_LEN] = "";
    cr_assert_eq(sc_scenario_parse("sc/x.json", text, strlen(text), &sc, err), CM_OK, "%s", err);
    const sc_step_t *s = &sc->steps[0];
    cr_assert_str_eq(s->provider, "stripe");
    cr_assert_str_eq(s->event, "payment_intent.succeeded");
    cr_assert_str_eq(s->event_id, "evt_${seed}");
    cr_assert_eq(s->created, 1700000000);
    cr_assert_eq(s->copies, 2);
    cr_assert_eq(s->timestamp_offset_ms, 360000);
    cr_assert_not_null(s->object);
    s = &sc->steps[1];
    cr_assert_str_eq(s->booking, "${uid}");
    cr_assert_null(s->object);
    cr_assert(s->forge);
    cr_assert_eq(sc->steps[2].timestamp_offset_ms, -1500);
    sc_scenario_free(&sc);
}

Test(scenario, variables_in_file_paths_are_checked_at_run_time)
{
    const char *text = make("", "{\"call\":{\"fixture\":\"${fixtures}/x.json\"}},"
                                "{\"request\":{\"to\":\"gateway\",\"path\":\"${p}\"},"
                                "\"expect\":{\"status\":200}}");
    sc_scenario_t *sc = NULL;
    char err[SC_ERR_LEN] = "";
    cr_assert_eq(sc_scenario_parse("x.json", text, strlen(text), &sc, err), CM_OK, "%s", err);
    cr_assert_str_eq(sc->dir, ".");
    sc_scenario_free(&sc);
}

Test(scenario, resolve_prefers_cwd_then_file_dir)
{
    sc_scenario_t *sc = NULL;
    char path[256], text[512], err[SC_ERR_LEN], out[512];
    snprintf(path, sizeof path, "%s/s.json", dir);
    snprintf(text, sizeof text, "%s",
             make("", "{\"request\":{\"to\":\"gateway\",\"path\":\"/x\"},"
                      "\"expect\":{\"status\":200}}"));
    cr_assert_eq(sc_scenario_parse(path, text, strlen(text), &sc, err), CM_OK, "%s", err);
    /* call.json is not in the cwd but sits beside the scenario */
    cr_assert_eq(sc_scenario_resolve(sc, "call.json", out, sizeof out, err), CM_OK, "%s", err);
    cr_assert_str_eq(out, fx);
    cr_assert_eq(sc_scenario_resolve(sc, "nope.json", out, sizeof out, err), CM_ENOTFOUND);
    cr_assert_not_null(strstr(err, "(the repo root) nor in /tmp/sc_scn_"), "%s", err);
    sc_scenario_free(&sc);
}

Test(scenario, load_from_disk)
{
    sc_scenario_t *sc = (sc_scenario_t *)1;
    char err[SC_ERR_LEN];
    cr_assert_eq(sc_scenario_load("/nonexistent/x.json", &sc, err), CM_ENOTFOUND);
    cr_assert_null(sc);
    cr_assert_not_null(strstr(err, "/nonexistent/x.json"), "%s", err);
}

/* ---- sign, body_repeat, gateway and repeat ---------------------------------------- */

static const char *const new_steps =
    "{\"request\":{\"to\":\"gateway\",\"method\":\"POST\",\"path\":\"/webhooks/retell\","
    "\"json\":{\"a\":\"${i}\"},\"sign\":{\"scheme\":\"retell\",\"key\":\"key_sim_retell\","
    "\"timestamp_offset\":\"-10m\"}},\"expect\":{\"status\":401}},"
    "{\"request\":{\"to\":\"gateway\",\"method\":\"POST\",\"path\":\"/webhooks/std/s\","
    "\"body_repeat\":{\"text\":\"ab\",\"times\":3},\"sign\":{\"scheme\":\"std\","
    "\"keys\":[\"whsec_a\",\"whsec_b\"],\"id\":\"msg_${i}\",\"forge\":true}}},"
    "{\"name\":\"crash\",\"gateway\":{\"action\":\"kill\"}},"
    "{\"gateway\":{\"action\":\"restart\",\"config\":\"%F\"}},"
    "{\"repeat\":{\"times\":1000,\"concurrency\":8,\"shuffle_seed\":7,"
    "\"step\":{\"request\":{\"to\":\"gateway\",\"path\":\"/x/${i}\"}}}},"
    "{\"repeat\":{\"times\":2,\"var\":\"n\",\"steps\":[{\"call\":{\"fixture\":\"%F\"}},"
    "{\"repeat\":{\"times\":3,\"var\":\"m\",\"step\":{\"gateway\":{\"action\":\"stop\"}}}}]}}";

Test(scenario, sign_body_repeat_gateway_and_repeat_load)
{
    const char *text = make("", new_steps);
    sc_scenario_t *sc = NULL;
    char err[SC_ERR_LEN] = "", label[200];
    cr_assert_eq(sc_scenario_parse("sc/x.json", text, strlen(text), &sc, err), CM_OK, "%s", err);
    cr_assert_eq(sc->nsteps, 6);
    cr_assert_eq(sc->speed, 1, "no speed: real time");

    const sc_step_t *s = &sc->steps[0];
    cr_assert_eq(s->req.sign.scheme, SC_SIGN_RETELL);
    cr_assert_str_eq(s->req.sign.key, "key_sim_retell");
    cr_assert_null(s->req.sign.keys);
    cr_assert_eq(s->req.sign.ts_offset_ms, -600000);
    cr_assert_not(s->req.sign.forge);

    s = &sc->steps[1];
    cr_assert_eq(s->req.sign.scheme, SC_SIGN_STD);
    cr_assert_null(s->req.sign.key);
    cr_assert_eq(json_array_size(s->req.sign.keys), 2);
    cr_assert_str_eq(s->req.sign.id, "msg_${i}");
    cr_assert(s->req.sign.forge);
    cr_assert_str_eq(s->req.repeat_text, "ab");
    cr_assert_eq(s->req.repeat_times, 3);
    cr_assert_not(s->expect.present);

    s = &sc->steps[2];
    cr_assert_eq(s->kind, SC_STEP_GATEWAY);
    cr_assert_eq(s->action, SC_GW_KILL);
    cr_assert_null(s->config);
    cr_assert_str_eq(sc_step_kind_name(s->kind), "gateway");

    s = &sc->steps[3];
    cr_assert_eq(s->action, SC_GW_RESTART);
    cr_assert_str_eq(s->config, fx);

    s = &sc->steps[4];
    cr_assert_eq(s->kind, SC_STEP_REPEAT);
    cr_assert_eq(s->times, 1000);
    cr_assert_eq(s->concurrency, 8);
    cr_assert(s->shuffle);
    cr_assert_eq(s->shuffle_seed, 7);
    cr_assert_str_eq(s->var, "i");
    cr_assert_eq(s->nchildren, 1);
    cr_assert_str_eq(s->children[0].loc, "steps[4].step");
    cr_assert_str_eq(s->children[0].actor, "step[4.0]");
    cr_assert_eq(s->children[0].kind, SC_STEP_REQUEST);

    s = &sc->steps[5];
    cr_assert_eq(s->concurrency, 1);
    cr_assert_not(s->shuffle);
    cr_assert_str_eq(s->var, "n");
    cr_assert_eq(s->nchildren, 2);
    cr_assert_str_eq(s->children[1].loc, "steps[5].steps[1]");
    cr_assert_str_eq(s->children[1].children[0].loc, "steps[5].steps[1].step");
    cr_assert_str_eq(s->children[1].children[0].actor, "step[5.1.0]");
    cr_assert_str_eq(sc_step_label(NULL, &s->children[1].children[0], label, sizeof label),
                     "steps[5].steps[1].step (gateway)");
    cr_assert_str_eq(sc_step_label(NULL, &sc->steps[2], label, sizeof label),
                     "steps[2] (gateway \"crash\")");
    cr_assert_eq(sc_steps_expectations(sc->steps, sc->nsteps), 1);
    sc_scenario_free(&sc);
}

Test(scenario, expectations_inside_a_repeat_count)
{
    const char *text = make("", "{\"repeat\":{\"times\":2,\"step\":{\"request\":{\"to\":"
                                "\"gateway\",\"path\":\"/x\"},\"expect\":{\"status\":200}}}}");
    sc_scenario_t *sc = NULL;
    char err[SC_ERR_LEN] = "";
    cr_assert_eq(sc_scenario_parse("sc/x.json", text, strlen(text), &sc, err), CM_OK, "%s", err);
    sc_scenario_free(&sc);
}

Test(scenario, sign_gateway_and_repeat_mistakes)
{
#define REQ(extra)                                                                                 \
    "{\"request\":{\"to\":\"gateway\",\"method\":\"POST\",\"path\":\"/w\"," extra "}}"
    struct {
        const char *steps, *want;
    } cases[] = {
        {REQ("\"sign\":{\"scheme\":\"github\",\"key\":\"k\"}"),
         "steps[0] (request): \"sign\": \"scheme\" must be one of retell, calcom, stripe, std "
         "(got \"github\")"},
        {REQ("\"sign\":{\"scheme\":\"retell\"}"),
         "\"sign\": give exactly one of \"key\" and \"keys\""},
        {REQ("\"sign\":{\"scheme\":\"stripe\",\"key\":\"a\",\"keys\":[\"b\"]}"),
         "\"sign\": give exactly one of \"key\" and \"keys\""},
        {REQ("\"sign\":{\"scheme\":\"retell\",\"keys\":[\"a\"]}"),
         "\"sign\": retell signs with one \"key\""},
        {REQ("\"sign\":{\"scheme\":\"stripe\",\"keys\":[]}"),
         "\"sign\": \"keys\" must be a list of 1 to 4 keys"},
        {REQ("\"sign\":{\"scheme\":\"stripe\",\"keys\":[\"a\",\"\"]}"),
         "\"sign\": \"keys\"[1] must be a non-empty string"},
        {REQ("\"sign\":{\"scheme\":\"std\",\"key\":\"whsec_a\"}"), "\"sign\": std needs \"id\""},
        {REQ("\"sign\":{\"scheme\":\"retell\",\"key\":\"k\",\"id\":\"m\"}"),
         "\"sign\": \"id\" is only for the std scheme"},
        {REQ("\"sign\":{\"scheme\":\"calcom\",\"key\":\"k\",\"timestamp_offset\":\"5s\"}"),
         "calcom signatures carry no timestamp"},
        {REQ("\"sign\":{\"scheme\":\"retell\",\"key\":\"k\",\"timestamp_offset_ms\":\"5\"}"),
         "\"timestamp_offset_ms\" must be an integer"},
        {REQ("\"sign\":{\"scheme\":\"retell\",\"key\":\"k\",\"forge\":1}"),
         "\"forge\" must be true or false"},
        {REQ("\"sign\":{\"scheme\":\"retell\",\"key\":\"k\",\"ts\":1}"),
         "unknown key \"ts\" in \"sign\""},
        {REQ("\"headers\":{\"X-Retell-Signature\":\"v=1,d=2\"},"
             "\"sign\":{\"scheme\":\"retell\",\"key\":\"k\"}"),
         "\"headers\": \"X-Retell-Signature\" is set by \"sign\""},
        {REQ("\"sign\":\"retell\""), "\"sign\" must be an object"},
        {REQ("\"body_repeat\":{\"text\":\"x\"}"),
         "\"body_repeat\": \"times\" is required (a positive integer)"},
        {REQ("\"body_repeat\":{\"text\":\"\",\"times\":2}"), "\"text\" is required"},
        {REQ("\"body_repeat\":{\"text\":\"xy\",\"times\":40000000}"),
         "\"body_repeat\": the body would be larger than 67108864 bytes"},
        {REQ("\"body\":\"a\",\"body_repeat\":{\"text\":\"x\",\"times\":2}"),
         "give one of \"json\", \"body\" and \"body_repeat\""},
        {"{\"gateway\":{\"action\":\"reboot\"}}",
         "steps[0] (gateway): \"action\" must be one of kill, stop, start, restart, expect_exit, "
         "wait_exit (got \"reboot\")"},
        {"{\"gateway\":{\"action\":\"kill\",\"within\":\"1s\"}}",
         "steps[0] (gateway): \"within\" is only for wait_exit"},
        {"{\"gateway\":{}}", "steps[0] (gateway): \"action\" is required"},
        {"{\"request\":{\"to\":\"gateway\",\"path\":\"/metrics\"},\"expect\":{\"metrics\":"
         "{\"gw_x{a\":1}}}",
         "\"expect\".\"metrics\": \"gw_x{a\" is not a metric selector"},
        {"{\"request\":{\"to\":\"gateway\",\"path\":\"/metrics\"},\"expect\":{\"metrics\":"
         "{\"gw_x\":{\"$most\":1}}}}",
         "\"expect\".\"metrics\": \"gw_x\": unknown operator \"$most\""},
        {"{\"request\":{\"to\":\"gateway\",\"path\":\"/metrics\"},\"expect\":{\"metrics\":{}}}",
         "\"metrics\" must be an object of selector -> value"},
        {"{\"webhook\":{\"provider\":\"retell\",\"call\":\"c\"},\"expect\":{\"metrics\":"
         "{\"a\":1}}}",
         "unknown key \"metrics\" in \"expect\""},
        {"{\"request\":{\"to\":\"gateway\",\"path\":\"/\"},\"expect\":{\"headers\":{}}}",
         "\"expect\".\"headers\" must be an object of header name -> value"},
        {"{\"request\":{\"to\":\"gateway\",\"path\":\"/\"},\"expect\":{\"headers\":"
         "{\"X Result\":\"a\"}}}",
         "\"expect\".\"headers\": \"X Result\" is not a header name"},
        {"{\"request\":{\"to\":\"gateway\",\"path\":\"/\"},\"expect\":{\"headers\":"
         "{\"X-Result\":{\"$most\":1}}}}",
         "\"expect\".\"headers\": \"X-Result\": unknown operator \"$most\""},
        {"{\"webhook\":{\"provider\":\"retell\",\"call\":\"c\"},\"expect\":{\"headers\":"
         "{\"a\":\"b\"}}}",
         "unknown key \"headers\" in \"expect\""},
        {"{\"gateway\":{\"action\":\"kill\",\"config\":\"%F\"}}",
         "\"config\" is only for start and restart"},
        {"{\"gateway\":{\"action\":\"start\",\"config\":\"nope.json\"}}",
         "\"config\": \"nope.json\" not found"},
        {"{\"repeat\":{\"step\":{\"gateway\":{\"action\":\"kill\"}}}}",
         "steps[0] (repeat): \"times\" is required (an integer from 1 to 1000000)"},
        {"{\"repeat\":{\"times\":2}}",
         "give exactly one of \"step\" (one step) and \"steps\" (a list)"},
        {"{\"repeat\":{\"times\":2,\"steps\":[]}}", "\"steps\" must be a non-empty list"},
        {"{\"repeat\":{\"times\":2,\"concurrency\":0,\"step\":{}}}",
         "\"concurrency\" must be an integer from 1 to 64"},
        {"{\"repeat\":{\"times\":2,\"shuffle_seed\":-3,\"step\":{}}}",
         "\"shuffle_seed\" must be an integer from 0"},
        {"{\"repeat\":{\"times\":2,\"var\":\"seed\",\"step\":{}}}",
         "\"var\": \"seed\" is a built-in variable"},
        {"{\"repeat\":{\"times\":2,\"step\":{\"sleep\":1}}}",
         "steps[0].step: unknown step kind (keys: \"sleep\""},
        {"{\"repeat\":{\"times\":2,\"steps\":[{\"call\":{\"fixture\":\"%F\"}},"
         "{\"request\":{\"to\":\"x\",\"path\":\"/\"}}]}}",
         "steps[0].steps[1] (request): \"to\" must be one of"},
        {"{\"repeat\":{\"times\":2,\"concurrency\":2,\"step\":{\"gateway\":{\"action\":"
         "\"kill\"}}}}",
         "steps[0].step (gateway): a gateway step cannot run inside a repeat with "
         "\"concurrency\" > 1"},
        {"{\"repeat\":{\"times\":2,\"concurrency\":2,\"step\":{\"repeat\":{\"times\":2,"
         "\"concurrency\":2,\"step\":{\"call\":{\"fixture\":\"%F\"}}}}}}",
         "steps[0].step (repeat): a repeat with \"concurrency\" > 1 cannot sit inside"},
        /* a repeat of steps without expectations expects nothing */
        {"{\"repeat\":{\"times\":2,\"step\":{\"request\":{\"to\":\"gateway\",\"path\":\"/x\"}}}}",
         "sc/x.json: the scenario has no expectation"},
    };
#undef REQ
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_error(make("", cases[i].steps), cases[i].want);
}

/* ---- include --------------------------------------------------------------------- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

Test(scenario, include_inlines_steps_from_files)
{
    char inner[128], outer[128], steps[512];
    snprintf(inner, sizeof inner, "%s/inner.json", dir);
    snprintf(outer, sizeof outer, "%s/outer.json", dir);
    write_file(inner, "{\"steps\":[{\"request\":{\"to\":\"gateway\",\"path\":\"/x\"},"
                      "\"expect\":{\"status\":200}}]}");
    snprintf(steps, sizeof steps, "[{\"call\":{\"fixture\":\"call.json\"}},{\"include\":\"%s\"}]",
             inner);
    write_file(outer, steps);
    snprintf(steps, sizeof steps, "{\"name\":\"inc\",\"include\":\"%s\"}", outer);
    const char *text = make("", steps);
    sc_scenario_t *sc = NULL;
    char err[SC_ERR_LEN] = "";
    char path[160];
    snprintf(path, sizeof path, "%s/s.json", dir); /* so call.json resolves beside it */
    cr_assert_eq(sc_scenario_parse(path, text, strlen(text), &sc, err), CM_OK, "%s", err);
    const sc_step_t *s = &sc->steps[0];
    cr_assert_eq(s->kind, SC_STEP_INCLUDE);
    cr_assert_eq(s->nchildren, 2);
    cr_assert_eq(s->children[0].kind, SC_STEP_CALL);
    cr_assert_eq(s->children[1].kind, SC_STEP_INCLUDE);
    const sc_step_t *r = &s->children[1].children[0];
    cr_assert_eq(r->kind, SC_STEP_REQUEST);
    char want[400];
    snprintf(want, sizeof want, "steps[0]:outer.json[1]:inner.json[0]");
    cr_assert_str_eq(r->loc, want);
    cr_assert_str_eq(r->actor, "step[0.1.0]");
    cr_assert_eq(sc_steps_expectations(sc->steps, sc->nsteps), 1, "included expectations count");
    sc_scenario_free(&sc);
    unlink(inner);
    unlink(outer);
}

Test(scenario, chaos_links_and_steps)
{
    static const char *const wait_step =
        "{\"wait\":{\"request\":{\"to\":\"gateway\",\"path\":\"/health/live\"},"
        "\"until\":{\"status\":200}}}";
    char steps[1024];
    snprintf(steps, sizeof steps,
             "{\"chaos\":{\"link\":\"calcom\",\"faults\":[{\"latency\":\"50ms\"}]}},"
             "{\"chaos\":{\"link\":\"gateway\",\"faults\":[]}},"
             "{\"request\":{\"to\":\"chaos\",\"path\":\"/links\"}},%s",
             wait_step);
    sc_scenario_t *sc = NULL;
    char err[SC_ERR_LEN] = "";
    const char *text = make(",\"chaos\":{\"links\":[\"calcom\",\"gateway\"]}", steps);
    cr_assert_eq(sc_scenario_parse("sc/x.json", text, strlen(text), &sc, err), CM_OK, "%s", err);
    cr_assert_eq(sc->chaos_links, (1u << SC_LINK_CALCOM) | (1u << SC_LINK_GATEWAY));
    cr_assert_eq(sc->steps[0].kind, SC_STEP_CHAOS);
    cr_assert_eq(sc->steps[0].link, SC_LINK_CALCOM);
    cr_assert_eq(json_array_size(sc->steps[1].faults), 0);
    cr_assert_eq(sc->steps[2].req.to, SC_TO_CHAOS);
    sc_scenario_free(&sc);

    text =
        make(",\"chaos\":{\"skew\":{\"gateway\":\"+6m\",\"simulators\":\"-1500ms\"}}", wait_step);
    cr_assert_eq(sc_scenario_parse("sc/x.json", text, strlen(text), &sc, err), CM_OK, "%s", err);
    cr_assert_eq(sc->chaos_links, 0, "skew alone starts no proxy");
    cr_assert_eq(sc->skew_ms[SC_PROC_GATEWAY], 360000);
    cr_assert_eq(sc->skew_ms[SC_PROC_SIMULATORS], -1500);
    cr_assert_eq(sc->skew_ms[SC_PROC_CHAOS], 0);
    sc_scenario_free(&sc);

    struct {
        const char *top, *steps, *want;
    } cases[] = {
        {",\"chaos\":[\"calcom\"]", wait_step, "chaos: \"chaos\" must be an object"},
        {",\"chaos\":{}", wait_step, "\"chaos\" needs \"links\", \"skew\" or both"},
        {",\"chaos\":{\"skew\":{}}", wait_step, "\"skew\" must be an object of process"},
        {",\"chaos\":{\"skew\":{\"db\":\"1s\"}}", wait_step,
         "\"skew\": unknown process \"db\" (gateway, simulators, chaos)"},
        {",\"chaos\":{\"skew\":{\"gateway\":60}}", wait_step,
         "\"skew\".\"gateway\" must be a signed duration"},
        {",\"chaos\":{\"skew\":{\"gateway\":\"+6d\"}}", wait_step,
         "\"skew\".\"gateway\": \"6d\" is not a duration: the unit must be ms, s, m or h"},
        {",\"chaos\":{\"skew\":{\"gateway\":\"+2000m\"}}", wait_step,
         "\"2000m\" is longer than 24h"},
        {",\"chaos\":{\"skew\":{\"chaos\":\"1s\"}}", wait_step,
         "\"skew\".\"chaos\": no chaos proxy runs without \"links\""},
        {",\"chaos\":{\"links\":[]}", wait_step, "\"links\" must be a non-empty list"},
        {",\"chaos\":{\"links\":[\"retell\"]}", wait_step,
         "\"links\"[0] must be one of calcom, stripe, gateway"},
        {",\"chaos\":{\"links\":[\"stripe\",\"stripe\"]}", wait_step,
         "\"links\"[1]: \"stripe\" is listed twice"},
        {",\"chaos\":{\"links\":[\"stripe\"],\"seed\":1}", wait_step, "unknown key \"seed\""},
        {"", "{\"chaos\":{\"link\":\"calcom\",\"faults\":[]}}",
         "steps[0] (chaos): \"link\": \"calcom\" is not one of the scenario's \"chaos\" links"},
        {",\"chaos\":{\"links\":[\"stripe\"]}", "{\"chaos\":{\"link\":\"calcom\",\"faults\":[]}}",
         "\"link\": \"calcom\" is not one of the scenario's \"chaos\" links"},
        {",\"chaos\":{\"links\":[\"stripe\"]}", "{\"chaos\":{\"link\":\"stripe\"}}",
         "\"faults\" is required"},
        {",\"chaos\":{\"links\":[\"stripe\"]}", "{\"chaos\":{\"link\":\"stripe\",\"faults\":[{}]}}",
         "\"faults\"[0] must be a fault object such as {\"latency\": \"100ms\"}"},
        {",\"chaos\":{\"links\":[\"stripe\"]}",
         "{\"chaos\":{\"link\":\"stripe\",\"faults\":[],\"for\":\"1s\"}}", "unknown key \"for\""},
        {"", "{\"request\":{\"to\":\"chaos\",\"path\":\"/links\"}}",
         "\"to\": \"chaos\" needs the scenario's \"chaos\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char full[4096];
        snprintf(full, sizeof full, "%s", make(cases[i].top, cases[i].steps));
        expect_error(full, cases[i].want);
    }
}

Test(scenario, include_mistakes)
{
    char self[128], bad[128], broken[128], text_steps[512];
    snprintf(self, sizeof self, "%s/self.json", dir);
    snprintf(bad, sizeof bad, "%s/bad.json", dir);
    snprintf(broken, sizeof broken, "%s/broken.json", dir);
    snprintf(text_steps, sizeof text_steps, "[{\"include\":\"%s\"}]", self);
    write_file(self, text_steps);
    write_file(bad, "{\"steps\":[{\"sleep\":1}]}");
    write_file(broken, "{\"stepz\":[]}");
    struct {
        char steps[300];
        const char *want;
    } cases[5];
    snprintf(cases[0].steps, 300, "{\"include\":\"%s\"}", self);
    cases[0].want = "more than 8 levels (does a file include itself?)";
    snprintf(cases[1].steps, 300, "{\"include\":\"%s\"}", bad);
    cases[1].want = "[0]: unknown step kind";
    snprintf(cases[2].steps, 300, "{\"include\":\"%s\"}", broken);
    cases[2].want = "must hold a list of steps";
    snprintf(cases[3].steps, 300, "{\"include\":\"${dir}/x.json\"}");
    cases[3].want = "cannot hold ${...}";
    snprintf(cases[4].steps, 300, "{\"include\":\"nope/x.json\"}");
    cases[4].want = "\"include\": \"nope/x.json\" not found";
    for (size_t i = 0; i < 5; i++)
        expect_error(make("", cases[i].steps), cases[i].want);
    unlink(self);
    unlink(bad);
    unlink(broken);
}

/* "store": a string, or an object naming a server of the scenario's own; "postgres" steps
 * only with such a server. */
Test(scenario, store_forms_and_postgres_steps)
{
    static const char *const wait = "{\"wait\":{\"queue\":\"drained\"}}";
    char text[2048];
    sc_scenario_t *sc = NULL;
    char err[SC_ERR_LEN] = "";

    snprintf(text, sizeof text, "%s", make("", wait));
    cr_assert_eq(sc_scenario_parse("sc/x.json", text, strlen(text), &sc, err), CM_OK, "%s", err);
    cr_assert_not(sc->store_pg, "SQLite by default");
    cr_assert_not(sc->store_pg_own);
    sc_scenario_free(&sc);

    snprintf(text, sizeof text, "%s", make(",\"store\":\"postgres\"", wait));
    cr_assert_eq(sc_scenario_parse("sc/x.json", text, strlen(text), &sc, err), CM_OK, "%s", err);
    cr_assert(sc->store_pg);
    cr_assert_not(sc->store_pg_own, "the shared server ($GW_PG_URL)");
    sc_scenario_free(&sc);

    snprintf(text, sizeof text, "%s",
             make(",\"store\":{\"backend\":\"postgres\",\"server\":\"shared\"}", wait));
    cr_assert_eq(sc_scenario_parse("sc/x.json", text, strlen(text), &sc, err), CM_OK, "%s", err);
    cr_assert(sc->store_pg);
    cr_assert_not(sc->store_pg_own);
    sc_scenario_free(&sc);

    snprintf(text, sizeof text, "%s",
             make(",\"store\":{\"backend\":\"postgres\",\"server\":\"own\"}",
                  "{\"postgres\":{\"action\":\"stop\"}},{\"postgres\":{\"action\":\"start\"}},"
                  "{\"name\":\"again\",\"postgres\":{\"action\":\"restart\"}},"
                  "{\"wait\":{\"queue\":\"drained\"}}"));
    cr_assert_eq(sc_scenario_parse("sc/x.json", text, strlen(text), &sc, err), CM_OK, "%s", err);
    cr_assert(sc->store_pg);
    cr_assert(sc->store_pg_own);
    cr_assert_eq(sc->nsteps, 4);
    cr_assert_eq(sc->steps[0].kind, SC_STEP_POSTGRES);
    cr_assert_eq(sc->steps[0].pg_action, SC_PG_STOP);
    cr_assert_eq(sc->steps[1].pg_action, SC_PG_START);
    cr_assert_eq(sc->steps[2].pg_action, SC_PG_RESTART);
    cr_assert_str_eq(sc->steps[2].name, "again");
    cr_assert_str_eq(sc_pg_action_name(SC_PG_RESTART), "restart");
    sc_scenario_free(&sc);

    snprintf(text, sizeof text, "%s", make(",\"store\":{\"backend\":\"sqlite\"}", wait));
    cr_assert_eq(sc_scenario_parse("sc/x.json", text, strlen(text), &sc, err), CM_OK, "%s", err);
    cr_assert_not(sc->store_pg);
    sc_scenario_free(&sc);
}

Test(scenario, store_and_postgres_step_mistakes)
{
    static const char *const wait = "{\"wait\":{\"queue\":\"drained\"}}";
    static const char *const own = ",\"store\":{\"backend\":\"postgres\",\"server\":\"own\"}";
    char text[2048];
    snprintf(text, sizeof text, "%s", make(",\"store\":7", wait));
    expect_error(text, "\"store\" must be \"sqlite\" (the default) or \"postgres\", or an object "
                       "{\"backend\": \"postgres\", \"server\": \"own\"} (got another type)");
    snprintf(text, sizeof text, "%s", make(",\"store\":{\"backend\":\"oracle\"}", wait));
    expect_error(text, "(got \"oracle\")");
    snprintf(text, sizeof text, "%s", make(",\"store\":{\"server\":\"own\"}", wait));
    expect_error(text, "store: \"backend\" is required");
    snprintf(text, sizeof text, "%s",
             make(",\"store\":{\"backend\":\"postgres\",\"sever\":\"own\"}", wait));
    expect_error(text, "unknown key \"sever\"");
    snprintf(text, sizeof text, "%s",
             make(",\"store\":{\"backend\":\"postgres\",\"server\":\"mine\"}", wait));
    expect_error(text, "\"server\" must be \"shared\" (the default: the one $GW_PG_URL names) or "
                       "\"own\" (got \"mine\")");
    snprintf(text, sizeof text, "%s",
             make(",\"store\":{\"backend\":\"sqlite\",\"server\":\"own\"}", wait));
    expect_error(text, "\"server\" is only for the postgres backend");

    /* The shared server serves other scenarios at the same time: no stopping it. */
    snprintf(text, sizeof text, "%s",
             make(",\"store\":\"postgres\"", "{\"postgres\":{\"action\":\"restart\"}},{\"wait\":"
                                             "{\"queue\":\"drained\"}}"));
    expect_error(text, "steps[0] (postgres): a postgres step needs a server of the scenario's own");
    snprintf(text, sizeof text, "%s",
             make("", "{\"postgres\":{\"action\":\"stop\"}},{\"wait\":{\"queue\":\"drained\"}}"));
    expect_error(text, "a postgres step needs a server of the scenario's own");
    snprintf(text, sizeof text, "%s",
             make(own, "{\"postgres\":{\"action\":\"kill\"}},{\"wait\":{\"queue\":\"drained\"}}"));
    expect_error(text, "\"action\" must be one of stop, start, restart (got \"kill\")");
    snprintf(text, sizeof text, "%s",
             make(own, "{\"postgres\":{}},{\"wait\":{\"queue\":\"drained\"}}"));
    expect_error(text, "\"action\" is required");
    snprintf(text, sizeof text, "%s",
             make(own, "{\"postgres\":{\"action\":\"stop\",\"mode\":\"fast\"}},{\"wait\":{"
                       "\"queue\":\"drained\"}}"));
    expect_error(text, "unknown key \"mode\"");
    snprintf(text, sizeof text, "%s",
             make(own, "{\"postgres\":\"restart\"},{\"wait\":{\"queue\":\"drained\"}}"));
    expect_error(text, "\"postgres\" must be an object {\"action\": ...}");
    snprintf(text, sizeof text, "%s",
             make(own, "{\"repeat\":{\"times\":2,\"concurrency\":2,\"step\":{\"postgres\":{"
                       "\"action\":\"restart\"}}}},{\"wait\":{\"queue\":\"drained\"}}"));
    expect_error(text, "a postgres step cannot run inside a repeat with \"concurrency\" > 1");
}

Test(scenario, finally_steps_load_and_bad_ones_are_refused)
{
    const char *steps = "{\"wait\":{\"queue\":\"drained\"}}";
    const char *fin = ",\"finally\":[{\"request\":{\"to\":\"control\",\"method\":\"DELETE\","
                      "\"path\":\"/control/faults\"}},{\"wait\":{\"queue\":\"drained\"}}]";
    const char *text = make(fin, steps);
    sc_scenario_t *sc = NULL;
    char err[SC_ERR_LEN] = "";
    cr_assert_eq(sc_scenario_parse("sc/x.json", text, strlen(text), &sc, err), CM_OK, "%s", err);
    cr_assert_eq(sc->nfinally, 2);
    cr_assert_eq(sc->finally_steps[0].kind, SC_STEP_REQUEST);
    cr_assert_str_eq(sc->finally_steps[1].loc, "finally[1]");
    sc_scenario_free(&sc);
    expect_error(make(",\"finally\":[]", steps), "\"finally\" must be a non-empty list of steps");
    expect_error(make(",\"finally\":{}", steps), "\"finally\" must be a non-empty list of steps");
    expect_error(make(",\"finally\":[{\"sleep\":1}]", steps), "finally[0]");
}

Test(scenario, run_id_is_a_builtin)
{
    const char *text = make("", "{\"request\":{\"to\":\"gateway\",\"path\":\"/admin/queue\"},"
                                "\"expect\":{\"status\":200},\"capture\":{\"run_id\":\"\"}}");
    expect_error(text, "run_id");
}

/* ---- the contract suite: "area", "finding", the "log" step, $gaps largest/spread ---- */

static const char *const log_step = "{\"log\":{\"excludes\":[\"+4915112345678\"]}}";

Test(scenario, area_and_finding_are_read_together)
{
    const char *text =
        make(",\"area\":\"breakers\",\"finding\":\"No circuit breaker on Stripe\"", log_step);
    sc_scenario_t *sc = NULL;
    char err[SC_ERR_LEN] = "";
    cr_assert_eq(sc_scenario_parse("sc/x.json", text, strlen(text), &sc, err), CM_OK, "%s", err);
    cr_assert_str_eq(sc->area, "breakers");
    cr_assert_str_eq(sc->finding, "No circuit breaker on Stripe");
    cr_assert_eq(sc->steps[0].kind, SC_STEP_LOG);
    cr_assert_not_null(sc->steps[0].log);
    sc_scenario_free(&sc);

    text = make("", log_step);
    cr_assert_eq(sc_scenario_parse("sc/x.json", text, strlen(text), &sc, err), CM_OK, "%s", err);
    cr_assert_null(sc->area);
    cr_assert_null(sc->finding);
    sc_scenario_free(&sc);

    expect_error(make(",\"area\":\"security\",\"finding\":\"f\"", log_step),
                 "\"area\" \"security\" is not one of the health report's areas");
    expect_error(make(",\"area\":\"dedup\"", log_step), "\"area\" and \"finding\" go together");
    expect_error(make(",\"finding\":\"f\"", log_step), "\"area\" and \"finding\" go together");
    expect_error(make(",\"area\":\"dedup\",\"finding\":\"\"", log_step),
                 "\"area\" and \"finding\" go together");
    expect_error(make(",\"area\":3,\"finding\":\"f\"", log_step), "\"area\"");
}

Test(scenario, log_step_is_an_expectation_and_its_lists_are_checked)
{
    sc_scenario_t *sc = NULL;
    char err[SC_ERR_LEN] = "";
    const char *text = make("", "{\"log\":{\"contains\":[\"listening\"],\"excludes\":[\"${x}\"]}}");
    cr_assert_eq(sc_scenario_parse("sc/x.json", text, strlen(text), &sc, err), CM_OK, "%s", err);
    cr_assert_eq(sc_steps_expectations(sc->steps, sc->nsteps), 1);
    sc_scenario_free(&sc);
    expect_error(make("", "{\"log\":{}}"), "\"log\" must be an object with \"excludes\"");
    expect_error(make("", "{\"log\":[\"x\"]}"), "\"log\" must be an object");
    expect_error(make("", "{\"log\":{\"excludes\":[]}}"),
                 "\"log\".\"excludes\" must be a non-empty list of strings");
    expect_error(make("", "{\"log\":{\"contains\":[\"\"]}}"),
                 "\"log\".\"contains\"[0] must be a non-empty string");
    expect_error(make("", "{\"log\":{\"excludes\":[\"a\"],\"part\":\"sim\"}}"),
                 "unknown key \"part\"");
}

/* Runs spec (text) against answer (text): 0 when it holds; diag into out. */
static int gaps_on(const char *answer, const char *spec, char *out, size_t cap)
{
    json_t *a = json_loads(answer, 0, NULL), *s = json_loads(spec, 0, NULL);
    char err[CM_ERR_LEN] = "";
    cr_assert_not_null(a);
    cr_assert_not_null(s);
    cr_assert_eq(sc_match_validate(s, err), CM_OK, "%s: %s", spec, err);
    cm_buf_t d;
    cm_buf_init(&d, 1 << 16);
    int bad = sc_match(a, s, &d);
    snprintf(out, cap, "%s", d.data ? d.data : "");
    cm_buf_free(&d);
    json_decref(a);
    json_decref(s);
    return bad;
}

Test(scenario, gaps_largest_and_spread)
{
    char d[2048];
    /* gaps 100, 100, 100: a fixed interval */
    const char *fixed = "{\"e\":[{\"t\":0},{\"t\":100},{\"t\":200},{\"t\":300}]}";
    /* gaps 90, 1200, 410: a back-off with jitter */
    const char *jitter = "{\"e\":[{\"t\":0},{\"t\":90},{\"t\":1290},{\"t\":1700}]}";
    cr_assert_eq(
        gaps_on(jitter, "{\"e\":{\"$gaps\":{\"field\":\"t\",\"largest\":\"1s\"}}}", d, sizeof d), 0,
        "%s", d);
    cr_assert_eq(
        gaps_on(jitter, "{\"e\":{\"$gaps\":{\"field\":\"t\",\"spread\":\"100ms\"}}}", d, sizeof d),
        0, "%s", d);
    cr_assert_neq(
        gaps_on(fixed, "{\"e\":{\"$gaps\":{\"field\":\"t\",\"largest\":\"1s\"}}}", d, sizeof d), 0);
    cr_assert_not_null(strstr(d, "largest gap 100 ms, wanted >= 1000"), "%s", d);
    cr_assert_neq(
        gaps_on(fixed, "{\"e\":{\"$gaps\":{\"field\":\"t\",\"spread\":\"50ms\"}}}", d, sizeof d),
        0);
    cr_assert_not_null(strstr(d, "gaps spread 0 ms, wanted >= 50"), "%s", d);
    /* one gap: nothing to compare, so neither holds */
    cr_assert_neq(gaps_on("{\"e\":[{\"t\":0},{\"t\":5000}]}",
                          "{\"e\":{\"$gaps\":{\"field\":\"t\",\"largest\":\"1s\"}}}", d, sizeof d),
                  0);
    json_t *bad = json_loads("{\"e\":{\"$gaps\":{\"field\":\"t\",\"spread\":\"soon\"}}}", 0, NULL);
    char err[CM_ERR_LEN] = "";
    cr_assert_neq(sc_match_validate(bad, err), CM_OK);
    cr_assert_not_null(strstr(err, "\"spread\" must be milliseconds"), "%s", err);
    json_decref(bad);
}
