/* fuzz_log_mask.c - log masking (cm_log_mask): the output stays within cap and is
 * terminated whatever cap is, and nothing that cm_log.h promises to mask is left in the
 * output: no e-mail address with more than its first character before the '@', and no
 * provider secret token after its prefix. Input: a cap byte, then the text. */
#include <ctype.h>
#include <string.h>

#include "cm_log.h"
#include "fuzz.h"

/* The definitions cm_log.h states, written again here as the reference. */
static int email_char(int c)
{
    return isalnum(c) || c == '.' || c == '_' || c == '-' || c == '+' || c == '%';
}

static int key_char(int c)
{
    return isalnum(c) || c == '_' || c == '-' || c == '+' || c == '/' || c == '=' || c == '.';
}

static const char *const prefixes[] = {"sk_",  "rk_",  "pk_live_", "whsec_",
                                       "key_", "cal_", "Bearer ",  NULL};

/* NULL when out holds nothing left to mask, else where the leak starts. */
static const char *leak(const char *out)
{
    size_t n = strlen(out);
    for (size_t i = 0; i < n; i++) {
        /* An address keeps one character before "***@": two address characters right
         * before an '@' that a domain follows are an address shown. */
        if (out[i] == '@' && i >= 2 && i + 1 < n && isalnum((unsigned char)out[i + 1]) &&
            email_char((unsigned char)out[i - 1]) && email_char((unsigned char)out[i - 2]))
            return out + i - 2;
        if (i > 0 && isalnum((unsigned char)out[i - 1]))
            continue;
        for (size_t k = 0; prefixes[k]; k++) {
            size_t pl = strlen(prefixes[k]);
            if (!strncmp(out + i, prefixes[k], pl) && key_char((unsigned char)out[i + pl]))
                return out + i;
        }
    }
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t small = data[0];
    char *in = fuzz_strndup(data + 1, size - 1);
    size_t n = strlen(in);

    /* An output buffer of exactly cap bytes, so ASan sees a write past it. */
    char *out = malloc(small ? small : 1);
    if (!out)
        abort();
    cm_log_mask(in, out, small);
    if (small)
        FUZZ_CHECK(memchr(out, '\0', small), "not terminated within %zu bytes", small);
    free(out);

    /* Room for the largest growth ("a@b" becomes "a***@b"). */
    size_t cap = 4 * n + 16;
    out = malloc(cap);
    if (!out)
        abort();
    cm_log_mask(in, out, cap);
    FUZZ_CHECK(strlen(out) < cap - 1, "cut short at %zu bytes", cap);
    const char *at = leak(out);
    FUZZ_CHECK(!at, "[%s] masked to [%s] shows [%.24s]", in, out, at);
    free(out);
    free(in);
    return 0;
}
