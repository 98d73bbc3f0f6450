/* Fuzz target: sniff_bytes() on arbitrary bytes. It must never read past n
 * and must always name what it saw. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "media/sniff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sniff_result r;

    sniff_bytes(data, size, &r);
    if (!r.name[0] || !r.detected[0] || (r.supported && r.fmt == MEDIA_FMT_UNKNOWN))
        abort();
    if (r.maybe_raw && r.fmt != MEDIA_FMT_TIFF)
        abort();
    return 0;
}
