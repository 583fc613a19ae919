/* kwh-handle — one HTTP request on stdin, the whole chain in one process,
 * the HTTP response on stdout. */
#include "handle.h"

int
main(int argc, char **argv)
{
	static struct kwh_handle h;
	int code;

	kwh_handle_options(&h, argc, argv);
	kwh_handle_init(&h);
	code = kwh_handle_run(&h, 0, 1, NULL);
	kwh_handle_release(&h);
	return code;
}
