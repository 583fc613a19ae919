/* kube.c — kubeconfig and in-cluster configuration, the libcurl client
 * (keep-alive, retries inside a deadline), exec credential plugins, and
 * discovery with its disk cache.  See kube.h. */
#include "env.h"
#include "kube.h"
#include "metrics.h"
#include "http.h"
#include "err.h"
#include "yaml.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define MAX_RESPONSE ((size_t)32 << 20)
#define MAX_PLUGIN_OUTPUT ((size_t)1 << 20)

extern char **environ;

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- small helpers -------------------------------------------------- */

static char *
xstrdup(const char *s)
{
	char *p = strdup(s ? s : "");

	if (!p)
		kwh_die(KWH_EXIT_SYSTEM, "out of memory");
	return p;
}

/* The string at o.key, borrowed from o (which must stay alive), or NULL. */
static const char *
jstr(jv o, const char *key)
{
	const char *s = kwh_jv_str(o, key);

	return s && *s ? s : NULL;
}

static jv
jget(jv o, const char *key)
{
	if (jv_get_kind(o) != JV_KIND_OBJECT)
		return jv_null();
	return jv_object_get(jv_copy(o), jv_string(key));
}

/* o[key] consuming o; null when o is not an object. */
static jv
jtake(jv o, const char *key)
{
	if (jv_get_kind(o) != JV_KIND_OBJECT) {
		jv_free(o);
		return jv_null();
	}
	return jv_object_get(o, jv_string(key));
}

static int
read_yaml(jv *out, const char *path, char *err, size_t errlen)
{
	struct kwh_buf b = KWH_BUF_INIT;
	struct kwh_yaml_limits lim = KWH_YAML_LIMITS_DEFAULT;
	char e[256];

	if (kwh_buf_read_file(&b, path) < 0) {
		seterr(err, errlen, "cannot read '%s': %s", path, strerror(errno));
		kwh_buf_release(&b);
		return -1;
	}
	if (kwh_yaml_document(out, b.data ? b.data : "", b.len, &lim, e, sizeof e) < 0) {
		seterr(err, errlen, "'%s': %s", path, e);
		kwh_buf_wipe(&b);
		return -1;
	}
	kwh_buf_wipe(&b);
	return 0;
}

/* An absolute path: p itself, or dir/p. */
static jv
abspath(const char *dir, const char *p)
{
	if (p[0] == '/' || !dir)
		return jv_string(p);
	return jv_string_fmt("%s/%s", dir, p);
}

/* Rewrites the relative paths of one named entry's body in place. */
static jv
fix_paths(jv body, const char *dir)
{
	static const char *keys[] = { "certificate-authority", "client-certificate",
	    "client-key", "tokenFile" };
	const char *s;
	jv ex;

	if (jv_get_kind(body) != JV_KIND_OBJECT)
		return body;
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if ((s = jstr(body, keys[i])))
			body = jv_object_set(body, jv_string(keys[i]), abspath(dir, s));
	ex = jget(body, "exec");
	if (jv_get_kind(ex) == JV_KIND_OBJECT) {
		if ((s = jstr(ex, "command")) && strchr(s, '/'))
			ex = jv_object_set(ex, jv_string("command"), abspath(dir, s));
		body = jv_object_set(body, jv_string("exec"), ex);
	} else {
		jv_free(ex);
	}
	return body;
}

/* Merges one kubeconfig document into m (first definition wins). */
static jv
merge_doc(jv m, jv doc, const char *dir)
{
	static const char *lists[][2] = { { "clusters", "cluster" }, { "users", "user" },
	    { "contexts", "context" } };
	const char *cc;

	if (jv_get_kind(doc) != JV_KIND_OBJECT) {
		jv_free(doc);
		return m;
	}
	for (size_t i = 0; i < 3; i++) {
		jv arr = jget(doc, lists[i][0]), map = jget(m, lists[i][0]);

		if (jv_get_kind(map) != JV_KIND_OBJECT) {
			jv_free(map);
			map = jv_object();
		}
		if (jv_get_kind(arr) == JV_KIND_ARRAY) {
			jv_array_foreach(arr, j, e) {
				const char *name = jstr(e, "name");
				if (name && !jv_object_has(jv_copy(map), jv_string(name))) {
					jv body = fix_paths(jget(e, lists[i][1]), dir);
					map = jv_object_set(map, jv_string(name), body);
				}
				jv_free(e);
			}
		}
		jv_free(arr);
		m = jv_object_set(m, jv_string(lists[i][0]), map);
	}
	if ((cc = jstr(doc, "current-context")) && !jstr(m, "current-context"))
		m = jv_object_set(m, jv_string("current-context"), jv_string(cc));
	jv_free(doc);
	return m;
}

static char *
dir_of(const char *path)
{
	char *d = xstrdup(path), *s = strrchr(d, '/');
	char cwd[PATH_MAX];

	if (s) {
		*s = '\0';
		if (s == d)
			strcpy(d, "/");
		if (d[0] != '/' && getcwd(cwd, sizeof cwd)) {
			char *a;
			if (asprintf(&a, "%s/%s", cwd, d) < 0)
				kwh_die(KWH_EXIT_SYSTEM, "out of memory");
			free(d);
			d = a;
		}
		return d;
	}
	free(d);
	return xstrdup(getcwd(cwd, sizeof cwd) ? cwd : ".");
}

