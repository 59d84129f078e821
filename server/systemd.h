/* SPDX-License-Identifier: Apache-2.0 */
/* systemd integration through sd_notify(3): readiness (Type=notify),
 * reloading, stopping, a status line for `systemctl status`, and the
 * watchdog. Outside systemd ($NOTIFY_SOCKET unset) every call does
 * nothing. */
#ifndef MSCE_SYSTEMD_H
#define MSCE_SYSTEMD_H

#include <stdint.h>

void systemd_ready(const char *status);
void systemd_reloading(void);
void systemd_stopping(void);
void systemd_status(const char *status);
/* How often systemd wants a watchdog ping, in ms (half its WatchdogSec);
 * 0 when no watchdog is set for this process. */
uint64_t systemd_watchdog_interval_ms(void);
void systemd_watchdog_ping(void);

#endif
