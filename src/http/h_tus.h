/* h_tus: tus 1.0.0 at /photos/tus/ and POST /api/uploads (see h_tus.c). */
#ifndef SHOEBOX_HTTP_H_TUS_H
#define SHOEBOX_HTTP_H_TUS_H

#include "http/http.h"
#include "http/route.h"

void h_tus_options(struct http_req *req);
void h_tus_head(struct http_req *req);
void h_tus_delete(struct http_req *req);
extern const struct route_body h_tus_create_body;
extern const struct route_body h_tus_patch_body;
extern const struct route_body h_tus_api_upload_body;

#endif
