/* SPDX-License-Identifier: MIT */
/* cli_peer.c - `brokerless peer add|list|remove|forget`: the [peer] sections of a config
 * file, edited as text (peerline.h), checked by loading the result before it replaces
 * the file, and the running daemon told to reload. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "peerline.h"
#include "queue.h"

static const char *const usage =
    "usage: brokerless peer add [-c FILE] [--rule RULE]... [--no-reload] LINE\n"
    "       brokerless peer list [-c FILE]\n"
    "       brokerless peer remove [-c FILE] [--no-reload] NAME\n"
    "       brokerless peer forget [-c FILE] NAME\n"
    "\n"
    "add     turns the pairing line another site's `brokerless init` printed into a [peer]\n"
    "        section of FILE (default " CLI_DEFAULT_CONFIG "), then reloads the\n"
    "        daemon if it runs. --rule RULE (repeatable) writes topic = RULE lines instead of\n"
    "        the narrow default (this site's NAME/# out, the peer's NAME/# in).\n"
    "list    the peers of FILE, with their link state when the daemon runs.\n"
    "remove  deletes the [peer NAME] section and reloads: the link closes, what is queued\n"
    "        for the peer stays on disk.\n"
    "forget  drops what is queued for a peer no longer in FILE.\n"
    "\n" CLI_SEE_ALSO "\n";

/* Replace path with text, keeping its mode and owner; the new text is checked first. */
static int write_config(const char *path, const char *text)
{
    config_t c;
    char err[1024];
    if (config_load_data(text, strlen(text), path, &c, err, sizeof(err))) {
        fprintf(stderr, "brokerless peer: the result would not load, %s is unchanged: %s\n", path,
                err);
        return 1;
    }
    config_free(&c);
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "brokerless peer: %s: %s\n", path, strerror(errno));
        return 1;
    }
    char *tmp = g_strdup_printf("%s.XXXXXX", path);
    int fd = g_mkstemp_full(tmp, O_WRONLY | O_CLOEXEC, st.st_mode & 07777);
    size_t n = strlen(text);
    bool ok = fd >= 0 && fchmod(fd, st.st_mode & 07777) == 0 &&
              (geteuid() != 0 || fchown(fd, st.st_uid, st.st_gid) == 0) &&
              write(fd, text, n) == (ssize_t)n && fsync(fd) == 0;
    int e = errno;
    if (fd >= 0)
        close(fd);
    if (ok && rename(tmp, path) != 0) {
        e = errno;
        ok = false;
    }
    if (!ok) {
        fprintf(stderr, "brokerless peer: cannot write %s: %s\n", path, strerror(e));
        if (fd >= 0)
            unlink(tmp);
    }
    g_free(tmp);
    return ok ? 0 : 1;
}

/* Tell the daemon of path's config to read it again, if one runs. */
static int reload(const char *path)
{
    config_t c;
    if (cli_load("peer", path, &c))
        return 1;
    cJSON *a = NULL;
    char err[512];
    int rc = cli_ask(&c, CTL_RELOAD, NULL, 10000, &a, err, sizeof(err));
    config_free(&c);
    if (rc == BL_ENOTFOUND) {
        printf("no daemon runs with %s: the change applies when it starts\n", path);
        return 0;
    }
    const char *why = rc ? err : cli_refusal(a);
    if (why)
        fprintf(stderr, "brokerless peer: the daemon did not reload: %s\n", why);
    else
        printf("the daemon reloaded %s\n", path);
    cJSON_Delete(a);
    return why ? 1 : 0;
}

