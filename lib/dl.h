/*
 * dl.h — a shared library opened with dlopen(3) the first time it is
 * needed (lib/curl-dl.c, lib/ssh2-dl.c).  Static: ssh2-dl.o is linked
 * after libkwh.a, so it cannot take a function from it.
 */
#ifndef KWH_DL_H
#define KWH_DL_H

#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>

struct kwh_dl_sym {
	const char *name;
	void **slot;		/* where its address goes */
};

/*
 * Opens soname and fills the slot of each of the n symbols.  Returns 0, or
 * -1 with why set: "cannot load SONAME<need>: <dlerror>", or a missing
 * symbol named.
 */
static inline int
kwh_dl_open(const char *soname, const char *need, const struct kwh_dl_sym *syms, size_t n,
    char *why, size_t whylen)
{
	void *lib = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
	size_t i;

	if (!lib) {
		snprintf(why, whylen, "cannot load %s%s: %s", soname, need, dlerror());
		return -1;
	}
	for (i = 0; i < n; i++)
		if (!(*syms[i].slot = dlsym(lib, syms[i].name))) {
			snprintf(why, whylen, "cannot load %s: it has no %s", soname, syms[i].name);
			return -1;
		}
	return 0;
}

#endif
