/*
 * h_login: GET/POST /login and POST /logout. Sessions are rotated at every
 * login (new token; the presented one is deleted) and the CSRF token with it.
 * A wrong password and an unknown user look and take the same.
 */
#ifndef SHOEBOX_HTTP_H_LOGIN_H
#define SHOEBOX_HTTP_H_LOGIN_H

#include <stdbool.h>
#include <stddef.h>

struct http_req;

void h_login_form(struct http_req *req);
void h_login_submit(struct http_req *req);
void h_logout(struct http_req *req);

/* next if it is a local path ("/x", not "//x" or "/\x", no control bytes), else
 * "/photos/". Borrowed from next or static. */
const char *h_login_safe_next(const char *next);

#endif
