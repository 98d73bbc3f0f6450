/* Fuzz target: the header/limits/EXIF path (media_probe) on arbitrary bytes,
 * written to a memfd so loaders and LibRaw open it like a spooled upload.
 * Pixels are never decoded. media_init runs once (static flag). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/log.h"
#include "media/media.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    struct media_opts o;
    struct media_meta m;
    struct err e = {0};
    char path[64], warn[128];
    int fd;

    if (!ready) {
        log_init(LOG_ERROR, NULL); /* libvips warnings would flood the output */
        if (media_init("fuzz_header", 1, &e) != 0)
            abort();
        ready = true;
    }
    fd = memfd_create("fuzz-header", MFD_CLOEXEC);
    if (fd < 0)
        abort();
    if (size > 0 && write(fd, data, size) != (ssize_t)size)
        abort();
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    media_opts_default(&o);
    /* Small limits keep each run cheap and exercise the refusal path. */
    o.max_pixels = 16 * 1000 * 1000;
    if (media_probe(path, &o, &m, warn, sizeof(warn), &e) != 0 && (!e.msg[0] || !e.stage[0]))
        abort(); /* a failure always carries a reason */
    close(fd);
    return 0;
}
