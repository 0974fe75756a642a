/* rp_xml.c - XML 1.0 escaping with a visible fallback for bytes XML cannot carry. */
#include "rp_xml.h"

#include <stdint.h>
#include <stdio.h>

/* Length of the valid UTF-8 sequence at p that XML 1.0 may carry, or 0 when the byte at p
 * starts no such sequence (overlong forms, surrogates, > U+10FFFF, U+FFFE/U+FFFF). */
static size_t xml_char_len(const unsigned char *p)
{
    uint32_t cp;
    size_t n;
    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xC2 && p[0] <= 0xDF) {
        n = 2;
        cp = p[0] & 0x1Fu;
    } else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
        n = 3;
        cp = p[0] & 0x0Fu;
    } else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
        n = 4;
        cp = p[0] & 0x07u;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        /* a NUL terminator fails this test too, so we never read past the string */
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3Fu);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0; /* overlong or out of range */
    if ((cp >= 0xD800 && cp <= 0xDFFF) || cp == 0xFFFE || cp == 0xFFFF)
        return 0;
    return n;
}

cm_err_t rp_xml_escape(cm_buf_t *b, const char *s, rp_xml_mode_t mode)
{
    cm_err_t rc = CM_OK;
    const unsigned char *p = (const unsigned char *)s;
    while (!rc && *p) {
        const char *ent = NULL;
        switch (*p) {
        case '&':
            ent = "&amp;";
            break;
        case '<':
            ent = "&lt;";
            break;
        case '>':
            ent = "&gt;";
            break;
        case '"':
            ent = mode == RP_XML_ATTR ? "&quot;" : NULL; /* content stays readable */
            break;
        case '\'':
            ent = mode == RP_XML_ATTR ? "&apos;" : NULL;
            break;
        case '\r':
            ent = "&#13;"; /* parsers turn a raw CR into LF */
            break;
        case '\t':
            ent = mode == RP_XML_ATTR ? "&#9;" : NULL;
            break;
        case '\n':
            ent = mode == RP_XML_ATTR ? "&#10;" : NULL;
            break;
        default:
            break;
        }
        if (ent) {
            rc = cm_buf_addstr(b, ent);
            p++;
            continue;
        }
        size_t n = (*p < 0x20 && *p != '\t' && *p != '\n') ? 0 : xml_char_len(p);
        if (n == 0) {
            char hex[8];
            snprintf(hex, sizeof hex, "\\x%02x", *p);
            rc = cm_buf_addstr(b, hex);
            p++;
        } else {
            rc = cm_buf_add(b, p, n);
            p += n;
        }
    }
    return rc;
}
