/*
 * media: the pipeline of media.h. sniff -> RAW (raw.c) or libvips (thumb.c).
 *
 * THREADS: media_init() runs once in main before any worker; afterwards
 * media_process()/media_probe() may run concurrently on different files: all
 * their state is on the stack or per call. The libvips error buffer is
 * process-wide; thumb.c copies it right after each failing call and clears
 * it before a file's first libvips call (so another file's stale warnings do
 * not end up in this file's message). With several workers a message can be
 * lost or misattributed in that window: treat the text as best-effort; the
 * stage and return code carry the meaning. Last-warning fallback: see
 * media_last_warning() (internal.c).
 * TIME ZONE: RAW timestamps are recovered with localtime_r() (see raw.c) and
 * need no particular TZ; EXIF dates are strings and need none either.
 */
#include "media/media.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <vips/vips.h>

#include "base/limits.h"
#include "base/log.h"
#include "media/internal.h"
#include "media/raw.h"
#include "media/sniff.h"
#include "media/thumb.h"

/* Loaders left open after blocking every VipsForeignLoad (their subclasses
 * _File/_Buffer/_Source follow their base class). */
static const char *const allowed_loaders[] = {
    "VipsForeignLoadJpeg", "VipsForeignLoadPng",   "VipsForeignLoadWebp",
    "VipsForeignLoadTiff", "VipsForeignLoadNsgif", "VipsForeignLoadHeif",
};

static bool initialised; /* written once in media_init, before threads */

int media_init(const char *argv0, int vips_concurrency, struct err *err)
{
    if (initialised)
        return 0;
    if (VIPS_INIT(argv0 ? argv0 : "shoebox") != 0) {
        char msg[ERR_MSG_MAX];
        return err_set(err, ERR_PERMANENT, "init", "cannot start libvips: %s",
                       thumb_vips_error(msg, sizeof(msg), NULL));
    }
    vips_operation_block_set("VipsForeignLoad", TRUE);
    for (size_t i = 0; i < sizeof(allowed_loaders) / sizeof(allowed_loaders[0]); i++)
        vips_operation_block_set(allowed_loaders[i], FALSE);
    vips_cache_set_max(0);
    if (vips_concurrency > 0)
        vips_concurrency_set(vips_concurrency);
    media_route_vips_log();
    initialised = true;
    return 0;
}

/* The status of media_exit_on_no_memory; written once before any thread. */
static int no_memory_status;

/* GLib's fatal messages. No allocation here (there is none to be had): only
 * write(2) and _exit. A failed write of the line changes nothing: the status
 * tells the parent. */
static void glib_error_handler(const gchar *domain, GLogLevelFlags level, const gchar *message,
                               gpointer data)
{
    static const char head[] = "level=fatal comp=media event=no_memory msg=\"GLib: ";
    ssize_t ignored;

    if (message && strstr(message, "failed to allocate")) {
        ignored = write(STDERR_FILENO, head, sizeof(head) - 1);
        ignored = write(STDERR_FILENO, message, strnlen(message, ERR_MSG_MAX));
        ignored = write(STDERR_FILENO, "\"\n", 2);
        (void)ignored;
        _exit(no_memory_status);
    }
    g_log_default_handler(domain, level, message, data);
}

void media_exit_on_no_memory(int status)
{
    no_memory_status = status;
    /* ERROR is always fatal: a handler is chosen for ERROR | FATAL. */
    g_log_set_handler("GLib", G_LOG_LEVEL_ERROR | G_LOG_FLAG_FATAL, glib_error_handler, NULL);
}

void media_thread_shutdown(void)
{
    vips_thread_shutdown();
}

void media_opts_default(struct media_opts *o)
{
    o->max_pixels = (int64_t)LIMIT_PIXELS_DEFAULT;
    o->max_dimension = LIMIT_DIMENSION;
    o->thumb_size = MEDIA_THUMB_SIZE;
    o->preview_size = MEDIA_PREVIEW_SIZE;
}

static int read_head(const char *path, unsigned char *head, size_t cap, size_t *n,
                     struct err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t got = 0;
    int rc = -1;

    if (fd < 0)
        return err_sys(err, errno, "sniff", "cannot open the file");
    while (got < cap) {
        ssize_t r = read(fd, head + got, cap - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            err_sys(err, errno, "sniff", "cannot read the file");
            goto out;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    *n = got;
    rc = 0;
out:
    if (close(fd) != 0 && rc == 0)
        rc = err_sys(err, errno, "sniff", "cannot close the file");
    return rc;
}

static int run(const char *path, const struct media_opts *opts, bool probe_only,
               struct media_output *out, struct err *err)
{
    unsigned char head[SNIFF_HEAD_BYTES];
    struct sniff_result sn;
    VipsImage *hdr = NULL;
    size_t n = 0;
    bool is_raw = false;
    int rc = -1;

    if (!initialised)
        return err_set(err, ERR_PERMANENT, "init", "media_init() was not called");
    if (read_head(path, head, sizeof(head), &n, err) != 0)
        return -1;
    sniff_bytes(head, n, &sn);
    if (!sn.supported)
        return err_set(err, ERR_PERMANENT, "sniff", "unsupported format: %s", sn.detected);
    if (sn.fmt == MEDIA_FMT_RAW || sn.maybe_raw) {
        rc = raw_process(path, &sn, opts, probe_only, out, &is_raw, err);
        if (is_raw || rc != 0)
            return rc;
        /* A DNG or CR2 that LibRaw refuses would give libvips' view of its
         * small IFD0 preview: refuse it instead. */
        if (strcmp(sn.name, "dng") == 0 || strcmp(sn.name, "cr2") == 0)
            return err_set(err, ERR_PERMANENT, "header",
                           "cannot read the RAW file (%s): LibRaw cannot open it (unsupported "
                           "variant, truncated or corrupt)",
                           sn.detected);
        /* Data without magic that LibRaw does not know either. */
        if (sn.fmt == MEDIA_FMT_UNKNOWN)
            return err_set(err, ERR_PERMANENT, "sniff", "unsupported format: %s", sn.detected);
        rc = -1;
    }
    if (thumb_probe(path, &sn, opts, out, probe_only ? NULL : &hdr, err) != 0)
        goto out;
    if (!probe_only && thumb_render(path, &sn, hdr, opts, out, err) != 0)
        goto out;
    rc = 0;
out:
    if (hdr)
        g_object_unref(hdr);
    return rc;
}

int media_process(const char *path, const struct media_opts *opts, struct media_output *out,
                  struct err *err)
{
    memset(out, 0, sizeof(*out));
    media_meta_clear(&out->meta);
    return run(path, opts, false, out, err);
}

int media_probe(const char *path, const struct media_opts *opts, struct media_meta *meta,
                char *warnings, size_t warnings_cap, struct err *err)
{
    struct media_output *out = calloc(1, sizeof(*out));
    int rc;

    if (!out)
        return err_set(err, ERR_TRANSIENT, "header", "out of memory");
    media_meta_clear(&out->meta);
    rc = run(path, opts, true, out, err);
    *meta = out->meta;
    if (warnings && warnings_cap)
        snprintf(warnings, warnings_cap, "%s", out->warnings);
    media_output_release(out);
    free(out);
    return rc;
}

void media_output_release(struct media_output *out)
{
    if (!out)
        return;
    free(out->thumb);
    free(out->preview);
    out->thumb = out->preview = NULL;
    out->thumb_len = out->preview_len = 0;
    out->has_thumb = false;
}
