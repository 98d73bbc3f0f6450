/* h_api: the JSON API for what was stored, the photo files, retry and delete. */
#ifndef SHOEBOX_HTTP_H_API_H
#define SHOEBOX_HTTP_H_API_H

#include "http/http.h"

void h_api_photos(struct http_req *req);  /* GET /api/photos[?upload=ID&limit&offset|before|after] */
void h_api_photo(struct http_req *req);         /* GET /api/photos/{id} */
void h_api_photo_delete(struct http_req *req);  /* DELETE /api/photos/{id}, POST /photos/{id}/delete */
void h_api_uploads(struct http_req *req);       /* GET /api/uploads */
void h_api_upload(struct http_req *req);        /* GET /api/uploads/{id} */
void h_api_retry(struct http_req *req);         /* POST /photos/uploads/{id}/files/{id}/retry */
void h_photo_thumb(struct http_req *req);       /* GET /photos/{id}/thumb.jpg */
void h_photo_preview(struct http_req *req);     /* GET /photos/{id}/preview.jpg */
void h_photo_original(struct http_req *req);    /* GET /photos/{id}/original */

#endif
