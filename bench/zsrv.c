/* bench/zsrv: the port-forward benchmark's server. Listens on
 * 127.0.0.1:PORT and, to each connection in turn, writes BYTES zero bytes
 * from a 1 MiB buffer, then closes it. Built static by bench/stream (gcc
 * -static) so that it runs in the busybox image and on the host alike: the
 * same sender for the port-forward and the direct loopback copy, one that
 * is not the bottleneck (busybox nc moves 1 KiB per system call). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	static char buf[1 << 20];
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int one = 1, ls;

	if (argc != 3) {
		fprintf(stderr, "usage: zsrv PORT BYTES\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN); /* a reader gone early ends its connection, not the server */
	sa.sin_port = htons((unsigned short)atoi(argv[1]));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ls = socket(AF_INET, SOCK_STREAM, 0);
	if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 16) < 0) {
		perror("zsrv: listen");
		return 1;
	}
	for (;;) {
		unsigned long long left = strtoull(argv[2], NULL, 10);
		int c = accept(ls, NULL, NULL);

		if (c < 0)
			continue;
		while (left > 0) {
			ssize_t k = write(c, buf, left < sizeof(buf) ? left : sizeof(buf));

			if (k <= 0)
				break;
			left -= (unsigned long long)k;
		}
		close(c);
	}
}
