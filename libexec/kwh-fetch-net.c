/*
 * kwh-fetch-net — the network side of kwh-fetch and kwh-handle, run by
 * them in their fetch child (see lib/git.c, "The fetch helper"): the
 * parameters on fd 3, the report on fd 4.  Not for running by hand.
 */
#include <fcntl.h>
#include <unistd.h>

#include "err.h"
#include "git.h"

int
main(int argc, char **argv)
{
	kwh_err_init("kwh-fetch");
	if (argc != 1 || fcntl(3, F_GETFD) < 0 || fcntl(4, F_GETFD) < 0)
		kwh_die(KWH_EXIT_USAGE, "kwh-fetch-net is run by kwh-fetch and kwh-handle, "
		    "not by hand");
	return kwh_git_net_main(3, 4);
}
