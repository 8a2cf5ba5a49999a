/* SPDX-License-Identifier: MIT */
/* ctlclient.c - see ctlclient.h. */
#include "ctlclient.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib.h>

#define ANSWER_MAX (16u << 20)

static int connect_to(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(a.sun_path)) {
        snprintf(err, errlen, "%s: path too long for a unix socket", path);
        return BL_EINVAL;
    }
    memcpy(a.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return BL_EIO;
    }
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
        return fd;
    int e = errno;
    close(fd);
    if (e == ENOENT || e == ECONNREFUSED) {
        snprintf(err, errlen, "no daemon answers on %s (is brokerless running with this config?)",
                 path);
        return BL_ENOTFOUND;
    }
    if (e == EACCES || e == EPERM) {
        snprintf(err, errlen, "%s: %s (the control socket serves only the daemon's user and root)",
                 path, strerror(e));
        return BL_EPERM;
    }
    snprintf(err, errlen, "%s: %s", path, strerror(e));
    return BL_EIO;
}

int ctlclient_request(const char *path, const ctl_req_t *req, int timeout_ms, cJSON **answer,
                      char *err, size_t errlen)
{
    *answer = NULL;
    int fd = connect_to(path, err, errlen);
    if (fd < 0)
        return fd;
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    char *line = ctlproto_request(req);
    size_t n = strlen(line);
    bool sent = send(fd, line, n, MSG_NOSIGNAL) == (ssize_t)n;
    g_free(line);
    GString *in = g_string_new(NULL);
    char buf[4096];
    ssize_t r = 0;
    while (sent && in->len < ANSWER_MAX && !memchr(in->str, '\n', in->len) &&
           (r = recv(fd, buf, sizeof(buf), 0)) > 0)
        g_string_append_len(in, buf, r);
    int e = errno;
    close(fd);
    int rc = 0;
    if (!sent || !memchr(in->str, '\n', in->len)) {
        snprintf(err, errlen, "%s: %s", path,
                 !sent                                        ? "cannot send the request"
                 : r < 0 && (e == EAGAIN || e == EWOULDBLOCK) ? "no answer in time"
                                                              : "the answer ended early");
        rc = BL_EIO;
    } else if (!(*answer = cJSON_Parse(in->str)) || !cJSON_IsObject(*answer)) {
        cJSON_Delete(*answer);
        *answer = NULL;
        snprintf(err, errlen, "%s: the answer is not JSON", path);
        rc = BL_EIO;
    }
    g_string_free(in, TRUE);
    return rc;
}
