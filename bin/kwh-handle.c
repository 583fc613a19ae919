/* kwh-handle — one HTTP request on stdin, the whole chain in one process,
 * the HTTP response on stdout; or, with --listen, a resident server of
 * pre-forked workers that each handle one request per connection. */
#include "handle.h"

int
main(int argc, char **argv)
{
	static struct kwh_handle h;
	int code, fd = -1;

	kwh_handle_options(&h, argc, argv);
	if (h.listen)
		fd = kwh_handle_listen(&h);
	kwh_handle_init(&h);
	code = fd >= 0 ? kwh_handle_serve(&h, fd) : kwh_handle_run(&h, 0, 1, NULL);
	kwh_handle_release(&h);
	return code;
}
