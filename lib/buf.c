#include "buf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void
kwh_buf_init(struct kwh_buf *b, size_t max)
{
	b->data = NULL;
	b->len = b->cap = 0;
	b->max = max;
}

void
kwh_buf_release(struct kwh_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void
kwh_buf_wipe(struct kwh_buf *b)
{
	if (b->data)
		explicit_bzero(b->data, b->cap);
	kwh_buf_release(b);
}

void
kwh_buf_reset(struct kwh_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

int
kwh_buf_grow(struct kwh_buf *b, size_t n)
{
	size_t need, cap;
	char *p;

	if (n > SIZE_MAX - b->len - 1) {
		errno = ENOMEM;
		return -1;
	}
	if (b->max && b->len + n > b->max) {
		errno = EFBIG;
		return -1;
	}
	need = b->len + n + 1;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	if (b->max && cap > b->max + 1 && need <= b->max + 1)
		cap = b->max + 1;
	if (!(p = realloc(b->data, cap)))
		return -1;
	if (!b->data)
		p[0] = '\0';
	b->data = p;
	b->cap = cap;
	return 0;
}

int
kwh_buf_add(struct kwh_buf *b, const void *p, size_t n)
{
	if (kwh_buf_grow(b, n) < 0)
		return -1;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int
kwh_buf_adds(struct kwh_buf *b, const char *s)
{
	return kwh_buf_add(b, s, strlen(s));
}

int
kwh_buf_addc(struct kwh_buf *b, char c)
{
	return kwh_buf_add(b, &c, 1);
}

int
kwh_buf_vprintf(struct kwh_buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	int n;

	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0 || kwh_buf_grow(b, (size_t)n) < 0)
		return -1;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int
kwh_buf_printf(struct kwh_buf *b, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = kwh_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return r;
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when it is not one. */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	size_t len, i;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

int
kwh_buf_add_json_string(struct kwh_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, run = 0;

	if (kwh_buf_addc(b, '"') < 0)
		return -1;
	while (i < n) {
		unsigned char c = u[i];
		char esc[6];
		const char *e = NULL;
		size_t elen = 2, skip = 1;

		switch (c) {
		case '"': e = "\\\""; break;
		case '\\': e = "\\\\"; break;
		case '\n': e = "\\n"; break;
		case '\r': e = "\\r"; break;
		case '\t': e = "\\t"; break;
		default:
			if (c < 0x20 || c == 0x7f) {
				memcpy(esc, "\\u00", 4);
				esc[4] = hex[c >> 4];
				esc[5] = hex[c & 15];
				e = esc;
				elen = 6;
			} else if (c >= 0x80) {
				size_t l = utf8_len(u + i, n - i);
				if (l) {
					run += l;
					i += l;
					continue;
				}
				e = "\\ufffd";	/* invalid UTF-8 byte */
				elen = 6;
			}
		}
		if (!e) {
			run++;
			i++;
			continue;
		}
		if (kwh_buf_add(b, s + i - run, run) < 0 || kwh_buf_add(b, e, elen) < 0)
			return -1;
		run = 0;
		i += skip;
	}
	if (kwh_buf_add(b, s + n - run, run) < 0)
		return -1;
	return kwh_buf_addc(b, '"');
}

char *
kwh_buf_detach(struct kwh_buf *b, size_t *len)
{
	char *p;

	if (!b->data && kwh_buf_grow(b, 0) < 0)
		return NULL;
	p = b->data;
	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

int
kwh_buf_read_fd(struct kwh_buf *b, int fd)
{
	for (;;) {
		size_t room;
		ssize_t r;

		if (kwh_buf_grow(b, 65536) < 0) {
			/* At the cap: one more byte tells whether input goes on. */
			char c;
			if (errno != EFBIG)
				return -1;
			room = b->max - b->len;
			if (room == 0) {
				r = read(fd, &c, 1);
				if (r == 0)
					return 0;
				errno = r < 0 ? errno : EFBIG;
				return -1;
			}
			if (kwh_buf_grow(b, room) < 0)
				return -1;
		}
		room = b->cap - b->len - 1;
		r = read(fd, b->data + b->len, room);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			return 0;
		b->len += (size_t)r;
		b->data[b->len] = '\0';
	}
}

int
kwh_buf_read_file(struct kwh_buf *b, const char *path)
{
	int fd, r, e;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	r = kwh_buf_read_fd(b, fd);
	e = errno;
	close(fd);
	errno = e;
	return r;
}

int
kwh_write_all(int fd, const void *p, size_t n)
{
	const char *s = p;

	while (n) {
		ssize_t w = write(fd, s, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

int
kwh_base64_decode(struct kwh_buf *b, const char *s, size_t n)
{
	static const char al[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned char q[4];
	size_t k = 0, i;
	int pad = 0;

	for (i = 0; i < n; i++) {
		const char *p;

		if (s[i] == '\r' || s[i] == '\n')
			continue;
		if (pad && s[i] != '=')
			return -2;
		if (s[i] == '=') {
			if (k < 2)
				return -2;
			pad++;
			q[k++] = 0;
		} else {
			if (!s[i] || !(p = memchr(al, s[i], 64)))
				return -2;
			q[k++] = (unsigned char)(p - al);
		}
		if (k == 4) {
			char o[3] = { (char)(q[0] << 2 | q[1] >> 4), (char)(q[1] << 4 | q[2] >> 2),
			    (char)(q[2] << 6 | q[3]) };
			if (kwh_buf_add(b, o, 3 - (size_t)pad) < 0)
				return -1;
			k = 0;
			if (pad)
				pad = 3;	/* nothing may follow */
		}
	}
	return k ? -2 : 0;
}
