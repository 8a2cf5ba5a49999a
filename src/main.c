/* SPDX-License-Identifier: MIT */
/* main.c - the command line: parse, load, hand off. No logic lives here. */
#include <stdio.h>
#include <string.h>

#include "common.h"

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "version") == 0) {
        printf("brokerless %s\n", BL_VERSION);
        return 0;
    }
    fprintf(stderr, "usage: brokerless version\n");
    return 2;
}