/* Reads a small file's first line (trimmed) into out. 0 or -1. */
static int
read_trimmed(struct kwh_buf *out, const char *path)
{
	if (kwh_buf_read_file(out, path) < 0)
		return -1;
	while (out->len && (out->data[out->len - 1] == '\n' || out->data[out->len - 1] == '\r'
	    || out->data[out->len - 1] == ' ' || out->data[out->len - 1] == '\t'))
		out->data[--out->len] = '\0';
	return 0;
}

static int
load_incluster(struct kwh_kube_config *cfg, const struct kwh_kube_source *src,
    char *err, size_t errlen)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	const char *dir = src->sa_dir ? src->sa_dir : SA_DIR;
	struct kwh_buf ns = KWH_BUF_INIT;
	char *s;

	if (!host || !*host || !port || !*port) {
		seterr(err, errlen, "no kubeconfig (--kubeconfig, KUBECONFIG, ~/.kube/config) "
		    "and not in a cluster (KUBERNETES_SERVICE_HOST is not set)");
		return -1;
	}
	if (asprintf(&cfg->server, strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s",
	    host, port) < 0 || asprintf(&cfg->ca_file, "%s/ca.crt", dir) < 0 ||
	    asprintf(&cfg->token_file, "%s/token", dir) < 0 || asprintf(&s, "%s/namespace", dir) < 0)
		kwh_die(KWH_EXIT_SYSTEM, "out of memory");
	if (access(cfg->token_file, R_OK) < 0) {
		seterr(err, errlen, "in-cluster: cannot read '%s': %s", cfg->token_file, strerror(errno));
		free(s);
		return -1;
	}
	if (read_trimmed(&ns, s) == 0 && ns.len)
		cfg->namespace = kwh_buf_detach(&ns, NULL);
	kwh_buf_release(&ns);
	free(s);
	cfg->origin = xstrdup("in-cluster service account");
	return 0;
}

static int
set_data(struct kwh_buf *b, jv o, const char *key, const char *what, char *err, size_t errlen)
{
	const char *s = jstr(o, key);

	if (!s)
		return 0;
	if (kwh_base64_decode(b, s, strlen(s)) < 0) {
		seterr(err, errlen, "%s: %s is not valid base64", what, key);
		return -1;
	}
	return 0;
}

