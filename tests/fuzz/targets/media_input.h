/* Shared by the media fuzz targets: media_init once (libvips warnings off),
 * and the input bytes in a memfd, opened by path like a spooled upload.
 * Header-only: each target is its own executable. */
#ifndef SHOEBOX_FUZZ_MEDIA_INPUT_H
#define SHOEBOX_FUZZ_MEDIA_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/log.h"
#include "media/media.h"

/* Writes data to a new memfd and its /proc path into path; returns the fd
 * (close it after the run). Aborts when the setup itself fails. */
static int fuzz_media_input(const char *name, const uint8_t *data, size_t size, char *path,
                            size_t path_len)
{
    static bool ready;
    struct err e = {0};
    int fd;

    if (!ready) {
        log_init(LOG_ERROR, NULL); /* libvips warnings would flood the output */
        if (media_init(name, 1, &e) != 0)
            abort();
        ready = true;
    }
    fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0)
        abort();
    if (size > 0 && write(fd, data, size) != (ssize_t)size)
        abort();
    snprintf(path, path_len, "/proc/self/fd/%d", fd);
    return fd;
}

#endif
