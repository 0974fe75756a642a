/* fuzz_sim_fault.c - the simulators' fault-rule parser (sim_fault_add) on any JSON text,
 * then the decision for a few requests against what it took. A refusal must name the JSON
 * path ("$..."), in a message a JSON answer can carry; a rule taken must be listed with its
 * id. */
#include <string.h>

#include "cm_json.h"
#include "cm_log.h"
#include "fuzz.h"
#include "sim_fault.h"

static sim_fault_t *engine;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    cm_log_min_level = CM_LOG_ERROR; /* rules added and deprecations are logged otherwise */
    engine = sim_fault_new(&(sim_fault_cfg_t){.seed = 1});
    if (!engine)
        abort();
    return 0;
}

static void decide(const char *provider, const char *method, const char *path, const char *ctype,
                   const char *body)
{
    sim_fault_plan_t plan;
    if (sim_fault_decide(engine, provider, method, path, ctype, body, strlen(body), &plan)) {
        FUZZ_CHECK(plan.rule_id > 0, "fired without a rule");
        FUZZ_CHECK(plan.latency_ms >= 0 && plan.latency_ms <= SIM_FAULT_LATENCY_LIMIT_MS,
                   "latency %lld", (long long)plan.latency_ms);
        FUZZ_CHECK(plan.status == 0 || (plan.status >= 100 && plan.status <= 599), "status %d",
                   plan.status);
    }
    sim_fault_plan_free(&plan);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!engine)
        LLVMFuzzerInitialize(NULL, NULL);
    json_t *spec = NULL, *added = NULL;
    if (cm_json_parse(data, size, 1 << 20, &spec, NULL) != CM_OK)
        return 0;
    (void)sim_fault_duration_ms(spec);
    char err[CM_ERR_LEN] = "";
    cm_err_t rc = sim_fault_add(engine, spec, &added, err);
    if (rc == CM_OK) {
        FUZZ_CHECK(cm_json_int(added, "id", 0) > 0, "added without an id");
        json_t *list = sim_fault_list(engine);
        FUZZ_CHECK(cm_json_int(list, "count", 0) == 1, "not listed");
        json_decref(list);
        for (int i = 0; i < 3; i++) { /* a few hits, so sequences move on */
            decide("calcom", "POST", "/v2/bookings", "application/json",
                   "{\"eventTypeId\":101,\"attendee\":{\"email\":\"a@b.example\"}}");
            decide("stripe", "POST", "/v1/payment_intents", "application/x-www-form-urlencoded",
                   "amount=500&currency=eur&metadata[order]=7");
            decide("retell", "GET", "/v2/get-call/call_1", NULL, "");
        }
    } else {
        FUZZ_CHECK(rc == CM_EINVAL && !added, "answered %d", rc);
        FUZZ_CHECK(err[0] == '$', "the message does not name the path: %s", err);
        FUZZ_CHECK(fuzz_utf8_ok(err, strlen(err)), "message not UTF-8: %s", err);
    }
    json_decref(added);
    json_decref(spec);
    sim_fault_clear(engine);
    return 0;
}
