/* test_sim_setting.c - duration settings: the one grammar, the deprecated "_ms" forms with
 * their note, and the refusals naming the field. The warn lines in the log are checked end
 * to end in test_sim_control.c. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "cm_log.h"
#include "sim_setting.h"

static json_t *notes;
static sim_setting_warn_t warn;

static void setup(void)
{
    cm_log_set_level("error"); /* the deprecation warnings are expected here */
    notes = json_array();
    warn = (sim_setting_warn_t){.comp = "test.setting", .notes = notes};
}

static void teardown(void)
{
    json_decref(notes);
}

TestSuite(setting, .init = setup, .fini = teardown);

/* Reads setting s from body (JSON text); the return value, *ms and err. */
static int read_one(const char *body, const sim_setting_t *s, int64_t *ms, char *err)
{
    json_t *b = json_loads(body, 0, NULL);
    cr_assert_not_null(b, "%s", body);
    int rc = sim_setting_duration(b, s, ms, &warn, err);
    json_decref(b);
    return rc;
}

static const sim_setting_t delay = {"delay", 0, 3600000};
static const sim_setting_t offset = {"timestamp_offset", -3600000, 3600000};

Test(setting, durations_in_the_one_grammar)
{
    char err[CM_ERR_LEN] = "";
    int64_t ms = -7;
    cr_assert_eq(read_one("{}", &delay, &ms, err), 0);
    cr_assert_eq(ms, -7, "absent leaves the value");
    cr_assert_eq(read_one("{\"delay\":\"200s\"}", &delay, &ms, err), 1, "%s", err);
    cr_assert_eq(ms, 200000);
    cr_assert_eq(read_one("{\"delay\":\"1h\"}", &delay, &ms, err), 1, "the bound itself");
    cr_assert_eq(ms, 3600000);
    cr_assert_eq(read_one("{\"timestamp_offset\":\"-6m\"}", &offset, &ms, err), 1, "%s", err);
    cr_assert_eq(ms, -360000);
    cr_assert_eq(read_one("{\"timestamp_offset\":\"+1.5s\"}", &offset, &ms, err), 1, "%s", err);
    cr_assert_eq(ms, 1500);
    cr_assert_eq(json_array_size(notes), 0, "nothing deprecated");
}

Test(setting, deprecated_form_taken_and_noted)
{
    char err[CM_ERR_LEN] = "";
    int64_t ms = -7;
    cr_assert_eq(read_one("{\"delay_ms\":200000}", &delay, &ms, err), 1, "%s", err);
    cr_assert_eq(ms, 200000);
    cr_assert_eq(read_one("{\"timestamp_offset_ms\":-360000}", &offset, &ms, err), 1, "%s", err);
    cr_assert_eq(ms, -360000);
    cr_assert_eq(json_array_size(notes), 2);
    const char *want[] = {
        "\"delay_ms\" is deprecated and goes in the next release; write \"delay\": \"200s\"",
        "\"timestamp_offset_ms\" is deprecated and goes in the next release; write "
        "\"timestamp_offset\": \"-6m\""};
    for (size_t i = 0; i < 2; i++)
        cr_assert_str_eq(json_string_value(json_array_get(notes, i)), want[i]);

    /* Without a notes array (an answer without a body) only the log tells. */
    sim_setting_warn_t log_only = {.comp = "test.setting"};
    json_t *b = json_pack("{s:i}", "delay_ms", 5);
    cr_assert_eq(sim_setting_duration(b, &delay, &ms, &log_only, err), 1, "%s", err);
    json_decref(b);
    cr_assert_eq(ms, 5);
    cr_assert_eq(json_array_size(notes), 2, "no note without an array");
}

