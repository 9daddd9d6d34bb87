/* Small macros shared by every component: cleanup attributes, array sizes. */
#pragma once

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _noreturn_ __attribute__((noreturn))
#define _must_check_ __attribute__((warn_unused_result))

/* Scoped cleanup: every early return releases what the scope owns. */
#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void freep(void *p) { free(*(void **)p); }
static inline void closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}
static inline void fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}

#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Hand ownership out of a cleanup-scoped variable. */
#define TAKE_PTR(p) ({ __typeof__(p) _p = (p); (p) = NULL; _p; })
#define TAKE_FD(fd) ({ int _fd = (fd); (fd) = -1; _fd; })

#define STRLEN(s) (sizeof(s) - 1)

/* Give freed heap pages back to the kernel (glibc's malloc_trim). Not in
 * a sanitizer build: ASan owns the heap there, and glibc's malloc_trim
 * walks arenas glibc never set up (an imaged-fetch SEGV in libc, CI's ASan
 * e2e run at 16086ac). */
#if defined(CRIOD_SANITIZERS)
#define heap_trim() ((void)0)
#else
#include <malloc.h>
#define heap_trim() ((void)malloc_trim(0))
#endif
