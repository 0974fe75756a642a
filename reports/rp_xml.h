/* rp_xml.h - escaping text for XML 1.0 documents (JUnit now, the HTML report later).
 *
 * XML 1.0 cannot carry most control characters at all, not even as &#1; references, and a
 * report is built from whatever a failing program printed. So besides the five entities,
 * bytes that XML cannot hold (C0 controls other than tab/LF/CR, invalid UTF-8, U+FFFE and
 * U+FFFF) are written as the visible text "\xNN", one per byte. Thread-safe (no state).
 */
#ifndef RP_XML_H
#define RP_XML_H

#include "cm_buf.h"
#include "cm_err.h"

typedef enum {
    RP_XML_TEXT = 0, /* element content: & < > and CR escaped, quotes left readable */
    RP_XML_ATTR = 1, /* attribute values: also " ' tab and LF (parsers fold tab/LF to spaces) */
} rp_xml_mode_t;

/* Appends s (NUL-terminated, any bytes) escaped to b. On error b may hold part of it. */
cm_err_t rp_xml_escape(cm_buf_t *b, const char *s, rp_xml_mode_t mode) CM_WUR;

#endif