static int
load_kubeconfig(struct kwh_kube_config *cfg, const struct kwh_kube_source *src,
    const char *list, int explicit, char *err, size_t errlen)
{
	jv m = jv_object(), ctx, cl, us;
	const char *name, *s;
	char *copy = xstrdup(list), *save = NULL, *p;
	int nfiles = 0, rc = -1;

	for (p = strtok_r(copy, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
		jv doc;
		char *dir;

		if (!*p)
			continue;
		if (!explicit && access(p, F_OK) < 0)
			continue; /* kubectl skips missing files in KUBECONFIG */
		if (read_yaml(&doc, p, err, errlen) < 0)
			goto out;
		dir = dir_of(p);
		m = merge_doc(m, doc, dir);
		free(dir);
		nfiles++;
	}
	if (!nfiles) {
		seterr(err, errlen, "no kubeconfig file found in '%s'", list);
		goto out;
	}
	name = src->context ? src->context : jstr(m, "current-context");
	if (!name) {
		seterr(err, errlen, "kubeconfig '%s': no current-context (give --context)", list);
		goto out;
	}
	ctx = jtake(jget(m, "contexts"), name);
	if (jv_get_kind(ctx) != JV_KIND_OBJECT) {
		jv_free(ctx);
		seterr(err, errlen, "kubeconfig '%s': no context named '%s'", list, name);
		goto out;
	}
	cl = jv_null();
	us = jv_null();
	if ((s = jstr(ctx, "cluster")))
		cl = jtake(jget(m, "clusters"), s);
	if ((s = jstr(ctx, "user")))
		us = jtake(jget(m, "users"), s);
	if (jv_get_kind(cl) != JV_KIND_OBJECT || !jstr(cl, "server")) {
		seterr(err, errlen, "kubeconfig '%s': context '%s' has no cluster with a server", list, name);
		goto out2;
	}
	cfg->server = xstrdup(jstr(cl, "server"));
	while (*cfg->server && cfg->server[strlen(cfg->server) - 1] == '/')
		cfg->server[strlen(cfg->server) - 1] = '\0';
	if ((s = jstr(ctx, "namespace")))
		cfg->namespace = xstrdup(s);
	if ((s = jstr(cl, "certificate-authority")))
		cfg->ca_file = xstrdup(s);
	if (set_data(&cfg->ca_data, cl, "certificate-authority-data", "cluster", err, errlen) < 0)
		goto out2;
	{
		jv ins = jget(cl, "insecure-skip-tls-verify");
		cfg->insecure = jv_get_kind(ins) == JV_KIND_TRUE;
		jv_free(ins);
	}
	if (jv_get_kind(us) == JV_KIND_OBJECT) {
		jv ex = jget(us, "exec");

		if ((s = jstr(us, "client-certificate")))
			cfg->cert_file = xstrdup(s);
		if ((s = jstr(us, "client-key")))
			cfg->key_file = xstrdup(s);
		if ((s = jstr(us, "tokenFile")))
			cfg->token_file = xstrdup(s);
		if ((s = jstr(us, "token")))
			kwh_buf_adds(&cfg->token, s);
		if (set_data(&cfg->cert_data, us, "client-certificate-data", "user", err, errlen) < 0 ||
		    set_data(&cfg->key_data, us, "client-key-data", "user", err, errlen) < 0) {
			jv_free(ex);
			goto out2;
		}
		if (jv_get_kind(ex) == JV_KIND_OBJECT) {
			if (!jstr(ex, "command")) {
				jv_free(ex);
				seterr(err, errlen, "kubeconfig '%s': exec plugin without a command", list);
				goto out2;
			}
			jv_free(cfg->exec);
			cfg->exec = ex;
		} else {
			jv_free(ex);
			jv ap = jget(us, "auth-provider");
			int has_ap = jv_get_kind(ap) == JV_KIND_OBJECT;

			jv_free(ap);
			if (has_ap) {
				seterr(err, errlen, "kubeconfig '%s': auth-provider is not supported "
				    "(use an exec plugin)", list);
				goto out2;
			}
		}
	}
	if (asprintf(&cfg->origin, "kubeconfig %s, context %s", list, name) < 0)
		kwh_die(KWH_EXIT_SYSTEM, "out of memory");
	rc = 0;
out2:
	jv_free(cl);
	jv_free(us);
	jv_free(ctx);
out:
	jv_free(m);
	free(copy);
	return rc;
}

int
kwh_kube_config_load(struct kwh_kube_config *cfg, const struct kwh_kube_source *src,
    char *err, size_t errlen)
{
	const char *env = getenv("KUBECONFIG"), *home = getenv("HOME");
	char *def = NULL;
	int rc;

	memset(cfg, 0, sizeof *cfg);
	cfg->exec = jv_null();
	if (src->kubeconfig)
		rc = load_kubeconfig(cfg, src, src->kubeconfig, 1, err, errlen);
	else if (env && *env)
		rc = load_kubeconfig(cfg, src, env, 0, err, errlen);
	else if (home && asprintf(&def, "%s/.kube/config", home) >= 0 && access(def, F_OK) == 0)
		rc = load_kubeconfig(cfg, src, def, 1, err, errlen);
	else
		rc = load_incluster(cfg, src, err, errlen);
	free(def);
	if (rc == 0 && !cfg->namespace)
		cfg->namespace = xstrdup("default");
	return rc;
}

void
kwh_kube_config_release(struct kwh_kube_config *cfg)
{
	free(cfg->server);
	free(cfg->namespace);
	free(cfg->origin);
	free(cfg->ca_file);
	free(cfg->cert_file);
	free(cfg->key_file);
	free(cfg->token_file);
	kwh_buf_release(&cfg->ca_data);
	kwh_buf_release(&cfg->cert_data);
	kwh_buf_wipe(&cfg->key_data);
	kwh_buf_wipe(&cfg->token);
	jv_free(cfg->exec);
	memset(cfg, 0, sizeof *cfg);
	cfg->exec = jv_null();
}

/* ---- the client ---------------------------------------------------- */

struct kwh_kube {
	const struct kwh_kube_config *cfg;
	CURL *curl;
	char *cache_file;	/* discovery cache, or NULL */
	jv disc;		/* groupVersion -> kind -> {name, namespaced} */
	jv fresh;		/* groupVersions fetched by this process */
	int creds;		/* credentials read */
	struct kwh_buf token, cert, key; /* from the token file or the exec plugin */
	int exec_creds;		/* those came from the exec plugin */
	long long exec_expiry;	/* its status.expirationTimestamp (ms), 0: none */
	struct kwh_buf resp;
	long retry_after;	/* seconds, from the last response, or -1 */
	const char *delivery;	/* for log lines, borrowed */
	char ua[64];
};

static int curl_ready;

/* cache file name: DIR/discovery/HOST_PORT.json */
static char *
cache_path(const char *dir, const char *server)
{
	const char *h = strstr(server, "://");
	char *p;
	size_t n;

	h = h ? h + 3 : server;
	if (asprintf(&p, "%s/discovery/%s.json", dir, h) < 0)
		kwh_die(KWH_EXIT_SYSTEM, "out of memory");
	n = strlen(dir) + strlen("/discovery/");
	for (char *c = p + n; *c && strcmp(c, ".json"); c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		    (*c >= '0' && *c <= '9') || *c == '.' || *c == '-'))
			*c = '_';
	return p;
}

static jv
load_cache(const char *file)
{
	struct kwh_buf b = KWH_BUF_INIT;
	jv v = jv_object();

	if (file && kwh_buf_read_file(&b, file) == 0 && b.len) {
		jv p = jv_parse_sized(b.data, (int)b.len);
		if (jv_get_kind(p) == JV_KIND_OBJECT) {
			jv_free(v);
			v = p;
		} else {
			jv_free(p);
		}
	}
	kwh_buf_release(&b);
	return v;
}

/* Sets up libcurl and the client's handle before its first request.
 * Returns 0, or -1 with why in err. */
static int
ensure_curl(struct kwh_kube *k, char *err, size_t errlen)
{
	if (k->curl)
		return 0;
	if (!curl_ready) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		curl_ready = 1;
	}
	if (!(k->curl = curl_easy_init())) {
		seterr(err, errlen, "cannot set up libcurl");
		return -1;
	}
	return 0;
}

struct kwh_kube *
kwh_kube_new(const struct kwh_kube_config *cfg, const char *cache_dir)
{
	struct kwh_kube *k = calloc(1, sizeof *k);

	if (!k)
		return NULL;
	k->cfg = cfg;	/* libcurl: at the first request (ensure_curl) */
	if (cache_dir && *cache_dir)
		k->cache_file = cache_path(cache_dir, cfg->server);
	k->disc = load_cache(k->cache_file);
	k->fresh = jv_object();
	kwh_buf_init(&k->resp, MAX_RESPONSE);
	snprintf(k->ua, sizeof k->ua, "kwh-apply/%s", KWH_VERSION);
	return k;
}

