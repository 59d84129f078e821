/* Bounded lengths. Every name and value that enters the system is checked
 * against these before it is stored or allocated for. */
#ifndef MSCE_BOUNDS_H
#define MSCE_BOUNDS_H

#define MSCE_MAX_COLLECTION 32    /* bytes, [a-z_][a-z0-9_]* */
#define MSCE_MAX_KEY 256          /* bytes of UTF-8 */
#define MSCE_MAX_FIELD_NAME 128   /* bytes of UTF-8 */
#define MSCE_MAX_VALUE 65536      /* bytes */
#define MSCE_MAX_FIELDS 256       /* fields in one change */
#define MSCE_MAX_CHANGE (1u << 20) /* encoded bytes of one change */
/* A record, as a local write would leave it: its visible fields and their
 * names and values in bytes. Concurrent writes at several centers may
 * merge into a larger record; every path that carries records copes. */
#define MSCE_MAX_RECORD_FIELDS 1024
#define MSCE_MAX_RECORD (1u << 20)
#define MSCE_MAX_MESSAGE (4u << 20) /* encoded bytes of one wire message */
#define MSCE_MAX_NODES 64          /* nodes in one cluster */
#define MSCE_MAX_ORIGINS 128       /* origins (writers) in one vector */

#endif
