/* Fuzz target: the header/limits/EXIF path (media_probe) on arbitrary bytes,
 * written to a memfd so loaders and LibRaw open it like a spooled upload.
 * Pixels are never decoded. */
#include "media_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct media_opts o;
    struct media_meta m;
    struct err e = {0};
    char path[64], warn[128];
    int fd = fuzz_media_input("fuzz_header", data, size, path, sizeof(path));

    media_opts_default(&o);
    /* Small limits keep each run cheap and exercise the refusal path. */
    o.max_pixels = 16 * 1000 * 1000;
    if (media_probe(path, &o, &m, warn, sizeof(warn), &e) != 0 && (!e.msg[0] || !e.stage[0]))
        abort(); /* a failure always carries a reason */
    close(fd);
    return 0;
}
