/* The nonewprivs image's entrypoint (installed setuid root): prints the
 * effective uid it runs with, as Kubernetes' test/images/nonewprivs does.
 * With no_new_privs set the setuid bit is ignored and it prints the
 * caller's uid; without, 0. Built static by tests/critest/images.py. */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
	printf("Effective uid: %d\n", (int)geteuid());
	return 0;
}
