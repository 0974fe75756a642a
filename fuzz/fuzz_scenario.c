/* fuzz_scenario.c - the scenario loader (sc_scenario_parse) on any text, read both as a
 * JSON and as a YAML scenario file, as if it were scenarios/fuzz.json (relative paths in it
 * resolve against the repo root and scenarios/, as for a real file). A refusal must come
 * with a message naming the file. */
#include <string.h>
#include <unistd.h>

#include "cm_log.h"
#include "fuzz.h"
#include "sc_scenario.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    cm_log_min_level = CM_LOG_ERROR;
    /* An include may name any file: one that would wait for input (/dev/stdin) must end
     * at once. */
    if (!freopen("/dev/null", "r", stdin))
        abort();
    /* Includes, fixtures and gateway configs are looked up from the repo root. */
    if (chdir(BB_SOURCE_DIR) != 0) {
        perror(BB_SOURCE_DIR);
        abort();
    }
    return 0;
}

static void load(const char *path, const uint8_t *data, size_t size)
{
    sc_scenario_t *sc = NULL;
    char err[SC_ERR_LEN] = "";
    cm_err_t rc = sc_scenario_parse(path, (const char *)data, size, &sc, err);
    if (rc == CM_OK) {
        FUZZ_CHECK(sc && sc->nsteps > 0, "a scenario without steps");
        FUZZ_CHECK(sc_steps_expectations(sc->steps, sc->nsteps) > 0, "no expectation");
    } else {
        FUZZ_CHECK(!sc, "a scenario handed out with answer %d", rc);
        FUZZ_CHECK(!strncmp(err, path, strlen(path)), "the message does not name the file: %s",
                   err);
    }
    sc_scenario_free(&sc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready)
        ready = LLVMFuzzerInitialize(NULL, NULL) == 0;
    load("scenarios/fuzz.json", data, size);
    load("scenarios/fuzz.yaml", data, size);
    return 0;
}