void
kwh_kube_free(struct kwh_kube *k)
{
	if (!k)
		return;
	if (k->curl)
		curl_easy_cleanup(k->curl);
	free(k->cache_file);
	jv_free(k->disc);
	jv_free(k->fresh);
	kwh_buf_wipe(&k->token);
	kwh_buf_release(&k->cert);
	kwh_buf_wipe(&k->key);
	kwh_buf_release(&k->resp);
	free(k);
}

void
kwh_kube_set_delivery(struct kwh_kube *k, const char *delivery)
{
	k->delivery = delivery;
}

static void
forget_credentials(struct kwh_kube *k)
{
	k->creds = 0;
	k->exec_creds = 0;
	k->exec_expiry = 0;
	kwh_buf_wipe(&k->token);
	kwh_buf_release(&k->cert);
	kwh_buf_wipe(&k->key);
}

void
kwh_kube_reset(struct kwh_kube *k)
{
	if (!k)
		return;
	/* an exec plugin's credentials are kept until they expire, as
	 * client-go keeps them (a plugin such as aws eks get-token can take
	 * a second); a token file is read again, since it may have rotated */
	if (!k->exec_creds || (k->exec_expiry && kwh_now_ms() >= k->exec_expiry))
		forget_credentials(k);
	jv_free(k->fresh);
	k->fresh = jv_object();
	kwh_buf_release(&k->resp);	/* the memory of a large answer; keeps the limit */
	k->delivery = NULL;
}

void
kwh_kube_result_release(struct kwh_kube_result *r)
{
	jv_free(r->body);
	r->body = jv_null();
}

/* ---- exec credential plugins ----------------------------------------- */

/* "2026-11-26T15:04:05Z", "...05.123Z" or "...05+01:00" into *out, in ms
 * since the epoch.  Returns 0, or -1 when s is not an RFC 3339 date-time. */
