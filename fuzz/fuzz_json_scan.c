/* fuzz_json_scan.c - cm_json_scan against jansson (cm_json_parse), the differential check
 * of cm_json_scan.h's contract: a document one accepts the other accepts, and the wanted
 * strings the scan hands out are the ones jansson decodes. CM_EAGAIN (the scan leaves the
 * document to jansson) is always allowed. */
#include <string.h>

#include "cm_json.h"
#include "cm_json_scan.h"
#include "fuzz.h"

/* Object paths as the gateway asks for them (no array index: the scan has none). */
static const char *const paths[] = {"event",          "call.call_id", "call.agent_id", "id", "type",
                                    "data.object.id", "triggerEvent", "payload.uid",   "a",  "a.b",
                                    "x.y.z"};
enum { NPATHS = sizeof paths / sizeof paths[0], CAP = 1 << 20 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cm_json_want_t want[NPATHS];
    for (size_t i = 0; i < NPATHS; i++)
        want[i].path = paths[i];
    cm_err_t rc = cm_json_scan(data, size, CAP, want, NPATHS);
    json_t *v = NULL;
    cm_err_t jrc = cm_json_parse(data, size, CAP, &v, NULL);
    FUZZ_CHECK(rc == CM_OK || rc == CM_EINVAL || rc == CM_EAGAIN || rc == CM_ETOOBIG,
               "scan answered %d", rc);
    if (rc == CM_ETOOBIG)
        FUZZ_CHECK(jrc == CM_ETOOBIG, "only the scan found %zu bytes too big", size);
    if (rc != CM_EAGAIN && rc != CM_ETOOBIG)
        FUZZ_CHECK((rc == CM_OK) == (jrc == CM_OK), "scan says %s, jansson says %s",
                   rc == CM_OK ? "valid" : "invalid", jrc == CM_OK ? "valid" : "invalid");
    for (size_t i = 0; i < NPATHS; i++) {
        if (rc != CM_OK) {
            FUZZ_CHECK(!want[i].val, "%s handed out with answer %d", paths[i], rc);
            continue;
        }
        size_t jlen = 0;
        const char *js = cm_json_strn(v, paths[i], &jlen);
        if (!js) {
            FUZZ_CHECK(!want[i].val, "%s found by the scan only", paths[i]);
            continue;
        }
        FUZZ_CHECK(want[i].val, "%s missed by the scan", paths[i]);
        FUZZ_CHECK((const uint8_t *)want[i].val >= data &&
                       (const uint8_t *)want[i].val + want[i].len <= data + size,
                   "%s points outside the text", paths[i]);
        FUZZ_CHECK(want[i].len == jlen && !memcmp(js, want[i].val, jlen),
                   "%s: scan [%.*s], jansson [%s]", paths[i], (int)want[i].len, want[i].val, js);
    }
    json_decref(v);
    return 0;
}
