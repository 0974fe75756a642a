/* fuzz_chaos_faults.c - the chaos proxy's fault-list parser (ch_faults_parse) on any JSON
 * text. A list taken must come back from ch_faults_json as a list that parses to the very
 * same faults (ch_fault.h promises it); a refusal must say why in a message a JSON answer
 * can carry. */
#include <string.h>

#include "ch_fault.h"
#include "cm_json.h"
#include "fuzz.h"

static int same(const ch_fault_t *a, const ch_fault_t *b)
{
    return a->type == b->type && a->dirs == b->dirs && a->probability == b->probability &&
           a->min_ms == b->min_ms && a->max_ms == b->max_ms && a->bytes_per_s == b->bytes_per_s &&
           a->slice_bytes == b->slice_bytes && a->interval_ms == b->interval_ms &&
           a->after_bytes == b->after_bytes && a->hang_max_ms == b->hang_max_ms;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *body = NULL;
    if (cm_json_parse(data, size, 1 << 20, &body, NULL) != CM_OK)
        return 0;
    ch_faults_t *l = NULL, *again = NULL;
    char err[CM_ERR_LEN] = "";
    cm_err_t rc = ch_faults_parse(body, &l, err);
    if (rc != CM_OK) {
        FUZZ_CHECK(rc == CM_EINVAL && !l, "answered %d", rc);
        FUZZ_CHECK(*err, "a refusal without a message");
        FUZZ_CHECK(fuzz_utf8_ok(err, strlen(err)), "message not UTF-8: %s", err);
        json_decref(body);
        return 0;
    }
    json_t *notes = ch_faults_deprecation_notes(l);
    FUZZ_CHECK((notes != NULL) == (l->deprecated != 0), "notes and deprecated bits disagree");
    json_decref(notes);
    json_t *list = ch_faults_json(l);
    FUZZ_CHECK(list, "no JSON for a list taken");
    json_t *back = json_pack("{s:o}", "faults", list);
    char *text = cm_json_dumps(back);
    rc = ch_faults_parse(back, &again, err);
    FUZZ_CHECK(rc == CM_OK, "its own JSON %s refused: %s", text, err);
    FUZZ_CHECK(again->n == l->n && !again->deprecated, "%zu faults became %zu", l->n, again->n);
    for (size_t i = 0; i < l->n; i++)
        FUZZ_CHECK(same(&l->items[i], &again->items[i]), "fault %zu changed in %s", i, text);
    free(text);
    json_decref(back);
    ch_faults_unref(&again);
    ch_faults_unref(&l);
    json_decref(body);
    return 0;
}