static int peer_add(const char *path, char **rules, bool no_reload, int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "brokerless peer add: give the line `brokerless init` printed\n");
        return 2;
    }
    char *joined = g_strjoinv(" ", argv + 1); /* the line, quoted or not */
    peerline_t pl;
    char err[512];
    int rc = peerline_parse(joined, &pl, err, sizeof(err));
    g_free(joined);
    if (rc) {
        fprintf(stderr, "brokerless peer add: %s\n", err);
        return 2;
    }
    config_t c;
    if (cli_load("peer add", path, &c))
        return 1;
    rc = 0;
    if (!strcmp(pl.name, c.site_name)) {
        fprintf(stderr, "brokerless peer add: %s is this site's own line\n", pl.name);
        rc = 1;
    } else if (config_find_peer(&c, pl.name)) {
        fprintf(stderr, "brokerless peer add: [peer %s] is already in %s (peer remove it first)\n",
                pl.name, path);
        rc = 1;
    }
    char *ours = config_signal_url(&c);
    if (!rc && pl.signal[0] && strcmp(pl.signal, ours) != 0)
        printf("note: %s signals through %s, this site through %s: both sites need the same "
               "signalling broker and network secret\n",
               pl.name, pl.signal, ours);
    g_free(ours);
    char *section = rc ? NULL
                       : peerline_section(&pl, c.site_name, (const char *const *)rules,
                                          rules ? g_strv_length(rules) : 0);
    config_free(&c);
    if (rc)
        return rc;
    gchar *text = NULL;
    GError *ge = NULL;
    if (!g_file_get_contents(path, &text, NULL, &ge)) {
        fprintf(stderr, "brokerless peer add: %s\n", ge->message);
        g_error_free(ge);
        g_free(section);
        return 1;
    }
    char *out = peerline_append(text, section);
    rc = write_config(path, out);
    if (!rc)
        printf("added [peer %s] to %s:\n%s", pl.name, path, section);
    explicit_bzero(text, strlen(text));
    explicit_bzero(out, strlen(out));
    g_free(text);
    g_free(out);
    g_free(section);
    return rc || no_reload ? rc : reload(path);
}

static int peer_remove(const char *path, bool no_reload, int argc, char **argv)
{
    if (argc != 2 || !bl_site_name_valid(argv[1])) {
        fprintf(stderr, "brokerless peer remove: give one peer name\n");
        return 2;
    }
    gchar *text = NULL;
    GError *ge = NULL;
    if (!g_file_get_contents(path, &text, NULL, &ge)) {
        fprintf(stderr, "brokerless peer remove: %s\n", ge->message);
        g_error_free(ge);
        return 1;
    }
    char *out = peerline_remove(text, argv[1]);
    int rc = 1;
    if (!out)
        fprintf(stderr, "brokerless peer remove: no [peer %s] in %s\n", argv[1], path);
    else if (!(rc = write_config(path, out)))
        printf("removed [peer %s] from %s; what is queued for it stays on disk until: brokerless "
               "peer forget %s\n",
               argv[1], path, argv[1]);
    explicit_bzero(text, strlen(text));
    g_free(text);
    if (out)
        explicit_bzero(out, strlen(out));
    g_free(out);
    return rc || no_reload ? rc : reload(path);
}

static int peer_list(const char *path)
{
    config_t c;
    if (cli_load("peer list", path, &c))
        return 1;
    cJSON *a = NULL;
    char err[512];
    bool running =
        cli_ask(&c, CTL_STATUS, NULL, 5000, &a, err, sizeof(err)) == 0 && !cli_refusal(a);
    const cJSON *peers = running ? cJSON_GetObjectItemCaseSensitive(a, "peers") : NULL;
    printf("%-20s %-11s %-24s %s\n", "PEER", "STATE", "FINGERPRINT", "TOPIC RULES");
    for (size_t i = 0; i < c.n_peers; i++) {
        const config_peer_t *p = &c.peers[i];
        const char *state = running ? "not running" : "-";
        const cJSON *e;
        cJSON_ArrayForEach(e, peers)
        {
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "name");
            const cJSON *s = cJSON_GetObjectItemCaseSensitive(e, "state");
            if (cJSON_IsString(n) && !strcmp(n->valuestring, p->name) && cJSON_IsString(s))
                state = s->valuestring;
        }
        GString *r = g_string_new(NULL);
        for (size_t k = 0; k < p->n_rules; k++) {
            const route_rule_t *ru = &p->rules[k];
            g_string_append_printf(r, "%s%s %s %d", k ? "; " : "", ru->pattern,
                                   ru->dir == ROUTE_IN    ? "in"
                                   : ru->dir == ROUTE_OUT ? "out"
                                                          : "both",
                                   ru->qos);
        }
        printf("%-20s %-11s %.11s...%.11s %s\n", p->name, state, p->fingerprint,
               p->fingerprint + 84, r->str);
        g_string_free(r, TRUE);
    }
    if (!c.n_peers)
        printf("(none: add one with brokerless peer add -c %s LINE)\n", path);
    cJSON_Delete(a);
    config_free(&c);
    return 0;
}

