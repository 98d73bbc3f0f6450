/*
 * limits: every bound on untrusted input, in one place (SQLite's sqliteLimit.h).
 * Each has a test just under and just over it. Values configurable at run time
 * (file size, pixels) have their default here and their option in config.c.
 */
#ifndef SHOEBOX_BASE_LIMITS_H
#define SHOEBOX_BASE_LIMITS_H

/* Per-file byte limit default: the seed's 100 MB; camera RAW files reach ~80 MB. */
#define LIMIT_FILE_BYTES_DEFAULT (100ULL * 1024 * 1024)
/* Pixel limit default: 120 Mpx covers 100 MP medium-format sensors; decoding
 * 120 Mpx x 3 bytes x 2 workers stays under half a gigabyte. */
#define LIMIT_PIXELS_DEFAULT (120ULL * 1000 * 1000)
/* Least --worker-memory (a worker's address space): a worker maps ~225 MB before it
 * decodes anything (libvips, libheif, LibRaw and their libraries, measured on Debian 12),
 * and below that every worker dies in vips_init and is restarted, once a second, for
 * ever. A limit that leaves room for a small photo is refused at start instead. */
#define LIMIT_WORKER_MEMORY_MIN (256LL * 1024 * 1024)
/* Longest side: libvips and libjpeg handle 65535, but no camera exceeds 32768. */
#define LIMIT_DIMENSION 32768
/* Parts in one multipart request: a browser page sends a few hundred at a time. */
#define LIMIT_PARTS 2000
/* Bytes of one multipart part's header block (Content-Disposition + Type). */
#define LIMIT_PART_HEADER_BYTES 8192
/* Bytes of a client file name kept as display text (longer names are cut). */
#define LIMIT_FILENAME_BYTES 255
/* Bytes of a non-file form field value (csrf token, upload id, expected). */
#define LIMIT_FIELD_BYTES 4096
/* Bytes of a urlencoded form body (login). */
#define LIMIT_FORM_BYTES 16384
/* Files one upload may announce with `expected`. */
#define LIMIT_UPLOAD_FILES 100000
/* Length of a user name. */
#define LIMIT_USERNAME_BYTES 64
/* Bytes of EXIF data read from a file (the APP1 segment caps JPEG at 64 KB;
 * others are bounded here). */
#define LIMIT_EXIF_BYTES (1024 * 1024)
/* Login throttle (http/throttle.c). Failed logins a client address, or a user
 * name, gets before each further attempt must wait: 5 covers a person's typos. */
#define LIMIT_LOGIN_FREE_FAILURES 5
/* The first wait; it doubles with each further failure... */
#define LIMIT_LOGIN_DELAY_MS 1000
/* ...up to this: a real user whose name is under attack waits at most half a
 * minute, while guessing stays at ~3000 tries a day per name and per address. */
#define LIMIT_LOGIN_DELAY_MAX_MS 30000
/* Failures older than this are forgotten (the count starts again). */
#define LIMIT_LOGIN_FORGET_MS (15 * 60 * 1000)
/* Addresses and names tracked at once (~0.5 MB); when full, the entry idle the
 * longest is reused. */
#define LIMIT_LOGIN_TRACKED 2048

/* Milliseconds a connection has to send a whole request head, from connecting
 * or from its previous response (keep-alive). Browsers send the head in one
 * packet; a client dribbling a byte a second (slowloris) is cut off here. */
#define LIMIT_HEADER_MS 10000
/* A request body gets this grace after its head ... */
#define LIMIT_BODY_MS 30000
/* ... plus one second for every this many bytes received: 1 KB/s is far below
 * any real uplink (Apache's mod_reqtimeout asks 500 B/s) and still ends a
 * body sent at a byte a second within about LIMIT_BODY_MS. */
#define LIMIT_BODY_RATE 1024
/* Connections from one client address at once: a browser opens 6 per host
 * and a user may keep up to 64 progress streams (h_progress.c); four such
 * users behind one NAT address still fit. */
#define LIMIT_CONNECTIONS_PER_ADDR 256
/* Bytes of a request target (path and query): ours are short; proxies
 * commonly stop at 8 KB. Longer -> 414. */
#define LIMIT_URI_BYTES 8192
/* Bytes of all request header lines together: a browser with every cookie
 * sends a few KB; nginx's default allows 32 KB. More -> 431. */
#define LIMIT_HEAD_BYTES 32768

/* Scans in one progressive JPEG: encoders write about 10 (jpegtran's most
 * elaborate scripts stay under 100), and each scan walks every coefficient
 * block again, ~3 ms per scan at 24 Mpx: 10,000 near-empty scans cost 28 s of
 * CPU. 250 scans stay under a second (libjpeg-turbo's libjpeg.txt, "djpeg
 * -maxscans"). */
#define LIMIT_JPEG_SCANS 250

/* Bytes of a HEIC file's 'meta' box that media/heifgrid.c reads into memory:
 * an iPhone's is 3-10 KB (48 tiles, EXIF elsewhere); libheif itself refuses
 * far larger ones. Over it, the file goes the libheif way. */
#define LIMIT_HEIF_META_BYTES (1024 * 1024)
/* Tiles in one HEIC grid that media/heifgrid.c decodes: a 12 MP iPhone photo
 * has 48 of 512 px, a 48 MP one 192; 1024 tiles of 512 px exceed
 * LIMIT_PIXELS_DEFAULT already. More go the libheif way. */
#define LIMIT_HEIF_TILES 1024

/* Bytes of one S3 answer read into memory (errors, listings, upload ids; object
 * bodies stream past it): a ListObjectsV2 page of 1000 keys of 1 KB each is ~1.3 MB. */
#define LIMIT_S3_RESPONSE_BYTES (4 * 1024 * 1024)

/* Seconds a presigned URL of an original stays valid (--media-url with an s3:// store):
 * long enough to start a download on a slow link (S3 checks it only when the GET
 * starts), short enough that a URL copied out of a browser soon stops working. */
#define LIMIT_PRESIGN_SECONDS 300

#endif
