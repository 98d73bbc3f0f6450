/* Fuzz target: S3's XML answers (src/store/s3xml.c over libxml2), read the way s3.c
 * reads a ListObjectsV2 page, a ListMultipartUploads page and an error. */
#include <stdint.h>
#include <stdlib.h>

#include "store/s3xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *blocks[] = {"Contents", "Upload"};
    static const char *fields[] = {"Key", "Size", "ETag", "LastModified", "UploadId"};
    struct s3xml *doc = s3xml_parse((const char *)data, size);
    struct buf v = BUF_INIT;

    buf_init(&v);
    for (size_t b = 0; b < 2; b++) {
        const struct s3xml_node *n = NULL;

        while ((n = s3xml_each(doc, blocks[b], n)))
            for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++)
                if (s3xml_text(doc, n, fields[f], &v) && v.data[v.len] != '\0')
                    abort();  /* text is always terminated */
    }
    s3xml_text(doc, NULL, "Code", &v);
    s3xml_text(doc, NULL, "NextContinuationToken", &v);
    s3xml_free(doc);
    buf_release(&v);
    return 0;
}
