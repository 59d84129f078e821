/* SPDX-License-Identifier: Apache-2.0 */
/* sd_notify wiring; see systemd.h. */
#include "systemd.h"

#include <stdio.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "log.h"

static void notify(const char *what, const char *msg)
{
	int rc = sd_notify(0, msg);
	if (rc < 0)
		log_warn("systemd: cannot notify %s: error %d", what, rc);
}

void systemd_ready(const char *status)
{
	char msg[512];
	snprintf(msg, sizeof msg, "READY=1\nSTATUS=%s", status);
	notify("ready", msg);
}

void systemd_reloading(void)
{
	char msg[64];
	struct timespec ts;

	/* MONOTONIC_USEC lets newer systemd (Type=notify-reload) match the
	 * READY=1 that ends the reload; older ones ignore it. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu",
		 (unsigned long long)ts.tv_sec * 1000000ULL +
		     (unsigned long long)ts.tv_nsec / 1000);
	notify("reloading", msg);
}

void systemd_stopping(void)
{
	notify("stopping", "STOPPING=1\nSTATUS=stopping");
}

void systemd_status(const char *status)
{
	char msg[512];
	snprintf(msg, sizeof msg, "STATUS=%s", status);
	sd_notify(0, msg);
}

uint64_t systemd_watchdog_interval_ms(void)
{
	uint64_t usec = 0;

	if (sd_watchdog_enabled(0, &usec) <= 0)
		return 0;
	return usec / 2000 ? usec / 2000 : 1;
}

void systemd_watchdog_ping(void)
{
	sd_notify(0, "WATCHDOG=1");
}
