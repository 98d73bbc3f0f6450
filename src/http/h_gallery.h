/*
 * h_gallery: the photo pages. GET /photos/ is the user's photos, newest first
 * (date taken, then upload time), as a grid of lazy-loaded thumbnails with
 * pagination (?page=N). GET /photos/{id}/ is one photo: preview, metadata,
 * download and delete (?delete=1 is the confirmation step for browsers without
 * JavaScript; with it, app.js asks with confirm()). Another user's photo is 404.
 */
#ifndef SHOEBOX_HTTP_H_GALLERY_H
#define SHOEBOX_HTTP_H_GALLERY_H

struct http_req;

/* Photos shown per gallery page. */
#define GALLERY_PAGE_SIZE 48

void h_gallery(struct http_req *req);
void h_photo_page(struct http_req *req);

#endif
