/* SPDX-License-Identifier: Apache-2.0 */
/* The allowed values of the typed collections' enumerated fields
 * (docs/PROTOCOL.md "Typed collections"): one list each, as an X-macro
 * (the C enum constant's suffix, the value on the wire) from which the
 * enums here and the node's checks (common/schema.c) are both made.
 * Installed with msce.h as <msce/msce_domain.h>; msce_domain_name() and
 * msce_domain_value() in msce.h convert at run time.
 *
 * Values are only ever appended: a value's number and its text never
 * change, so a front end may store either. */
#ifndef MSCE_DOMAIN_H
#define MSCE_DOMAIN_H

/* registration.document_type */
#define MSCE_DOCUMENT_TYPES(X)                                                \
	X(PASSPORT, "passport")                                               \
	X(ID_CARD, "id_card")                                                 \
	X(TRAVEL_DOCUMENT, "travel_document")                                 \
	X(RESIDENCE_PERMIT, "residence_permit")                               \
	X(OTHER, "other")

/* registration.district: Shenzhen's ten districts */
#define MSCE_DISTRICTS(X)                                                     \
	X(FUTIAN, "futian")                                                   \
	X(LUOHU, "luohu")                                                     \
	X(NANSHAN, "nanshan")                                                 \
	X(YANTIAN, "yantian")                                                 \
	X(BAOAN, "baoan")                                                     \
	X(LONGGANG, "longgang")                                               \
	X(LONGHUA, "longhua")                                                 \
	X(PINGSHAN, "pingshan")                                               \
	X(GUANGMING, "guangming")                                             \
	X(DAPENG, "dapeng")

/* case.category */
#define MSCE_CASE_CATEGORIES(X)                                               \
	X(REGISTRATION, "registration")                                       \
	X(MARRIAGE, "marriage")                                               \
	X(LANDLORD, "landlord")                                               \
	X(EMPLOYER, "employer")                                               \
	X(LEASE, "lease")                                                     \
	X(TRAVEL, "travel")                                                   \
	X(CURRENCY, "currency")                                               \
	X(OTHER, "other")

/* case.status */
#define MSCE_CASE_STATUSES(X)                                                 \
	X(OPEN, "open")                                                       \
	X(IN_PROGRESS, "in_progress")                                         \
	X(RESOLVED, "resolved")                                               \
	X(CLOSED, "closed")

/* event.kind */
#define MSCE_EVENT_KINDS(X)                                                   \
	X(QA, "qa")                                                           \
	X(TOUR, "tour")                                                       \
	X(WORKSHOP, "workshop")                                               \
	X(CEREMONY, "ceremony")                                               \
	X(OTHER, "other")

enum msce_document_type {
#define MSCE_X_(n, s) MSCE_DOCUMENT_##n,
	MSCE_DOCUMENT_TYPES(MSCE_X_)
#undef MSCE_X_
	MSCE_DOCUMENT_TYPE_COUNT
};

enum msce_district {
#define MSCE_X_(n, s) MSCE_DISTRICT_##n,
	MSCE_DISTRICTS(MSCE_X_)
#undef MSCE_X_
	MSCE_DISTRICT_COUNT
};

enum msce_case_category {
#define MSCE_X_(n, s) MSCE_CASE_CATEGORY_##n,
	MSCE_CASE_CATEGORIES(MSCE_X_)
#undef MSCE_X_
	MSCE_CASE_CATEGORY_COUNT
};

enum msce_case_status {
#define MSCE_X_(n, s) MSCE_CASE_STATUS_##n,
	MSCE_CASE_STATUSES(MSCE_X_)
#undef MSCE_X_
	MSCE_CASE_STATUS_COUNT
};

enum msce_event_kind {
#define MSCE_X_(n, s) MSCE_EVENT_KIND_##n,
	MSCE_EVENT_KINDS(MSCE_X_)
#undef MSCE_X_
	MSCE_EVENT_KIND_COUNT
};

/* Which list, for msce_domain_name() and msce_domain_value(). */
enum msce_domain_list {
	MSCE_LIST_DOCUMENT_TYPE,
	MSCE_LIST_DISTRICT,
	MSCE_LIST_CASE_CATEGORY,
	MSCE_LIST_CASE_STATUS,
	MSCE_LIST_EVENT_KIND,
	MSCE_LIST_COUNT
};

#endif
