/*
 * ssh2-dl.c — libssh2, loaded only when a fetch needs SSH (kwh-fetch).
 *
 * Debian's libssh2 is built on OpenSSL.  Linked into kwh-fetch it brings
 * libcrypto with it, whose tables of pointers the dynamic loader has to
 * relocate at every start of a position-independent executable: about a
 * hundred pages written, a third of the time kwh-fetch takes to read a
 * cached revision, which needs no network at all (bench/README.md).  So
 * kwh-fetch is linked with this file instead of libssh2: it defines the
 * libssh2 functions that libgit2 calls, and each one calls the real
 * function in libssh2.so.1, opened with dlopen(3) by kwh_ssh2_load(),
 * which the fetch child calls before it connects to an SSH remote.
 * libssh2_init(), which libgit2 calls at its initialisation, only notes
 * its flags until then; libssh2_exit() does nothing if nothing was loaded.
 *
 * The other tools link libssh2 statically as before: they load libcurl,
 * which loads libssh2 and OpenSSL anyway.  This file is not part of
 * libkwh.a (see the Makefile).
 */
#include <stdio.h>
#include <libssh2.h>

#include "dl.h"

/* An entry per function: return type, name, parameters, arguments, and
 * what to return when libssh2 could not be loaded. */
#define SSH2_FUNCS(F, V) \
	F(int, libssh2_agent_connect, (LIBSSH2_AGENT *a), (a), -1) \
	F(int, libssh2_agent_disconnect, (LIBSSH2_AGENT *a), (a), -1) \
	V(libssh2_agent_free, (LIBSSH2_AGENT *a), (a)) \
	F(int, libssh2_agent_get_identity, (LIBSSH2_AGENT *a, \
	    struct libssh2_agent_publickey **store, struct libssh2_agent_publickey *prev), \
	    (a, store, prev), -1) \
	F(LIBSSH2_AGENT *, libssh2_agent_init, (LIBSSH2_SESSION *s), (s), NULL) \
	F(int, libssh2_agent_list_identities, (LIBSSH2_AGENT *a), (a), -1) \
	F(int, libssh2_agent_userauth, (LIBSSH2_AGENT *a, const char *user, \
	    struct libssh2_agent_publickey *id), (a, user, id), -1) \
	F(int, libssh2_channel_close, (LIBSSH2_CHANNEL *c), (c), -1) \
	F(int, libssh2_channel_free, (LIBSSH2_CHANNEL *c), (c), -1) \
	F(LIBSSH2_CHANNEL *, libssh2_channel_open_ex, (LIBSSH2_SESSION *s, const char *type, \
	    unsigned int type_len, unsigned int window, unsigned int packet, \
	    const char *msg, unsigned int msg_len), \
	    (s, type, type_len, window, packet, msg, msg_len), NULL) \
	F(int, libssh2_channel_process_startup, (LIBSSH2_CHANNEL *c, const char *req, \
	    unsigned int req_len, const char *msg, unsigned int msg_len), \
	    (c, req, req_len, msg, msg_len), -1) \
	F(ssize_t, libssh2_channel_read_ex, (LIBSSH2_CHANNEL *c, int stream, char *buf, \
	    size_t len), (c, stream, buf, len), -1) \
	V(libssh2_channel_set_blocking, (LIBSSH2_CHANNEL *c, int blocking), (c, blocking)) \
	F(ssize_t, libssh2_channel_write_ex, (LIBSSH2_CHANNEL *c, int stream, const char *buf, \
	    size_t len), (c, stream, buf, len), -1) \
	F(const char *, libssh2_hostkey_hash, (LIBSSH2_SESSION *s, int type), (s, type), NULL) \
	F(int, libssh2_knownhost_checkp, (LIBSSH2_KNOWNHOSTS *h, const char *host, int port, \
	    const char *key, size_t keylen, int typemask, struct libssh2_knownhost **out), \
	    (h, host, port, key, keylen, typemask, out), LIBSSH2_KNOWNHOST_CHECK_FAILURE) \
	V(libssh2_knownhost_free, (LIBSSH2_KNOWNHOSTS *h), (h)) \
	F(LIBSSH2_KNOWNHOSTS *, libssh2_knownhost_init, (LIBSSH2_SESSION *s), (s), NULL) \
	F(int, libssh2_knownhost_readfile, (LIBSSH2_KNOWNHOSTS *h, const char *file, int type), \
	    (h, file, type), -1) \
	F(void **, libssh2_session_abstract, (LIBSSH2_SESSION *s), (s), NULL) \
	F(int, libssh2_session_disconnect_ex, (LIBSSH2_SESSION *s, int reason, \
	    const char *desc, const char *lang), (s, reason, desc, lang), -1) \
	F(int, libssh2_session_free, (LIBSSH2_SESSION *s), (s), -1) \
	F(int, libssh2_session_handshake, (LIBSSH2_SESSION *s, libssh2_socket_t sock), \
	    (s, sock), -1) \
	F(const char *, libssh2_session_hostkey, (LIBSSH2_SESSION *s, size_t *len, int *type), \
	    (s, len, type), NULL) \
	F(LIBSSH2_SESSION *, libssh2_session_init_ex, \
	    (void *(*al)(size_t, void **), void (*fr)(void *, void **), \
	    void *(*re)(void *, size_t, void **), void *abstract), \
	    (al, fr, re, abstract), NULL) \
	F(int, libssh2_session_last_error, (LIBSSH2_SESSION *s, char **msg, int *len, \
	    int want_buf), (s, msg, len, want_buf), -1) \
	F(int, libssh2_session_method_pref, (LIBSSH2_SESSION *s, int type, const char *prefs), \
	    (s, type, prefs), -1) \
	V(libssh2_session_set_blocking, (LIBSSH2_SESSION *s, int blocking), (s, blocking)) \
	F(int, libssh2_userauth_authenticated, (LIBSSH2_SESSION *s), (s), 0) \
	F(int, libssh2_userauth_keyboard_interactive_ex, (LIBSSH2_SESSION *s, \
	    const char *user, unsigned int user_len, \
	    LIBSSH2_USERAUTH_KBDINT_RESPONSE_FUNC((*cb))), (s, user, user_len, cb), -1) \
	F(char *, libssh2_userauth_list, (LIBSSH2_SESSION *s, const char *user, \
	    unsigned int user_len), (s, user, user_len), NULL) \
	F(int, libssh2_userauth_password_ex, (LIBSSH2_SESSION *s, const char *user, \
	    unsigned int user_len, const char *pw, unsigned int pw_len, \
	    LIBSSH2_PASSWD_CHANGEREQ_FUNC((*cb))), (s, user, user_len, pw, pw_len, cb), -1) \
	F(int, libssh2_userauth_publickey, (LIBSSH2_SESSION *s, const char *user, \
	    const unsigned char *pub, size_t pub_len, \
	    LIBSSH2_USERAUTH_PUBLICKEY_SIGN_FUNC((*sign)), void **abstract), \
	    (s, user, pub, pub_len, sign, abstract), -1) \
	F(int, libssh2_userauth_publickey_fromfile_ex, (LIBSSH2_SESSION *s, const char *user, \
	    unsigned int user_len, const char *pub, const char *priv, const char *pass), \
	    (s, user, user_len, pub, priv, pass), -1) \
	F(int, libssh2_userauth_publickey_frommemory, (LIBSSH2_SESSION *s, const char *user, \
	    size_t user_len, const char *pub, size_t pub_len, const char *priv, \
	    size_t priv_len, const char *pass), \
	    (s, user, user_len, pub, pub_len, priv, priv_len, pass), -1)

