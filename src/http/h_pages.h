/*
 * h_pages: small pages: / (to /photos/), /healthz, the placeholder /photos/
 * home (replaced by the gallery) and /static/<path> (web/css, web/js, web/img).
 */
#ifndef SHOEBOX_HTTP_H_PAGES_H
#define SHOEBOX_HTTP_H_PAGES_H

struct http_req;

void h_root(struct http_req *req);
void h_healthz(struct http_req *req);
void h_photos_home(struct http_req *req);
void h_static(struct http_req *req);

#endif
