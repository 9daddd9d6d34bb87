/* gRPC status codes: names and the errno mapping. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include "macro.h"
#include "status.h"

static const char *const status_names[] = {
	[STATUS_OK] = "OK",
	[STATUS_CANCELLED] = "CANCELLED",
	[STATUS_UNKNOWN] = "UNKNOWN",
	[STATUS_INVALID_ARGUMENT] = "INVALID_ARGUMENT",
	[STATUS_DEADLINE_EXCEEDED] = "DEADLINE_EXCEEDED",
	[STATUS_NOT_FOUND] = "NOT_FOUND",
	[STATUS_ALREADY_EXISTS] = "ALREADY_EXISTS",
	[STATUS_PERMISSION_DENIED] = "PERMISSION_DENIED",
	[STATUS_RESOURCE_EXHAUSTED] = "RESOURCE_EXHAUSTED",
	[STATUS_FAILED_PRECONDITION] = "FAILED_PRECONDITION",
	[STATUS_ABORTED] = "ABORTED",
	[STATUS_OUT_OF_RANGE] = "OUT_OF_RANGE",
	[STATUS_UNIMPLEMENTED] = "UNIMPLEMENTED",
	[STATUS_INTERNAL] = "INTERNAL",
	[STATUS_UNAVAILABLE] = "UNAVAILABLE",
	[STATUS_DATA_LOSS] = "DATA_LOSS",
	[STATUS_UNAUTHENTICATED] = "UNAUTHENTICATED",
};

const char *status_name(int code)
{
	if (code < 0 || (size_t)code >= ARRAY_SIZE(status_names) || !status_names[code])
		return "UNKNOWN";
	return status_names[code];
}

int status_from_errno(int negerr)
{
	int e;

	/* Accept either sign; INT_MIN cannot be negated. */
	if (negerr == INT_MIN)
		return STATUS_INTERNAL;
	e = negerr < 0 ? -negerr : negerr;

	switch (e) {
	case 0:
		return STATUS_OK;
	case ENOENT:
		return STATUS_NOT_FOUND;
	case EEXIST:
		return STATUS_ALREADY_EXISTS;
	case EINVAL:
		return STATUS_INVALID_ARGUMENT;
	case EACCES:
	case EPERM:
		return STATUS_PERMISSION_DENIED;
	case ETIMEDOUT:
		return STATUS_DEADLINE_EXCEEDED;
	case ENOSPC:
	case ENOMEM:
		return STATUS_RESOURCE_EXHAUSTED;
	case ECANCELED:
		return STATUS_CANCELLED;
	case EBUSY:
		return STATUS_FAILED_PRECONDITION;
	case ECONNREFUSED:
	case ENOTCONN:
	case EPIPE:
	case ECONNRESET:
		return STATUS_UNAVAILABLE;
	case ENOSYS:
#if defined(ENOTSUP) && ENOTSUP != EOPNOTSUPP
	case ENOTSUP:
#endif
	case EOPNOTSUPP:
		return STATUS_UNIMPLEMENTED;
	default:
		return STATUS_INTERNAL;
	}
}
