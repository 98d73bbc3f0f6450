/* Fuzz target: the whole per-file path a worker runs (media_process: sniff,
 * header, limits, EXIF, decode, preview and thumbnail) on arbitrary bytes,
 * written to a memfd like a spooled upload. This is where the hand-written
 * libjpeg source (jpegscale.c), the box shrink and the encoder meet hostile
 * input. A small pixel limit keeps each run cheap. */
#include "media_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct media_opts o;
    struct media_output out;
    struct err e = {0};
    char path[64];
    int fd = fuzz_media_input("fuzz_process", data, size, path, sizeof(path));

    media_opts_default(&o);
    o.max_pixels = 4 * 1000 * 1000;
    if (media_process(path, &o, &out, &e) != 0) {
        if (!e.msg[0] || !e.stage[0])
            abort(); /* a failure always carries a reason */
    } else if (out.has_thumb && (!out.thumb || !out.thumb_len || !out.preview || !out.preview_len)) {
        abort(); /* "has a thumbnail" means both images are there */
    }
    media_output_release(&out);
    close(fd);
    return 0;
}
