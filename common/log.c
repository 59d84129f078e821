/* SPDX-License-Identifier: Apache-2.0 */
/* Logging: one line per message, written with a single fprintf so lines
 * from different threads do not interleave; see log.h. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static enum log_level cur_level = LOG_INFO;
static char log_name[64] = "msce";
static int journal;	    /* stderr is the journal: priority prefixes */
static char log_path[4096]; /* log_open_file's, for log_reopen */

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
static const char *const level_lower[] = {"error", "warn", "info", "debug"};
/* syslog priorities: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG */
static const int level_prio[] = {3, 4, 6, 7};

static pthread_mutex_t recent_lock = PTHREAD_MUTEX_INITIALIZER;
static struct log_entry recent[LOG_RECENT_MAX];
static size_t recent_next, recent_count;

void log_set_level(enum log_level level)
{
	cur_level = level;
}
enum log_level log_get_level(void)
{
	return cur_level;
}

int log_level_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, level_lower[i]) == 0)
			return i;
	return -1;
}

const char *log_level_name(enum log_level level)
{
	return (unsigned)level < 4 ? level_lower[level] : "?";
}

void log_set_name(const char *name)
{
	snprintf(log_name, sizeof log_name, "%s", name);
}

int log_detect_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	/* systemd's advice: only if stderr is still that stream. */
	journal = js != NULL && sscanf(js, "%llu:%llu", &dev, &ino) == 2 &&
		  fstat(STDERR_FILENO, &st) == 0 &&
		  (unsigned long long)st.st_dev == dev &&
		  (unsigned long long)st.st_ino == ino;
	return journal;
}

static int point_stderr_at(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

	if (fd < 0)
		return -1;
	fflush(stderr);
	if (dup2(fd, STDERR_FILENO) < 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	close(fd);
	return 0;
}

int log_open_file(const char *path)
{
	if (strlen(path) >= sizeof log_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (point_stderr_at(path) != 0)
		return -1;
	snprintf(log_path, sizeof log_path, "%s", path);
	journal = 0;
	return 0;
}

int log_reopen(void)
{
	return log_path[0] ? point_stderr_at(log_path) : 0;
}

static void remember(enum log_level level, uint64_t ms, const char *text)
{
	pthread_mutex_lock(&recent_lock);
	recent[recent_next].time_ms = ms;
	recent[recent_next].level = level;
	/* Cut long lines: the page shows the start. */
	size_t n = strnlen(text, LOG_RECENT_TEXT - 1);
	memcpy(recent[recent_next].text, text, n);
	recent[recent_next].text[n] = '\0';
	recent_next = (recent_next + 1) % LOG_RECENT_MAX;
	if (recent_count < LOG_RECENT_MAX)
		recent_count++;
	pthread_mutex_unlock(&recent_lock);
}

size_t log_recent(struct log_entry *out, size_t max)
{
	size_t n;

	pthread_mutex_lock(&recent_lock);
	n = recent_count < max ? recent_count : max;
	for (size_t i = 0; i < n; i++)
		out[i] = recent[(recent_next + LOG_RECENT_MAX - 1 - i) %
				LOG_RECENT_MAX];
	pthread_mutex_unlock(&recent_lock);
	return n;
}

/* Control bytes as \xNN: messages carry what peers and clients sent
 * (names, refusal reasons), which must not start a line of their own or
 * drive a terminal. */
static void escape_controls(const char *in, char *out, size_t cap)
{
	size_t o = 0;

	for (; *in != '\0' && o + 5 < cap; in++) {
		unsigned char ch = (unsigned char)*in;
		if (ch < 0x20 || ch == 0x7f)
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", ch);
		else
			out[o++] = (char)ch;
	}
	out[o] = '\0';
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char raw[1024], text[1024];
	char stamp[32];
	struct timespec ts;
	struct tm tm;
	va_list ap;

	if (level > cur_level)
		return;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof raw, fmt, ap);
	va_end(ap);
	escape_controls(raw, text, sizeof text);
	clock_gettime(CLOCK_REALTIME, &ts);
	if (level <= LOG_WARN)
		remember(level,
			 (uint64_t)ts.tv_sec * 1000 +
			     (uint64_t)ts.tv_nsec / 1000000,
			 text);
	if (journal) {
		/* The journal stamps the time and knows the unit. */
		fprintf(stderr, "<%d>%s\n", level_prio[level], text);
		return;
	}
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ldZ %s %s %s\n", stamp, ts.tv_nsec / 1000000,
		log_name, level_names[level], text);
}