static int
rfc3339_ms(const char *s, long long *out)
{
	struct tm tm;
	int y, mo, d, h, mi, sec, n = 0, oh, om;
	long long off = 0;
	time_t t;

	if (sscanf(s, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 ||
	    n != 19)
		return -1;
	s += n;
	if (*s == '.') {
		if (!(s[1] >= '0' && s[1] <= '9'))
			return -1;
		for (s++; *s >= '0' && *s <= '9'; s++)
			;
	}
	if (*s == 'Z' || *s == 'z')
		s++;
	else if ((*s == '+' || *s == '-') && sscanf(s + 1, "%2d:%2d%n", &oh, &om, &n) == 2 && n == 5) {
		off = (oh * 60LL + om) * 60 * (*s == '+' ? 1 : -1);
		s += 6;
	} else
		return -1;
	if (*s || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return -1;
	memset(&tm, 0, sizeof tm);
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	if ((t = timegm(&tm)) == (time_t)-1)
		return -1;
	*out = ((long long)t - off) * 1000;
	return 0;
}

static int
run_plugin(struct kwh_kube *k, long long deadline, char *err, size_t errlen)
{
	jv ex = k->cfg->exec, args = jget(ex, "args"), envs = jget(ex, "env"), out, st;
	const char *cmd = jstr(ex, "command"), *av = jstr(ex, "apiVersion");
	struct kwh_buf ob = KWH_BUF_INIT, eb = KWH_BUF_INIT;
	char **argv = NULL, **envp = NULL, *info = NULL;
	size_t na = 0, ne = 0, nenv = 0;
	int po[2] = { -1, -1 }, pe[2] = { -1, -1 }, rc = -1, wst = 0;
	pid_t pid;

	kwh_buf_init(&ob, MAX_PLUGIN_OUTPUT);
	kwh_buf_init(&eb, 4096);
	if (!av)
		av = "client.authentication.k8s.io/v1";
	if (strcmp(av, "client.authentication.k8s.io/v1") &&
	    strcmp(av, "client.authentication.k8s.io/v1beta1")) {
		seterr(err, errlen, "exec plugin '%s': unsupported apiVersion '%s'", cmd, av);
		goto out;
	}
	if (jv_get_kind(args) == JV_KIND_ARRAY)
		na = (size_t)jv_array_length(jv_copy(args));
	if (jv_get_kind(envs) == JV_KIND_ARRAY)
		ne = (size_t)jv_array_length(jv_copy(envs));
	while (environ[nenv])
		nenv++;
	argv = calloc(na + 2, sizeof *argv);
	envp = calloc(nenv + ne + 2, sizeof *envp);
	if (!argv || !envp)
		kwh_die(KWH_EXIT_SYSTEM, "out of memory");
	argv[0] = (char *)cmd;
	for (size_t i = 0; i < na; i++) {
		jv a = jv_array_get(jv_copy(args), (int)i);
		argv[i + 1] = xstrdup(jv_get_kind(a) == JV_KIND_STRING ? jv_string_value(a) : "");
		jv_free(a);
	}
	size_t j = 0;
	for (size_t i = 0; i < nenv; i++)
		if (strncmp(environ[i], "KUBERNETES_EXEC_INFO=", 21))
			envp[j++] = xstrdup(environ[i]);
	for (size_t i = 0; i < ne; i++) {
		jv e = jv_array_get(jv_copy(envs), (int)i);
		const char *n = jstr(e, "name"), *v = jstr(e, "value");
		if (n && asprintf(&envp[j++], "%s=%s", n, v ? v : "") < 0)
			kwh_die(KWH_EXIT_SYSTEM, "out of memory");
		jv_free(e);
	}
	if (asprintf(&info, "KUBERNETES_EXEC_INFO={\"apiVersion\":\"%s\",\"kind\":\"ExecCredential\","
	    "\"spec\":{\"interactive\":false}}", av) < 0)
		kwh_die(KWH_EXIT_SYSTEM, "out of memory");
	envp[j++] = info;
	info = NULL;
	if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0) {
		seterr(err, errlen, "exec plugin '%s': pipe: %s", cmd, strerror(errno));
		goto out;
	}
	if ((pid = fork()) < 0) {
		seterr(err, errlen, "exec plugin '%s': fork: %s", cmd, strerror(errno));
		goto out;
	}
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);
		if (nul >= 0)
			dup2(nul, 0);
		dup2(po[1], 1);
		dup2(pe[1], 2);
		execvpe(cmd, argv, envp);
		dprintf(2, "%s", strerror(errno));
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	po[1] = pe[1] = -1;
	{
		struct pollfd fds[2] = { { po[0], POLLIN, 0 }, { pe[0], POLLIN, 0 } };
		int open_n = 2, timed_out = 0;
		char tmp[4096];

		while (open_n) {
			long long left = deadline - kwh_now_ms();
			int n;

			if (left <= 0) {
				timed_out = 1;
				break;
			}
			n = poll(fds, 2, (int)(left > 60000 ? 60000 : left));
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				break;
			for (int i = 0; i < 2; i++) {
				if (fds[i].fd < 0 || !fds[i].revents)
					continue;
				ssize_t r = read(fds[i].fd, tmp, sizeof tmp);
				if (r <= 0) {
					fds[i].fd = -1;
					open_n--;
				} else if (kwh_buf_add(i ? &eb : &ob, tmp, (size_t)r) < 0 && i == 0) {
					fds[0].fd = -1;
					open_n--;
				}
			}
		}
		if (timed_out)
			kill(pid, SIGKILL);
		while (waitpid(pid, &wst, 0) < 0 && errno == EINTR)
			;
		if (timed_out) {
			seterr(err, errlen, "exec plugin '%s' did not finish before the deadline", cmd);
			goto out;
		}
	}
	if (!WIFEXITED(wst) || WEXITSTATUS(wst) != 0) {
		while (eb.len && (eb.data[eb.len - 1] == '\n' || eb.data[eb.len - 1] == '\r'))
			eb.data[--eb.len] = '\0';
		seterr(err, errlen, "exec plugin '%s' failed (%s %d)%s%s", cmd,
		    WIFEXITED(wst) ? "exit status" : "signal",
		    WIFEXITED(wst) ? WEXITSTATUS(wst) : WTERMSIG(wst),
		    eb.len ? ": " : "", eb.len ? eb.data : "");
		goto out;
	}
	out = jv_parse_sized(ob.data ? ob.data : "", (int)ob.len);
	st = jget(out, "status");
	if (jv_get_kind(out) != JV_KIND_OBJECT || jv_get_kind(st) != JV_KIND_OBJECT) {
		seterr(err, errlen, "exec plugin '%s' printed no ExecCredential with a status", cmd);
	} else {
		const char *t = jstr(st, "token"), *c = jstr(st, "clientCertificateData"),
		    *kd = jstr(st, "clientKeyData");
		if (t)
			kwh_buf_adds(&k->token, t);
		if (c && kd) {
			kwh_buf_adds(&k->cert, c);
			kwh_buf_adds(&k->key, kd);
		}
		if (t || (c && kd)) {
			const char *exp = jstr(st, "expirationTimestamp");

			rc = 0;
			k->exec_creds = 1;
			/* unreadable: treated as already expired, so not kept */
			if (exp && rfc3339_ms(exp, &k->exec_expiry) < 0)
				k->exec_expiry = 1;
		} else
			seterr(err, errlen, "exec plugin '%s' gave neither status.token nor "
			    "clientCertificateData and clientKeyData", cmd);
	}
	jv_free(st);
	jv_free(out);
out:
	for (int i = 0; i < 2; i++) {
		if (po[i] >= 0) close(po[i]);
		if (pe[i] >= 0) close(pe[i]);
	}
	if (argv)
		for (size_t i = 1; i <= na; i++)
			free(argv[i]);
	if (envp)
		for (size_t i = 0; envp[i]; i++)
			free(envp[i]);
	free(argv);
	free(envp);
	free(info);
	jv_free(args);
	jv_free(envs);
	kwh_buf_wipe(&ob);
	kwh_buf_release(&eb);
	return rc;
}

/* Reads the token file or runs the exec plugin, once per process (in a
 * client that kwh_kube_reset() resets between deliveries: a token file once
 * per delivery, the plugin when its credentials expire). */
static int
credentials(struct kwh_kube *k, long long deadline, char *err, size_t errlen)
{
	const struct kwh_kube_config *c = k->cfg;

	if (k->creds)
		return 0;
	if (c->token.len) {
		kwh_buf_add(&k->token, c->token.data, c->token.len);
	} else if (c->token_file) {
		if (read_trimmed(&k->token, c->token_file) < 0) {
			seterr(err, errlen, "cannot read the token file '%s': %s", c->token_file, strerror(errno));
			return -1;
		}
	}
	if (jv_get_kind(c->exec) == JV_KIND_OBJECT && !k->token.len && !c->cert_file && !c->cert_data.len)
		if (run_plugin(k, deadline, err, errlen) < 0)
			return -1;
	k->creds = 1;
	return 0;
}

/* ---- requests ---------------------------------------------------------- */

