/* SPDX-License-Identifier: MIT */
#include "secret.h"

#include <math.h>
#include <string.h>

#include <glib.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

int secret_generate(char *out, size_t outlen)
{
    unsigned char raw[SECRET_NEW_BYTES];
    if (!out || outlen < SECRET_NEW_LEN + 1)
        return BL_EINVAL;
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return BL_EIO;
    gchar *b = g_base64_encode(raw, sizeof(raw));
    OPENSSL_cleanse(raw, sizeof(raw));
    size_t n = 0;
    /* base64url (RFC 4648 5): nothing a config line or a shell would mangle. */
    for (const char *p = b; *p && *p != '=' && n < SECRET_NEW_LEN; p++)
        out[n++] = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    out[n] = '\0';
    OPENSSL_cleanse(b, strlen(b));
    g_free(b);
    return n == SECRET_NEW_LEN ? 0 : BL_EIO;
}

static bool all_of(const char *s, const char *set)
{
    return s[strspn(s, set)] == '\0';
}

static double alphabet_bits(const char *s)
{
    static const char digits[] = "0123456789";
    static const char lower[] = "abcdefghijklmnopqrstuvwxyz";
    static const char upper[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    if (all_of(s, digits))
        return log2(10);
    if (all_of(s, "0123456789abcdef") || all_of(s, "0123456789ABCDEF"))
        return 4;
    bool d = false, l = false, u = false, other = false, high = false;
    bool b64 = true;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        d |= strchr(digits, *p) != NULL;
        l |= strchr(lower, *p) != NULL;
        u |= strchr(upper, *p) != NULL;
        high |= *p >= 0x80;
        bool alnum = g_ascii_isalnum(*p);
        other |= *p < 0x80 && !alnum;
        b64 &= alnum || strchr("+/=-_", *p) != NULL;
    }
    if (b64)
        return 6;
    double n = (d ? 10 : 0) + (l ? 26 : 0) + (u ? 26 : 0) + (other ? 33 : 0) + (high ? 128 : 0);
    return log2(n);
}

unsigned secret_estimate_bits(const char *s)
{
    if (!s || !*s)
        return 0;
    bool seen[256] = {false};
    unsigned distinct = 0;
    size_t len = strlen(s);
    for (size_t i = 0; i < len; i++)
        if (!seen[(unsigned char)s[i]]) {
            seen[(unsigned char)s[i]] = true;
            distinct++;
        }
    double per = distinct < 8 ? log2(distinct) : alphabet_bits(s);
    if (distinct < 8 && per > alphabet_bits(s))
        per = alphabet_bits(s);
    double bits = per * (double)len;
    return bits > 100000 ? 100000 : (unsigned)bits;
}
