/* err: see err.h. */
#include "base/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void fill(struct err *err, enum err_class cls, const char *stage, const char *fmt,
                 va_list ap)
{
    err->cls = cls;
    snprintf(err->stage, sizeof(err->stage), "%s", stage ? stage : "");
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
}

int err_set(struct err *err, enum err_class cls, const char *stage, const char *fmt, ...)
{
    va_list ap;

    if (!err)
        return -1;
    va_start(ap, fmt);
    fill(err, cls, stage, fmt, ap);
    va_end(ap);
    err->sys_errno = 0;
    return -1;
}

static enum err_class classify(int errnum)
{
    switch (errnum) {
    case ENOSPC:
    case EDQUOT:
    case EIO:
    case ENOMEM:
    case EAGAIN:
    case EINTR:
    case EBUSY:
    case EMFILE:
    case ENFILE:
        return ERR_TRANSIENT;
    default:
        return ERR_PERMANENT;
    }
}

int err_sys(struct err *err, int errnum, const char *stage, const char *fmt, ...)
{
    va_list ap;
    size_t len;

    if (!err)
        return -1;
    va_start(ap, fmt);
    fill(err, classify(errnum), stage, fmt, ap);
    va_end(ap);
    err->sys_errno = errnum;
    len = strlen(err->msg);
    if (len < sizeof(err->msg))
        snprintf(err->msg + len, sizeof(err->msg) - len, ": %s", strerror(errnum));
    return -1;
}

void err_clear(struct err *err)
{
    if (err)
        memset(err, 0, sizeof(*err));
}

bool err_is_set(const struct err *err)
{
    return err && err->cls != ERR_NONE;
}
