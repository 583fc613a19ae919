/* buf.h — the one growable byte buffer that owns heap strings in kwh. */
#ifndef KWH_BUF_H
#define KWH_BUF_H
#include <stdarg.h>
#include <stddef.h>

/*
 * A buffer owns data[0..len), always NUL-terminated when data is not NULL.
 * max, when not 0, caps len: an append that would pass it fails with -1
 * and errno EFBIG, leaving the buffer as it was (for untrusted input).
 * Initialise with KWH_BUF_INIT or kwh_buf_init(); give the memory back with
 * kwh_buf_release(); kwh_buf_detach() hands it to the caller instead.
 */
struct kwh_buf {
	char *data;
	size_t len, cap, max;
};
#define KWH_BUF_INIT { 0, 0, 0, 0 }

void kwh_buf_init(struct kwh_buf *b, size_t max);
/* Frees the memory and leaves the buffer empty and reusable. */
void kwh_buf_release(struct kwh_buf *b);
/* Like release, but overwrites the bytes first (secrets). */
void kwh_buf_wipe(struct kwh_buf *b);
/* Makes room for n more bytes. 0, or -1 (ENOMEM, EFBIG). */
int kwh_buf_grow(struct kwh_buf *b, size_t n);
int kwh_buf_add(struct kwh_buf *b, const void *p, size_t n);
int kwh_buf_adds(struct kwh_buf *b, const char *s);
int kwh_buf_addc(struct kwh_buf *b, char c);
int kwh_buf_printf(struct kwh_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int kwh_buf_vprintf(struct kwh_buf *b, const char *fmt, va_list ap);
/*
 * Appends s[0..n) as a JSON string literal, quotes included; bytes that
 * are not valid UTF-8 become U+FFFD, so the output is always valid JSON.
 */
int kwh_buf_add_json_string(struct kwh_buf *b, const char *s, size_t n);
/* Returns the data (caller frees; never NULL) and leaves b empty. */
char *kwh_buf_detach(struct kwh_buf *b, size_t *len);
void kwh_buf_reset(struct kwh_buf *b);

/*
 * Reads all of fd into b (respecting b->max). 0 at end of file, -1 on a
 * read error or when the cap is passed (errno EFBIG).
 */
int kwh_buf_read_fd(struct kwh_buf *b, int fd);
/* Reads a whole file. 0, or -1 with errno set. */
int kwh_buf_read_file(struct kwh_buf *b, const char *path);
/* Writes all of p[0..n) to fd, retrying short writes. 0 or -1. */
int kwh_write_all(int fd, const void *p, size_t n);

/*
 * Appends the bytes s[0..n) encode in base64 to b, as Go's
 * base64.StdEncoding.DecodeString decodes them (which Kubernetes uses for
 * []byte fields): the standard alphabet, padding required, CR and LF
 * skipped.  0; -1 out of memory; -2 not base64.
 */
int kwh_base64_decode(struct kwh_buf *b, const char *s, size_t n);

#endif
