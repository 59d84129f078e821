/* SPDX-License-Identifier: Apache-2.0 */
/* Levelled logging to stderr, one line per message:
 *
 *   2026-11-26T05:02:44.123Z shekou WARN text    (a terminal, a file)
 *   <4>text                                      (under journald)
 *
 * Under systemd with stderr connected to the journal (JOURNAL_STREAM
 * names stderr) each line starts with its syslog priority instead of a
 * timestamp, so the journal files errors as errors. log_open_file points
 * stderr at a file (msced --log-file), and log_reopen opens it again
 * after a rotation (SIGHUP). The last warnings and errors are also kept
 * in memory for the status page (log_recent). */
#ifndef MSCE_LOG_H
#define MSCE_LOG_H

#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Messages above level are dropped. Default LOG_INFO. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "error|warn|info|debug"; returns -1 if unknown. */
int log_level_parse(const char *s);
/* "error", ... for a level. */
const char *log_level_name(enum log_level level);
/* Name printed on each line (the node name); copied. */
void log_set_name(const char *name);

/* Looks at JOURNAL_STREAM: returns 1 (and uses priority prefixes) when
 * stderr is the journal. Called once at start; a file opened later with
 * log_open_file turns the prefixes off again. */
int log_detect_journal(void);
/* Appends stderr to path (created 0640). The path is kept for
 * log_reopen. 0 or -1 with errno. */
int log_open_file(const char *path);
/* Opens the log file again (after logrotate moved it); 0 if there is no
 * file or it worked, -1 with errno. */
int log_reopen(void);

void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/* The last warnings and errors, kept in memory. */
#define LOG_RECENT_MAX 32
#define LOG_RECENT_TEXT 240
struct log_entry {
	uint64_t time_ms; /* unix ms */
	enum log_level level;
	char text[LOG_RECENT_TEXT];
};
/* Copies at most max entries, newest first; returns how many. */
size_t log_recent(struct log_entry *out, size_t max);

#endif
