/* SPDX-License-Identifier: MIT */
/* main.c - the command line's dispatch: the first word names the command (cli.h). */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *what;
} commands[] = {
    {"init", cli_init, "create this site's identity; print its pairing line"},
    {"run", cli_run, "run this site (the daemon)"},
    {"status", cli_status, "what the running daemon is doing, peer by peer (--json)"},
    {"ping", cli_ping, "a round trip to a peer over its open link"},
    {"reload", cli_reload, "make the running daemon read its config again"},
    {"peer", cli_peer, "add (from a pairing line), list, remove or forget peers"},
    {"check", cli_check, "check a config and identity (--net: the network too)"},
    {"secret", cli_secret, "make a new network secret (256 random bits) for [signal]"},
    {"web", cli_web, "serve the page that makes a browser a peer, on localhost"},
};

static void usage(FILE *f)
{
    fputs("usage: brokerless COMMAND [OPTIONS]\n"
          "\n"
          "Keeps the MQTT brokers of several sites in sync over direct, encrypted\n"
          "peer-to-peer links (ICE + DTLS + SCTP data channel).\n"
          "\n"
          "commands:\n",
          f);
    for (size_t i = 0; i < BL_ARRAY_LEN(commands); i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].what);
    fputs("  version  print the version\n"
          "  help     this text\n"
          "\n"
          "'brokerless COMMAND --help' describes each command's options.\n" CLI_SEE_ALSO "\n",
          f);
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "help";
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("brokerless %s\n", BL_VERSION);
        return 0;
    }
    for (size_t i = 0; i < BL_ARRAY_LEN(commands); i++)
        if (!strcmp(cmd, commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "brokerless: unknown command \"%s\"\n\n", cmd);
    usage(stderr);
    return 2;
}
