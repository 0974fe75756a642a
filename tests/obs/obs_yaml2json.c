/* obs_yaml2json.c - prints a YAML file as the JSON document it stands for (the scenario
 * runner's reader, scenarios/runner/sc_yaml.h), so the observability tests can read the
 * Prometheus rule and test files with jq. Exit 1 with the reader's message (line and
 * column) for YAML it refuses.
 *
 *   obs_yaml2json FILE
 */
#include <jansson.h>
#include <stdio.h>

#include "cm_buf.h"
#include "cm_err.h"
#include "sc_yaml.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: obs_yaml2json FILE\n");
        return 2;
    }
    char err[CM_ERR_LEN] = "";
    cm_buf_t b;
    cm_buf_init(&b, 16u << 20);
    json_t *doc = NULL;
    cm_err_t rc = cm_buf_read_file(&b, argv[1], err);
    if (!rc)
        rc = sc_yaml_parse(b.data ? b.data : "", b.len, &doc, err);
    if (!rc && json_dumpf(doc, stdout, JSON_COMPACT) != 0)
        rc = CM_EIO;
    if (!rc && puts("") == EOF)
        rc = CM_EIO;
    if (rc)
        fprintf(stderr, "obs_yaml2json: %s: %s\n", argv[1], err[0] ? err : cm_strerror(rc));
    json_decref(doc);
    cm_buf_free(&b);
    return rc ? 1 : 0;
}