/* Without a daemon, straight in the database. */
static int forget_offline(const config_t *c, const char *peer)
{
    char *db = g_build_filename(c->state_dir, "queue.db", NULL);
    queue_t *q = NULL;
    size_t n = 0;
    int rc = access(db, F_OK) != 0 ? BL_ENOTFOUND : queue_open(db, &q);
    if (!rc) {
        n = queue_depth(q, peer);
        rc = queue_begin(q);
        if (!rc)
            rc = queue_ack_range(q, peer, 1, UINT64_MAX);
        if (!rc)
            rc = queue_commit(q);
        queue_close(q);
        static const char *const files[] = {"queue.db", "queue.db-wal", "queue.db-shm"};
        cli_give_to_dir_owner(c->state_dir, files, BL_ARRAY_LEN(files));
    }
    if (rc)
        fprintf(stderr, "brokerless peer forget: %s: %s\n", db, bl_strerror(rc));
    else
        printf("dropped %zu messages queued for %s\n", n, peer);
    g_free(db);
    return rc ? 1 : 0;
}

static int peer_forget(const char *path, int argc, char **argv)
{
    if (argc != 2 || !bl_site_name_valid(argv[1])) {
        fprintf(stderr, "brokerless peer forget: give one peer name\n");
        return 2;
    }
    config_t c;
    if (cli_load("peer forget", path, &c))
        return 1;
    int rc = 1;
    cJSON *a = NULL;
    char err[512];
    const char *why;
    if (config_find_peer(&c, argv[1])) {
        fprintf(stderr, "brokerless peer forget: %s is in %s: remove it first (peer remove %s)\n",
                argv[1], path, argv[1]);
    } else if ((rc = cli_ask(&c, CTL_FORGET, argv[1], 10000, &a, err, sizeof(err))) ==
               BL_ENOTFOUND) {
        rc = forget_offline(&c, argv[1]);
    } else if (rc) {
        fprintf(stderr, "brokerless peer forget: %s\n", err);
        rc = 1;
    } else if ((why = cli_refusal(a))) {
        fprintf(stderr, "brokerless peer forget: %s\n", why);
        rc = 1;
    } else {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(a, "dropped");
        printf("dropped %.0f messages queued for %s\n", cJSON_IsNumber(d) ? d->valuedouble : 0.0,
               argv[1]);
    }
    cJSON_Delete(a);
    config_free(&c);
    return rc;
}

int cli_peer(int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : "";
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
        fputs(usage, stdout);
        return 0;
    }
    char *conf = NULL, **rules = NULL;
    gboolean no_reload = FALSE;
    GOptionEntry extra[] = {
        {"rule", 'r', 0, G_OPTION_ARG_STRING_ARRAY, &rules,
         "add: a topic rule for the new peer (repeatable)", "RULE"},
        {"no-reload", 0, 0, G_OPTION_ARG_NONE, &no_reload, "do not ask the daemon to reload", NULL},
        {NULL, 0, 0, 0, NULL, NULL, NULL}};
    int rc = cli_parse_config("add|list|remove|forget ...", usage, extra, &conf, &argc, &argv);
    if (rc)
        ;
    else if (!strcmp(sub, "add"))
        rc = peer_add(conf, rules, no_reload, argc - 1, argv + 1);
    else if (!strcmp(sub, "list") && argc == 2)
        rc = peer_list(conf);
    else if (!strcmp(sub, "remove"))
        rc = peer_remove(conf, no_reload, argc - 1, argv + 1);
    else if (!strcmp(sub, "forget"))
        rc = peer_forget(conf, argc - 1, argv + 1);
    else {
        fputs(usage, stderr);
        rc = 2;
    }
    g_free(conf);
    g_strfreev(rules);
    return rc;
}
