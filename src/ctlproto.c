/* SPDX-License-Identifier: MIT */
/* ctlproto.c - see ctlproto.h. */
#include "ctlproto.h"

#include <stdio.h>
#include <string.h>

#include <glib.h>

static const struct {
    const char *word;
    ctl_cmd_t cmd;
    bool peer;
} commands[] = {{"status", CTL_STATUS, false},
                {"ping", CTL_PING, true},
                {"reload", CTL_RELOAD, false},
                {"forget", CTL_FORGET, true}};

int ctlproto_parse(const uint8_t *buf, size_t len, ctl_req_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (len >= CTL_MAX_REQUEST) {
        snprintf(err, errlen, "request longer than %d bytes", CTL_MAX_REQUEST - 1);
        return BL_ETOOBIG;
    }
    if (len && buf[len - 1] == '\r')
        len--;
    for (size_t i = 0; i < len; i++)
        if (buf[i] < 0x20 || buf[i] > 0x7e) {
            snprintf(err, errlen, "byte 0x%02x at offset %zu: a request is printable ASCII", buf[i],
                     i);
            return BL_EINVAL;
        }
    char line[CTL_MAX_REQUEST];
    memcpy(line, buf, len);
    line[len] = '\0';
    char *word = line, *arg = strchr(line, ' ');
    if (arg)
        *arg++ = '\0';
    for (size_t i = 0; i < BL_ARRAY_LEN(commands); i++) {
        if (strcmp(word, commands[i].word) != 0)
            continue;
        if (commands[i].peer && !(arg && bl_site_name_valid(arg))) {
            snprintf(err, errlen, "%s needs a peer name (1 to 64 of A-Z a-z 0-9 . _ -)", word);
            return BL_EINVAL;
        }
        if (!commands[i].peer && arg) {
            snprintf(err, errlen, "%s takes no argument", word);
            return BL_EINVAL;
        }
        out->cmd = commands[i].cmd;
        if (arg)
            snprintf(out->peer, sizeof(out->peer), "%s", arg);
        return 0;
    }
    snprintf(err, errlen, "unknown command \"%.32s\" (status, ping PEER, reload, forget PEER)",
             word);
    return BL_EINVAL;
}

char *ctlproto_request(const ctl_req_t *req)
{
    for (size_t i = 0; i < BL_ARRAY_LEN(commands); i++)
        if (commands[i].cmd == req->cmd)
            return commands[i].peer ? g_strdup_printf("%s %s\n", commands[i].word, req->peer)
                                    : g_strdup_printf("%s\n", commands[i].word);
    return NULL;
}

static char *line_of(cJSON *o)
{
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    char *line = g_strdup_printf("%s\n", text ? text : "{\"ok\":false}");
    cJSON_free(text);
    return line;
}

char *ctlproto_ok(cJSON *body)
{
    cJSON *o = body && cJSON_IsObject(body) ? body : cJSON_CreateObject();
    if (body && o != body)
        cJSON_AddItemToObject(o, "result", body);
    cJSON_AddBoolToObject(o, "ok", true);
    return line_of(o);
}

char *ctlproto_error(const char *why)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ok", false);
    cJSON_AddStringToObject(o, "error", why);
    return line_of(o);
}

int ctlproto_socket_path(const char *state_dir, char *out, size_t len)
{
    size_t max = BL_MIN(len, 108);
    int n = snprintf(out, max, "%s/%s", state_dir, CTL_SOCKET_NAME);
    return n < 0 || (size_t)n >= max ? BL_ETOOBIG : 0;
}