static size_t
on_body(char *p, size_t sz, size_t n, void *u)
{
	struct kwh_buf *b = u;

	if (kwh_buf_add(b, p, sz * n) < 0)
		return 0;
	return sz * n;
}

static size_t
on_header(char *p, size_t sz, size_t n, void *u)
{
	struct kwh_kube *k = u;
	size_t len = sz * n;

	if (len > 12 && !strncasecmp(p, "Retry-After:", 12)) {
		char tmp[32];
		size_t m = len - 12 < sizeof tmp - 1 ? len - 12 : sizeof tmp - 1;
		char *end;
		long v;

		memcpy(tmp, p + 12, m);
		tmp[m] = '\0';
		v = strtol(tmp, &end, 10);
		if (end != tmp && v >= 0)
			k->retry_after = v;
	}
	return len;
}

/* The API's Status.message, or a short text. */
static void
api_message(jv body, char *out, size_t n)
{
	const char *m = jstr(body, "message");

	snprintf(out, n, "%s", m ? m : "(no message)");
}

void
kwh_kube_map_error(struct kwh_kube_result *r, const char *what)
{
	char m[700];
	int c = r->http;

	api_message(r->body, m, sizeof m);
	if (c == 400 || c == 404 || c == 409 || c == 422) {
		r->status = 422;
		seterr(r->msg, sizeof r->msg, "the API server refused %s (%d %s): %s", what, c, kwh_http_reason(c), m);
	} else if (c == 401 || c == 403) {
		r->status = 502;
		seterr(r->msg, sizeof r->msg, "the API server refused our credentials (%d %s): %s",
		    c, kwh_http_reason(c), m);
	} else if (c == 429 || c >= 500) {
		r->status = 503;
		seterr(r->msg, sizeof r->msg, "the API server failed %s (%d %s): %s", what, c, kwh_http_reason(c), m);
	} else {
		r->status = 502;
		seterr(r->msg, sizeof r->msg, "the API server answered %s with %d %s: %s", what, c, kwh_http_reason(c), m);
	}
}

static struct curl_slist *
headers(struct kwh_kube *k, const char *ctype)
{
	struct curl_slist *h = NULL;
	struct kwh_buf b = KWH_BUF_INIT;

	h = curl_slist_append(h, "Accept: application/json");
	h = curl_slist_append(h, "Expect:");
	if (ctype) {
		kwh_buf_printf(&b, "Content-Type: %s", ctype);
		h = curl_slist_append(h, b.data);
		kwh_buf_release(&b);
	}
	if (k->token.len) {
		kwh_buf_adds(&b, "Authorization: Bearer ");
		kwh_buf_add(&b, k->token.data, k->token.len);
		h = curl_slist_append(h, b.data);
		kwh_buf_wipe(&b);
	}
	return h;
}

static void
setup_tls(struct kwh_kube *k)
{
	const struct kwh_kube_config *c = k->cfg;
	CURL *h = k->curl;

	if (c->insecure) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	} else if (c->ca_data.len) {
		struct curl_blob blob = { c->ca_data.data, c->ca_data.len, CURL_BLOB_COPY };
		curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
	} else if (c->ca_file) {
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
	}
	if (k->cert.len && k->key.len) {
		struct curl_blob cb = { k->cert.data, k->cert.len, CURL_BLOB_COPY };
		struct curl_blob kb = { k->key.data, k->key.len, CURL_BLOB_COPY };
		curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &cb);
		curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &kb);
	} else {
		if (c->cert_data.len) {
			struct curl_blob cb = { c->cert_data.data, c->cert_data.len, CURL_BLOB_COPY };
			curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &cb);
		} else if (c->cert_file) {
			curl_easy_setopt(h, CURLOPT_SSLCERT, c->cert_file);
		}
		if (c->key_data.len) {
			struct curl_blob kb = { c->key_data.data, c->key_data.len, CURL_BLOB_COPY };
			curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &kb);
		} else if (c->key_file) {
			curl_easy_setopt(h, CURLOPT_SSLKEY, c->key_file);
		}
	}
	curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, k->ua);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &k->resp);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, k);
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
}

/* A connection failure that happened before anything was sent. */
static int
not_sent(CURLcode e)
{
	return e == CURLE_COULDNT_CONNECT || e == CURLE_COULDNT_RESOLVE_HOST ||
	    e == CURLE_COULDNT_RESOLVE_PROXY || e == CURLE_SSL_CONNECT_ERROR;
}

/* Permanent failures: nothing to gain by trying again. */
static int
permanent(CURLcode e)
{
	return e == CURLE_PEER_FAILED_VERIFICATION || e == CURLE_SSL_CACERT_BADFILE ||
	    e == CURLE_SSL_CERTPROBLEM || e == CURLE_URL_MALFORMAT ||
	    e == CURLE_UNSUPPORTED_PROTOCOL || e == CURLE_SSL_CIPHER ||
	    e == CURLE_SSL_ISSUER_ERROR || e == CURLE_SSL_CRL_BADFILE;
}

