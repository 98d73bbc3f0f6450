/* h_upload: POST /photos/upload/ — the streaming multipart ingest (see h_upload.c). */
#ifndef SHOEBOX_HTTP_H_UPLOAD_H
#define SHOEBOX_HTTP_H_UPLOAD_H

#include "http/route.h"

extern const struct route_body h_upload_body;

#endif
