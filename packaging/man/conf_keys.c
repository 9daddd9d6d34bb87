/* Writes criod.conf(5) from its template: the line "@KEYS@" becomes the
 * key table of common/config.c (config_man_keys), "@VERSION@" the
 * version, so the page lists every key, its range and its default, and
 * cannot drift from the parser. Usage: criod-conf-keys TEMPLATE > criod.conf.5 */
#include <stdio.h>
#include <string.h>

#include "config_show.h"

int main(int argc, char **argv)
{
	char line[4096];
	FILE *in;

	if (argc != 2 || !(in = fopen(argv[1], "r"))) {
		fprintf(stderr, "usage: criod-conf-keys TEMPLATE\n");
		return 2;
	}
	while (fgets(line, sizeof(line), in)) {
		char *v = strstr(line, "@VERSION@");
		if (strcmp(line, "@KEYS@\n") == 0) {
			if (config_man_keys(stdout) < 0)
				return 1;
		} else if (v) {
			*v = '\0';
			printf("%s%s%s", line, PACKAGE_VERSION, v + strlen("@VERSION@"));
		} else
			fputs(line, stdout);
	}
	fclose(in);
	return fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
}