int
kwh_kube_call(struct kwh_kube *k, struct kwh_kube_result *r, const char *method,
    const char *path, const char *ctype, const char *body, size_t bodylen,
    int flags, long long deadline_ms)
{
	char errbuf[CURL_ERROR_SIZE], url[4096], what[512], last[700] = "";
	long long start = kwh_now_ms();
	int attempt = 0, is_post = !strcmp(method, "POST"), refreshed = 0;

	r->http = 0;
	r->status = 0;
	r->body = jv_null();
	r->msg[0] = '\0';
	snprintf(what, sizeof what, "%s %s", method, path);
	if (ensure_curl(k, r->msg, sizeof r->msg) < 0) {
		r->status = 500;
		return r->status;
	}
	if (credentials(k, deadline_ms, r->msg, sizeof r->msg) < 0) {
		r->status = 502;
		return r->status;
	}
	snprintf(url, sizeof url, "%s%s", k->cfg->server, path);
	for (;;) {
		struct curl_slist *hl;
		long long now = kwh_now_ms(), left = deadline_ms - now, wait;
		CURLcode e;
		long code = 0;
		int retry = 0;

		if (left <= 0) {
			r->status = 504;
			seterr(r->msg, sizeof r->msg, "the deadline passed before %s could %s "
			    "(%d attempt%s in %.1f s%s%s)", what, attempt ? "succeed" : "be sent",
			    attempt, attempt == 1 ? "" : "s", (now - start) / 1000.0,
			    *last ? "; last: " : "", last);
			return r->status;
		}
		attempt++;
		curl_easy_reset(k->curl);
		setup_tls(k);
		hl = headers(k, ctype);
		kwh_buf_reset(&k->resp);
		k->retry_after = -1;
		errbuf[0] = '\0';
		curl_easy_setopt(k->curl, CURLOPT_ERRORBUFFER, errbuf);
		curl_easy_setopt(k->curl, CURLOPT_URL, url);
		curl_easy_setopt(k->curl, CURLOPT_HTTPHEADER, hl);
		curl_easy_setopt(k->curl, CURLOPT_TIMEOUT_MS, (long)left);
		if (body) {
			curl_easy_setopt(k->curl, CURLOPT_POSTFIELDS, body);
			curl_easy_setopt(k->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)bodylen);
		}
		if (strcmp(method, "GET") && strcmp(method, "POST"))
			curl_easy_setopt(k->curl, CURLOPT_CUSTOMREQUEST, method);
		else if (!strcmp(method, "POST") && !body)
			curl_easy_setopt(k->curl, CURLOPT_POST, 1L);
		e = curl_easy_perform(k->curl);
		curl_slist_free_all(hl);
		if (e == CURLE_OK) {
			curl_easy_getinfo(k->curl, CURLINFO_RESPONSE_CODE, &code);
			r->http = (int)code;
			kwh_metrics_kube(r->http);
			jv_free(r->body);
			r->body = k->resp.len ? jv_parse_sized(k->resp.data, (int)k->resp.len) : jv_null();
			if (jv_get_kind(r->body) != JV_KIND_OBJECT) {
				jv_free(r->body);
				r->body = jv_null();
			}
			if (code >= 200 && code < 300)
				return 0;
			if (code == 401 && k->exec_creds && !refreshed) {
				/* kept credentials the server no longer takes: ask the
				 * plugin again, once, as client-go does; a 401 means the
				 * request was not carried out, so it is sent again */
				refreshed = 1;
				forget_credentials(k);
				if (credentials(k, deadline_ms, r->msg, sizeof r->msg) < 0) {
					r->status = 502;
					return r->status;
				}
				kwh_log(KWH_LOG_INFO, k->delivery, 0, "%s: 401 Unauthorized with "
				    "the exec plugin's credentials; ran it again", what);
				attempt--;
				continue;
			}
			if (code == 429 || code == 503)
				retry = 1;
			else if (code == 500 || code == 502 || code == 504)
				retry = !is_post || (flags & KWH_KUBE_RETRY_SENT);
			if (!retry) {
				kwh_kube_map_error(r, what);
				return r->status;
			}
			api_message(r->body, errbuf, sizeof errbuf);
			snprintf(last, sizeof last, "%ld %s: %s", code, kwh_http_reason((int)code), errbuf);
		} else {
			const char *es = *errbuf ? errbuf : curl_easy_strerror(e);
			r->http = 0;
			kwh_metrics_kube(0);
			if (e == CURLE_OPERATION_TIMEDOUT && kwh_now_ms() >= deadline_ms - 5) {
				r->status = 504;
				seterr(r->msg, sizeof r->msg, "the deadline passed waiting for %s (%d attempt%s "
				    "in %.1f s): %s", what, attempt, attempt == 1 ? "" : "s",
				    (kwh_now_ms() - start) / 1000.0, es);
				return r->status;
			}
			snprintf(last, sizeof last, "%s", es);
			if (strstr(es, "alert") && (strstr(es, "certificate") || strstr(es, "unknown ca"))) {
				r->status = 502;
				seterr(r->msg, sizeof r->msg, "the API server refused our credentials "
				    "(TLS client certificate): %s", es);
				return r->status;
			}
			if (permanent(e)) {
				r->status = 502;
				seterr(r->msg, sizeof r->msg, "cannot talk to the API server at %s: %s",
				    k->cfg->server, es);
				return r->status;
			}
			if (!not_sent(e) && !(flags & KWH_KUBE_RETRY_SENT) && is_post) {
				r->status = 503;
				seterr(r->msg, sizeof r->msg, "%s failed after it was sent (%s); not retried, "
				    "since a repeat could create a second object (deduplication, off under --no-dedupe, allows it)", what, es);
				return r->status;
			}
		}
		/* back off: 100 ms doubling to 2 s, with jitter; Retry-After wins */
		wait = 100LL << (attempt - 1 < 5 ? attempt - 1 : 5);
		if (wait > 2000)
			wait = 2000;
		wait = wait / 2 + (long long)(random() % (wait / 2 + 1));
		if (k->retry_after >= 0 && r->http)
			wait = k->retry_after * 1000LL;
		if (kwh_now_ms() + wait >= deadline_ms || attempt >= 10) {
			r->status = 503;
			seterr(r->msg, sizeof r->msg, "%s %s after %d attempt%s in %.1f s%s: %s",
			    r->http ? "the API server kept failing" : "cannot reach the API server at",
			    r->http ? what : k->cfg->server, attempt, attempt == 1 ? "" : "s",
			    (kwh_now_ms() - start) / 1000.0,
			    attempt >= 10 ? "" : " (another try would pass the deadline)", last);
			return r->status;
		}
		kwh_log(KWH_LOG_WARN, k->delivery, 0, "%s: %s; retrying in %lld ms", what, last, wait);
		kwh_metrics_kube_retry();
		{
			struct timespec ts = { wait / 1000, (wait % 1000) * 1000000L };
			while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
				;
		}
	}
}

