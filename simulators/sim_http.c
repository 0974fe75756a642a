/* sim_http.c - bearer check and JSON body parsing for simulator handlers. */
#include "sim_http.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cm_codec.h"
#include "cm_json.h"

int sim_http_bearer_ok(const cm_http_req_t *req, const char *key)
{
    const char *h = cm_http_req_header(req, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return 0;
    return cm_ct_equal(h + 7, strlen(h + 7), key, strlen(key));
}

cm_err_t sim_http_json_object(const cm_http_req_t *req, int empty_ok, json_t **out, char *err)
{
    *out = NULL;
    if (req->body_len == 0) {
        if (!empty_ok) {
            cm_errf(err, "a JSON object body is required");
            return CM_EINVAL;
        }
        *out = json_object();
        return *out ? CM_OK : CM_ENOMEM;
    }
    json_t *v = NULL;
    cm_err_t rc = cm_json_parse(req->body, req->body_len, req->body_len, &v, err);
    if (rc)
        return CM_EINVAL;
    if (!json_is_object(v)) {
        json_decref(v);
        cm_errf(err, "the body must be a JSON object");
        return CM_EINVAL;
    }
    *out = v;
    return CM_OK;
}

json_t *sim_http_str(const char *s)
{
    json_t *v = json_string(s ? s : "");
    if (v)
        return v;
    char *copy = strdup(s);
    if (!copy)
        return NULL;
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            *p = '?';
    v = json_string(copy);
    free(copy);
    return v;
}
