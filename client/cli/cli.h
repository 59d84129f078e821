/* Between the msce CLI's files: connecting, printing, masking. */
#ifndef MSCE_CLI_H
#define MSCE_CLI_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "client_internal.h"

/* --reveal was given (and the node said this client is admin). */
extern int cli_reveal;

/* Connects as -c or --node say, sets --purpose, checks --reveal; exits 2
 * on failure. */
msce_client *connect_or_die(void);
/* client_call, exiting 2 when the node cannot be reached. */
Msce__ClientResponse *call_or_die(msce_client *c, Msce__ClientRequest *req);
void print_json(cJSON *j);
/* {"collection", "key", "fields": {name: {"value", "hlc", "origin"}}},
 * masked unless --reveal. */
cJSON *record_json(const Msce__Record *rec);
/* {name: value}, masked unless --reveal. */
cJSON *record_values_json(const Msce__Record *rec);

/* What to show, masked unless --reveal: a copy (free it). */
char *cli_value(const char *coll, const char *field, const void *value,
		size_t len);
char *cli_key(const char *coll, const char *key);

/* privacy.c */
int cmd_audit(int argc, char **argv);
int cmd_person(int argc, char **argv);
int cmd_erase(int argc, char **argv);
int cmd_retention(int argc, char **argv);
int cmd_watch(int argc, char **argv);

#endif
