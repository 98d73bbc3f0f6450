/*
 * err: the error record every fallible function may fill.
 *
 * A function that can fail returns int (0 ok, -1 failed) and takes an optional
 * `struct err *err`. The record carries a class (permanent or transient, which
 * decides whether the job layer retries), the stage that failed ("receive",
 * "sniff", "decode", "exif", "thumbnail", "store", ...) and a message written
 * for a person: lower case, no full stop, the subject in quotes.
 * It becomes a failed file's stored error, so keep messages meaningful.
 */
#ifndef SHOEBOX_BASE_ERR_H
#define SHOEBOX_BASE_ERR_H

#include <stdbool.h>

#define ERR_STAGE_MAX 32
#define ERR_MSG_MAX 256

enum err_class {
    ERR_NONE = 0,
    ERR_PERMANENT,  /* retrying cannot help: bad input, unsupported, over a limit */
    ERR_TRANSIENT,  /* I/O, out of memory, database busy: worth retrying */
};

struct err {
    enum err_class cls;
    int sys_errno;               /* errno copied at the failure, 0 if none */
    char stage[ERR_STAGE_MAX];
    char msg[ERR_MSG_MAX];
};

/* Fill err (if not NULL) and return -1, so callers can `return err_set(...)`. */
int err_set(struct err *err, enum err_class cls, const char *stage, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Like err_set, appending ": strerror(errnum)" and classifying by errno
 * (ENOSPC, EIO, ENOMEM, EAGAIN, EINTR... transient; the rest permanent). */
int err_sys(struct err *err, int errnum, const char *stage, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

void err_clear(struct err *err);
bool err_is_set(const struct err *err);

#endif