#define SSH2_SONAME "libssh2.so.1"

#define PTR(ret, name, params, args, fail) static ret (*p_##name) params;
#define VPTR(name, params, args) static void (*p_##name) params;
SSH2_FUNCS(PTR, VPTR)
static int (*p_libssh2_init)(int);
static void (*p_libssh2_exit)(void);

static int state;		/* 0 not tried, 1 loaded, -1 failed */
static int init_flags;
static char why[256];

#define SYM(ret, name, params, args, fail) { #name, (void **)&p_##name },
#define VSYM(name, params, args) { #name, (void **)&p_##name },
static const struct kwh_dl_sym syms[] = {
	SSH2_FUNCS(SYM, VSYM)
	{ "libssh2_init", (void **)&p_libssh2_init },
	{ "libssh2_exit", (void **)&p_libssh2_exit },
};

static int
load(void)
{
	int r;

	if (state)
		return state > 0 ? 0 : -1;
	state = -1;
	if (kwh_dl_open(SSH2_SONAME, ", which SSH remotes need", syms,
	    sizeof syms / sizeof *syms, why, sizeof why) < 0)
		return -1;
	if ((r = p_libssh2_init(init_flags)) != 0) {
		snprintf(why, sizeof why, "cannot initialise libssh2 (error %d)", r);
		return -1;
	}
	state = 1;
	return 0;
}

/*
 * Loads libssh2 now: 0, or -1 with the reason in msg.  lib/git.c calls it
 * (it is weak there) before an SSH fetch, so that a missing library is
 * reported as such rather than as a failed SSH session.
 */
int kwh_ssh2_load(char *msg, size_t msglen);

int
kwh_ssh2_load(char *msg, size_t msglen)
{
	if (load() == 0)
		return 0;
	snprintf(msg, msglen, "%s", why);
	return -1;
}

int
libssh2_init(int flags)
{
	if (state > 0)
		return p_libssh2_init(flags);
	init_flags = flags;
	return 0;
}

void
libssh2_exit(void)
{
	if (state > 0)
		p_libssh2_exit();
}

#define FORWARD(ret, name, params, args, fail) \
	ret name params \
	{ \
		return load() == 0 ? p_##name args : fail; \
	}
#define VFORWARD(name, params, args) \
	void name params \
	{ \
		if (load() == 0) \
			p_##name args; \
	}
SSH2_FUNCS(FORWARD, VFORWARD)
