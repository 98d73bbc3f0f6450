/*
 * gifcheck: is every frame of a GIF whole? libvips reads the first frame for
 * the thumbnails and nothing else, and libnsgif fills a frame whose data ends
 * early without a word, so a GIF with broken later frames would be stored as
 * if it were fine. Two checks: the block structure up to the trailer (a frame
 * cut short by the end of the file), then every frame decoded once (invalid
 * LZW data), within the pixel limit.
 */
#ifndef SHOEBOX_MEDIA_GIFCHECK_H
#define SHOEBOX_MEDIA_GIFCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* Walk the GIF's blocks. 0: whole (a missing trailer after the last whole
 * frame is fine); 1: damaged, why says where ("the data ends inside frame 3");
 * -1: the file cannot be read (err). *frames counts the frames seen. */
int gifcheck_structure(const char *path, int *frames, char *why, size_t why_len, struct err *err);

/* Decode frames 2..n of a w x h GIF (libvips), at most max_pixels pixels in
 * all. 0: fine; 1: damaged (why); *checked says how many frames were decoded. */
int gifcheck_frames(const char *path, int64_t w, int64_t h, int pages, int64_t max_pixels,
                    int *checked, char *why, size_t why_len);

#endif