Test(setting, refusals_name_the_field)
{
    static const struct {
        const char *body;
        const sim_setting_t *s;
        const char *want;
    } bad[] = {
        {"{\"delay\":\"1s\",\"delay_ms\":1000}", &delay,
         "give delay or delay_ms, not both (delay_ms is its deprecated form)"},
        {"{\"delay\":\"2 s\"}", &delay, "delay: \"2 s\" is not a duration: the unit must be"},
        {"{\"delay\":\"0.5ms\"}", &delay, "delay: \"0.5ms\" is not a whole number"},
        {"{\"delay\":\"-1s\"}", &delay, "delay: \"-1s\" is not a duration"},
        {"{\"delay\":200}", &delay, "delay must be a string, a duration such as \"250ms\""},
        {"{\"delay\":\"61m\"}", &delay, "delay must be from 0ms to 1h"},
        {"{\"delay_ms\":\"200\"}", &delay, "delay_ms must be an integer of milliseconds"},
        {"{\"delay_ms\":-1}", &delay, "delay_ms must be from 0 to 3600000"},
        {"{\"timestamp_offset\":\"-61m\"}", &offset, "timestamp_offset must be from -1h to 1h"},
        {"{\"timestamp_offset\":\"-6 min\"}", &offset,
         "timestamp_offset: \"-6 min\" is not a duration"},
        {"{\"timestamp_offset\":-6}", &offset, "timestamp_offset must be a string"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[CM_ERR_LEN] = "";
        int64_t ms = -7;
        cr_expect_eq(read_one(bad[i].body, bad[i].s, &ms, err), -1, "%s", bad[i].body);
        cr_expect_eq(ms, -7, "%s: value touched", bad[i].body);
        cr_expect_not_null(strstr(err, bad[i].want), "%s: '%s' lacks '%s'", bad[i].body, err,
                           bad[i].want);
    }
    cr_assert_eq(json_array_size(notes), 0, "a refused setting is not noted");
}

/* Reads the list setting retry_schedule from body; the return value. */
static int read_list(const char *body, int64_t *ms, size_t *n, char *err)
{
    static const sim_setting_t sched = {"retry_schedule", 0, 3LL * 86400 * 1000};
    json_t *b = json_loads(body, 0, NULL);
    cr_assert_not_null(b, "%s", body);
    int rc = sim_setting_durations(b, &sched, 3, ms, n, &warn, err);
    json_decref(b);
    return rc;
}

Test(setting, lists_of_durations)
{
    char err[CM_ERR_LEN] = "";
    int64_t ms[3];
    size_t n = 99;
    cr_assert_eq(read_list("{}", ms, &n, err), 0);
    cr_assert_eq(n, 99, "absent leaves the count");
    cr_assert_eq(read_list("{\"retry_schedule\":[\"1m\",\"10m\",\"1h\"]}", ms, &n, err), 1, "%s",
                 err);
    cr_assert_eq(n, 3);
    cr_assert(ms[0] == 60000 && ms[1] == 600000 && ms[2] == 3600000);
    cr_assert_eq(read_list("{\"retry_schedule\":[]}", ms, &n, err), 1, "%s", err);
    cr_assert_eq(n, 0, "no retries");
    cr_assert_eq(json_array_size(notes), 0);

    cr_assert_eq(read_list("{\"retry_schedule_ms\":[60000,600000,1500]}", ms, &n, err), 1, "%s",
                 err);
    cr_assert_eq(n, 3);
    cr_assert_eq(ms[2], 1500);
    cr_assert_str_eq(json_string_value(json_array_get(notes, 0)),
                     "\"retry_schedule_ms\" is deprecated and goes in the next release; write "
                     "\"retry_schedule\": [\"1m\", \"10m\", \"1500ms\"]");

    static const struct {
        const char *body;
        const char *want;
    } bad[] = {
        {"{\"retry_schedule\":[\"1m\"],\"retry_schedule_ms\":[60000]}",
         "give retry_schedule or retry_schedule_ms, not both"},
        {"{\"retry_schedule\":\"1m\"}", "retry_schedule must be an array of at most 3 durations"},
        {"{\"retry_schedule\":[\"1m\",\"1m\",\"1m\",\"1m\"]}", "at most 3 durations"},
        {"{\"retry_schedule\":[\"1m\",\"1 m\"]}", "retry_schedule[1]: \"1 m\" is not a duration"},
        {"{\"retry_schedule\":[\"73h\"]}", "retry_schedule[0] must be from 0ms to 72h"},
        {"{\"retry_schedule\":[60000]}", "retry_schedule[0] must be a string"},
        {"{\"retry_schedule_ms\":{}}", "retry_schedule_ms must be an array of at most 3 integers"},
        {"{\"retry_schedule_ms\":[\"1m\"]}", "retry_schedule_ms[0] must be an integer"},
        {"{\"retry_schedule_ms\":[-1]}", "retry_schedule_ms[0] must be from 0 to 259200000"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        n = 99;
        cr_expect_eq(read_list(bad[i].body, ms, &n, err), -1, "%s", bad[i].body);
        cr_expect_eq(n, 99, "%s: count touched", bad[i].body);
        cr_expect_not_null(strstr(err, bad[i].want), "%s: '%s' lacks '%s'", bad[i].body, err,
                           bad[i].want);
    }
    cr_assert_eq(json_array_size(notes), 1, "refused lists are not noted");
}