/* ---- discovery ----------------------------------------------------------- */

static void
save_cache(struct kwh_kube *k)
{
	char *tmp, *d, *s;
	FILE *f;

	if (!k->cache_file)
		return;
	d = xstrdup(k->cache_file);
	for (s = d + 1; (s = strchr(s, '/')); s++) {
		*s = '\0';
		mkdir(d, 0755);
		*s = '/';
	}
	free(d);
	if (asprintf(&tmp, "%s.%ld.tmp", k->cache_file, (long)getpid()) < 0)
		kwh_die(KWH_EXIT_SYSTEM, "out of memory");
	if ((f = fopen(tmp, "w"))) {
		jv_dumpf(jv_copy(k->disc), f, JV_PRINT_SORTED);
		if (fclose(f) == 0 && rename(tmp, k->cache_file) == 0) {
			free(tmp);
			return;
		}
	}
	kwh_log(KWH_LOG_WARN, k->delivery, 0, "cannot write the discovery cache '%s': %s",
	    k->cache_file, strerror(errno));
	unlink(tmp);
	free(tmp);
}

static int
lookup(jv disc, const char *gv, const char *kind, struct kwh_kube_resource *out)
{
	jv e = jtake(jget(disc, gv), kind);
	const char *n = jstr(e, "name");
	int ok = 0;

	if (n && strlen(n) < sizeof out->plural) {
		snprintf(out->plural, sizeof out->plural, "%s", n);
		out->namespaced = jv_get_kind(jget(e, "namespaced")) == JV_KIND_TRUE;
		ok = 1;
	}
	jv_free(e);
	return ok;
}

int
kwh_kube_discover(struct kwh_kube *k, struct kwh_kube_result *r,
    struct kwh_kube_resource *out, const char *api_version, const char *kind,
    long long deadline_ms)
{
	char path[600];
	jv res, map;

	r->body = jv_null();
	r->status = 0;
	if (lookup(k->disc, api_version, kind, out))
		return 0;
	if (jv_object_has(jv_copy(k->fresh), jv_string(api_version)))
		goto unknown;
	snprintf(path, sizeof path, strchr(api_version, '/') ? "/apis/%s" : "/api/%s", api_version);
	if (kwh_kube_call(k, r, "GET", path, NULL, NULL, 0, 0, deadline_ms)) {
		if (r->http == 404) {
			kwh_kube_result_release(r);
			r->status = 0;
			k->fresh = jv_object_set(k->fresh, jv_string(api_version), jv_true());
			goto unknown;
		}
		return r->status;
	}
	k->fresh = jv_object_set(k->fresh, jv_string(api_version), jv_true());
	map = jv_object();
	res = jget(r->body, "resources");
	if (jv_get_kind(res) == JV_KIND_ARRAY) {
		jv_array_foreach(res, i, e) {
			const char *n = jstr(e, "name"), *kd = jstr(e, "kind");
			if (n && kd && !strchr(n, '/'))
				map = jv_object_set(map, jv_string(kd), jv_object_set(jv_object_set(
				    jv_object(), jv_string("name"), jv_string(n)),
				    jv_string("namespaced"), jv_bool(jv_get_kind(jget(e, "namespaced")) == JV_KIND_TRUE)));
			jv_free(e);
		}
	}
	jv_free(res);
	kwh_kube_result_release(r);
	k->disc = jv_object_set(k->disc, jv_string(api_version), map);
	save_cache(k);
	if (lookup(k->disc, api_version, kind, out))
		return 0;
unknown:
	seterr(r->msg, sizeof r->msg, "the API server knows no kind \"%s\" in \"%s\" "
	    "(is its CustomResourceDefinition installed?)", kind, api_version);
	return 1;
}

int
kwh_kube_guess_namespaced(const char *cache_dir, const char *server,
    const char *api_version, const char *kind)
{
	static const char *cluster[] = { "Namespace", "Node", "PersistentVolume",
	    "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "StorageClass",
	    "PriorityClass", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
	    "APIService", "ClusterWorkflowTemplate", "IngressClass", "CSIDriver", "CSINode",
	    "RuntimeClass", "VolumeAttachment", "CertificateSigningRequest",
	    "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "ClusterIssuer" };
	struct kwh_kube_resource r;

	if (cache_dir && *cache_dir && server) {
		char *f = cache_path(cache_dir, server);
		jv d = load_cache(f);
		int ok = lookup(d, api_version, kind, &r);

		jv_free(d);
		free(f);
		if (ok)
			return r.namespaced;
	}
	for (size_t i = 0; i < sizeof cluster / sizeof cluster[0]; i++)
		if (!strcmp(kind, cluster[i]))
			return 0;
	return 1;
}
