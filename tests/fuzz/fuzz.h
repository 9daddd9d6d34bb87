/* Shared helpers of the libFuzzer targets (tests/fuzz/fuzz_*.c): each target
 * defines LLVMFuzzerTestOneInput and, where it needs one-time set-up,
 * LLVMFuzzerInitialize. Built only with ./configure --enable-fuzzing
 * (clang, -fsanitize=fuzzer,address,undefined); run by tests/fuzz/run. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A NUL-terminated malloc'd copy of data (an embedded NUL ends the string
 * early, as it would for a C caller). */
static inline char *fuzz_strndup(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		abort();
	if (size)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* Split an input into parts at FUZZ_SEP (a line of its own in the seed
 * files): part i of n, or an empty part when there are fewer. The corpus
 * files stay readable and the fuzzer mutates each part separately. */
#define FUZZ_SEP "\n--8<--\n"
static inline void fuzz_part(const uint8_t *data, size_t size, unsigned i, const uint8_t **p, size_t *n)
{
	const size_t seplen = sizeof(FUZZ_SEP) - 1;
	const uint8_t *start = data, *end = data + size;
	for (unsigned k = 0;; k++) {
		const uint8_t *sep = size >= seplen ? memmem(start, (size_t)(end - start), FUZZ_SEP, seplen) : NULL;
		const uint8_t *stop = sep ? sep : end;
		if (k == i) {
			*p = start;
			*n = (size_t)(stop - start);
			return;
		}
		if (!sep) {
			*p = end;
			*n = 0;
			return;
		}
		start = sep + seplen;
	}
}

/* Quiet: refusals of bad input are logged at warn; errors still show. */
static inline void fuzz_quiet_logs(const char *component)
{
	log_init(component);
	log_set_level(LOG_LEVEL_ERROR);
}
