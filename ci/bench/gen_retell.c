/* gen_retell.c - writes N distinct, validly signed Retell call_analyzed webhooks for the
 * ingest benchmark, one per line: "<x-retell-signature>\t<body>". wrk's Lua cannot compute
 * HMACs, so the signatures are made here, just before the run (they stay valid for the
 * gateway's 5-minute window). Call ids are ID_PREFIX and 32 random letters and digits, like
 * Retell's own: ids that arrive in no order are what the store's indexes really get (numbered
 * ids append at the end of every index and made the intake look twice as fast). The draw is
 * seeded by the prefix, so a file is the same on every run.
 * Usage: gen_retell N API_KEY AGENT_ID [ID_PREFIX] > file */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_clock.h"
#include "cm_rand.h"
#include "cm_sig.h"

int main(int argc, char **argv)
{
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: gen_retell N API_KEY AGENT_ID [ID_PREFIX]\n");
        return 2;
    }
    long n = strtol(argv[1], NULL, 10);
    const char *prefix = argc == 5 ? argv[4] : "call_bench_";
    int64_t ts = cm_clock_now_ms();
    char body[1024], sig[CM_SIG_HDR_LEN], id[33];
    static const char alnum[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    cm_rand_t rng;
    uint64_t seed = 1469598103934665603u; /* FNV-1a of the prefix */
    for (const char *c = prefix; *c; c++)
        seed = (seed ^ (unsigned char)*c) * 1099511628211u;
    cm_rand_seed(&rng, seed);
    for (long i = 0; i < n; i++) {
        for (size_t k = 0; k < sizeof id - 1; k++)
            id[k] = alnum[cm_rand_below(&rng, sizeof alnum - 1)];
        id[sizeof id - 1] = '\0';
        /* About the size of a real call_analyzed without transcript (~600 bytes). */
        int len =
            snprintf(body, sizeof body,
                     "{\"event\":\"call_analyzed\",\"call\":{\"call_id\":\"%s%s\","
                     "\"agent_id\":\"%s\",\"agent_version\":1,\"call_status\":\"ended\","
                     "\"call_type\":\"phone_call\",\"direction\":\"inbound\",\"from_number\":"
                     "\"+14155550123\",\"to_number\":\"+14155550999\",\"start_timestamp\":%lld,"
                     "\"end_timestamp\":%lld,\"duration_ms\":84000,\"disconnection_reason\":"
                     "\"user_hangup\",\"call_analysis\":{\"call_summary\":\"The caller asked for "
                     "opening hours.\",\"in_voicemail\":false,\"user_sentiment\":\"Neutral\","
                     "\"call_successful\":true,\"custom_analysis_data\":{}}}}",
                     prefix, id, argv[3], (long long)ts - 90000, (long long)ts - 6000);
        if (cm_sig_retell_sign(argv[2], body, (size_t)len, ts, sig) != CM_OK)
            return 1;
        printf("%s\t%s\n", sig, body);
    }
    return 0;
}
