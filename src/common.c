/* SPDX-License-Identifier: MIT */
#include "common.h"

#include <string.h>
#include <time.h>

const char *bl_strerror(int rc)
{
    switch (rc) {
    case BL_OK:
        return "ok";
    case BL_ENOMEM:
        return "out of memory";
    case BL_EINVAL:
        return "malformed";
    case BL_ETRUNC:
        return "truncated";
    case BL_ETOOBIG:
        return "too big";
    case BL_EIO:
        return "I/O error";
    case BL_EAGAIN:
        return "try again";
    case BL_ESTATE:
        return "wrong state";
    case BL_EAUTH:
        return "authentication failed";
    case BL_ESTALE:
        return "stale";
    case BL_EREPLAY:
        return "replayed";
    case BL_ENOTFOUND:
        return "not found";
    case BL_EVERSION:
        return "unsupported version";
    case BL_EPERM:
        return "not allowed";
    default:
        return "unknown error";
    }
}

int64_t bl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t bl_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool bl_site_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > BL_SITE_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}
