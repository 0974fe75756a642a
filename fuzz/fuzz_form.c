/* fuzz_form.c - form decoding (simulators/sim_form.c): sim_form_url_decode into a buffer of
 * exactly the promised size, and sim_form_decode, whose result must be an object with only
 * string leaves, and whose refusals must be messages a JSON answer can carry. */
#include <string.h>

#include "cm_err.h"
#include "fuzz.h"
#include "sim_form.h"

/* Objects and arrays all the way down to strings, no deeper than the 8 levels allowed. */
static int strings_only(const json_t *v, int depth)
{
    const char *k;
    json_t *x;
    size_t i;
    if (depth > 8)
        return 0;
    if (json_is_string(v))
        return depth > 0;
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, x)
        {
            if (!strings_only(x, depth + 1))
                return 0;
        }
        return 1;
    }
    if (json_is_array(v)) {
        json_array_foreach(v, i, x)
        {
            if (!strings_only(x, depth + 1))
                return 0;
        }
        return depth > 0;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *out = malloc(size + 1);
    if (!out)
        abort();
    long n = sim_form_url_decode((const char *)data, size, out);
    FUZZ_CHECK(n >= -1 && n <= (long)size, "decoded length %ld of %zu bytes", n, size);
    if (n >= 0)
        FUZZ_CHECK(out[n] == '\0' && strlen(out) == (size_t)n, "no NUL at %ld", n);
    free(out);

    json_t *v = NULL;
    char err[CM_ERR_LEN] = "";
    cm_err_t rc = sim_form_decode((const char *)data, size, &v, err);
    if (rc == CM_OK) {
        FUZZ_CHECK(json_is_object(v), "not an object");
        FUZZ_CHECK(strings_only(v, 0), "a leaf that is not a string");
    } else {
        FUZZ_CHECK(rc == CM_EINVAL && !v, "answered %d", rc);
        FUZZ_CHECK(*err, "a refusal without a message");
        FUZZ_CHECK(fuzz_utf8_ok(err, strlen(err)), "message not UTF-8: %s", err);
    }
    json_decref(v);
    return 0;
}
