/*
 * store_photos: the photo rules of store.h over sql.h: recording a worker's
 * photo with dedup per user (UNIQUE (user_id, sha256)), reading, listing,
 * deleting, and the blob keys the orphan sweep must keep.
 */
#include "store/store_internal.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define PHOTO_COLS \
    "id, user_id, upload_id, file_id, name, format, size, sha256, width, height, taken_at, " \
    "taken_offset, make, model, lens, exposure_time, f_number, focal_length, iso, " \
    "orientation, gps_lat, gps_lon, gps_alt, has_thumb, warnings, blob_key, thumb_key, " \
    "preview_key, created_at, sort_at"

/* ---- recording ---- */

static void sort_key(const struct store_photo *p, int64_t now, char out[32])
{
    time_t secs = (time_t)(now / 1000);
    struct tm tm;

    if (p->taken_at[0]) {
        snprintf(out, 32, "%s", p->taken_at);
        return;
    }
    gmtime_r(&secs, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
}

/* Inserts the photo of file f: 1 done (*id set), 0 the user already had this
 * content (the UNIQUE key: no row, nothing failed), -1 failed. */
static int insert_photo(struct sql_conn *c, const struct store_file *f,
                        const struct store_photo *p, const char *sha, int64_t now, int64_t *id,
                        struct err *err)
{
    char sort[32];

    sort_key(p, now, sort);
    return sql_scalar(
        c, id, "record the photo",
        "INSERT INTO photos (user_id, upload_id, file_id, name, format, size, sha256, "
        "width, height, taken_at, taken_offset, make, model, lens, exposure_time, "
        "f_number, focal_length, iso, orientation, gps_lat, gps_lon, gps_alt, "
        "has_thumb, warnings, blob_key, thumb_key, preview_key, created_at, sort_at) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, "
        "?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29) "
        "ON CONFLICT (user_id, sha256) DO NOTHING RETURNING id",
        ARGS(VI(f->user_id), VI(f->upload_id), VI(f->id), VT(p->name[0] ? p->name : f->name),
             VT(p->format[0] ? p->format : f->format), VI(p->size ? p->size : f->size), VT(sha),
             VI(p->width), VI(p->height), VT(p->taken_at), VT(p->taken_offset), VT(p->make),
             VT(p->model), VT(p->lens), VD(p->exposure_time), VD(p->f_number),
             VD(p->focal_length), VI(p->iso), VI(p->orientation), VD(p->gps_lat),
             VD(p->gps_lon), VD(p->gps_alt), VI(p->has_thumb), VT(p->warnings),
             VT(p->blob_key), VT(p->thumb_key), VT(p->preview_key), VI(now), VT(sort)),
        err);
}

/* The user's kept photo count (users.photo_count), changed in the transaction that
 * inserts or deletes the photo. On PostgreSQL this locks the user's row until the
 * commit: it is taken after the upload's row (sql.h's lock order), never before. */
static int count_add(struct sql_conn *c, int64_t user_id, int64_t d, struct err *err)
{
    return sql_run(c, "count the user's photos",
                   "UPDATE users SET photo_count = photo_count + ?2 WHERE id = ?1",
                   ARGS(VI(user_id), VI(d)), err) < 0 ? -1 : 0;
}

static int find_sha(struct sql_conn *c, int64_t user_id, const char *sha, int64_t *id,
                    struct err *err)
{
    return sql_scalar(c, id, "look for the same photo", "SELECT id FROM photos "
                      "WHERE user_id = ?1 AND sha256 = ?2", ARGS(VI(user_id), VT(sha)), err);
}

int rules_record_photo(struct sql_conn *c, const struct store_file *f,
                       const struct store_photo *p, int64_t now, struct store_finish *fin,
                       struct err *err)
{
    const char *sha = p->sha256[0] ? p->sha256 : f->sha256;
    int r;

    if (!p->blob_key[0])
        return err_set(err, ERR_PERMANENT, "store", "photo '%s' has no blob key", f->name);
    r = find_sha(c, f->user_id, sha, &fin->photo_id, err);
    if (r < 0)
        return -1;
    if (r == 0) {
        r = insert_photo(c, f, p, sha, now, &fin->photo_id, err);
        if (r < 0 || (r == 1 && count_add(c, f->user_id, 1, err)))
            return -1;
        if (r == 1) {
            fin->state = FILE_DONE;
            return 0;
        }
        /* r == 0: the same content arrived first through another path */
        if (find_sha(c, f->user_id, sha, &fin->photo_id, err) != 1)
            return err_set(err, ERR_TRANSIENT, "store", "cannot record photo '%s'", f->name);
    }
    fin->state = FILE_DUPLICATE;
    return 0;
}

/* ---- reading ---- */

static void read_photo(struct sql_stmt *s, struct store_photo *p)
{
    memset(p, 0, sizeof(*p));
    p->id = sql_col_int64(s, 0);
    p->user_id = sql_col_int64(s, 1);
    p->upload_id = sql_col_int64(s, 2);
    p->file_id = sql_col_int64(s, 3);
    sql_col_str(s, 4, p->name, sizeof(p->name));
    sql_col_str(s, 5, p->format, sizeof(p->format));
    p->size = sql_col_int64(s, 6);
    sql_col_str(s, 7, p->sha256, sizeof(p->sha256));
    p->width = sql_col_int64(s, 8);
    p->height = sql_col_int64(s, 9);
    sql_col_str(s, 10, p->taken_at, sizeof(p->taken_at));
    sql_col_str(s, 11, p->taken_offset, sizeof(p->taken_offset));
    sql_col_str(s, 12, p->make, sizeof(p->make));
    sql_col_str(s, 13, p->model, sizeof(p->model));
    sql_col_str(s, 14, p->lens, sizeof(p->lens));
    p->exposure_time = sql_col_double(s, 15);
    p->f_number = sql_col_double(s, 16);
    p->focal_length = sql_col_double(s, 17);
    p->iso = sql_col_int64(s, 18);
    p->orientation = sql_col_int64(s, 19);
    p->gps_lat = sql_col_double(s, 20);
    p->gps_lon = sql_col_double(s, 21);
    p->gps_alt = sql_col_double(s, 22);
    p->has_thumb = sql_col_int64(s, 23) != 0;
    sql_col_str(s, 24, p->warnings, sizeof(p->warnings));
    sql_col_str(s, 25, p->blob_key, sizeof(p->blob_key));
    sql_col_str(s, 26, p->thumb_key, sizeof(p->thumb_key));
    sql_col_str(s, 27, p->preview_key, sizeof(p->preview_key));
    p->created_at = sql_col_int64(s, 28);
    sql_col_str(s, 29, p->sort_at, sizeof(p->sort_at));
}

static void photo_row(struct sql_stmt *s, void *out)
{
    read_photo(s, out);
}

static int photo_get(struct store *st, int64_t id, int64_t user_id, struct store_photo *out,
                     struct err *err)
{
    return rules_get_one(st, "read the photo", "SELECT " PHOTO_COLS " FROM photos "
                         "WHERE id = ?1 AND (?2 = 0 OR user_id = ?2)",
                         ARGS(VI(id), VI(user_id)), photo_row, out, err);
}

static int photo_find_sha(struct store *st, int64_t user_id, const char *sha256,
                          struct store_photo *out, struct err *err)
{
    return rules_get_one(st, "read the photo", "SELECT " PHOTO_COLS " FROM photos "
                         "WHERE user_id = ?1 AND sha256 = ?2", ARGS(VI(user_id), VT(sha256)),
                         photo_row, out, err);
}

/* ---- listing ----
 * A page is read as ids through an index and then only its rows (a deferred join): a
 * whole library (upload_id 0) through photos_list, which holds every column the inner
 * query reads, so a walk (OFFSET) reads index entries, not rows; one upload's photos
 * (few) through photos_upload. Four ways in, each for the library and for one upload:
 * OFFSET from the newest, OFFSET from the oldest (the far half of the list, walked from
 * its own end), and one index range scan on each side of a cursor key. */

#define ORDER_NEW "ORDER BY sort_at DESC, created_at DESC, id DESC"
#define ORDER_OLD "ORDER BY sort_at, created_at, id"
#define KEY "(sort_at, created_at, id)"
#define LIB "user_id = ?1"
#define UPL "upload_id = ?2 AND user_id = ?1"
/* The ids (inner query) of a page, then its rows newest first. */
#define PAGE_OF(inner) \
    "SELECT " PHOTO_COLS " FROM photos WHERE id IN (SELECT id FROM photos WHERE " inner \
    ") " ORDER_NEW

/* [library 0 / upload 1][enum page_way] */
enum page_way { WAY_NEW, WAY_OLD, WAY_BEFORE, WAY_AFTER };
static const char *const page_sql[2][4] = {
    {PAGE_OF(LIB " " ORDER_NEW " LIMIT ?2 OFFSET ?3"),
     PAGE_OF(LIB " " ORDER_OLD " LIMIT ?2 OFFSET ?3"),
     PAGE_OF(LIB " AND " KEY " < (?2, ?3, ?4) " ORDER_NEW " LIMIT ?5"),
     PAGE_OF(LIB " AND " KEY " > (?2, ?3, ?4) " ORDER_OLD " LIMIT ?5")},
    {PAGE_OF(UPL " " ORDER_NEW " LIMIT ?3 OFFSET ?4"),
     PAGE_OF(UPL " " ORDER_OLD " LIMIT ?3 OFFSET ?4"),
     PAGE_OF(UPL " AND " KEY " < (?3, ?4, ?5) " ORDER_NEW " LIMIT ?6"),
     PAGE_OF(UPL " AND " KEY " > (?3, ?4, ?5) " ORDER_OLD " LIMIT ?6")},
};
/* Whether a photo exists on one side of a key: [library / upload][older / newer]. */
static const char *const beyond_sql[2][2] = {
    {"SELECT count(*) FROM (SELECT 1 FROM photos WHERE " LIB " AND " KEY
     " < (?2, ?3, ?4) LIMIT 1) AS t",
     "SELECT count(*) FROM (SELECT 1 FROM photos WHERE " LIB " AND " KEY
     " > (?2, ?3, ?4) LIMIT 1) AS t"},
    {"SELECT count(*) FROM (SELECT 1 FROM photos WHERE " UPL " AND " KEY
     " < (?3, ?4, ?5) LIMIT 1) AS t",
     "SELECT count(*) FROM (SELECT 1 FROM photos WHERE " UPL " AND " KEY
     " > (?3, ?4, ?5) LIMIT 1) AS t"},
};

/* The statement's values: user, [upload,] then a key or nothing, then the rest. */
static size_t page_args(const struct store_page *pg, const struct store_photo_key *k,
                        int64_t a, int64_t b, size_t nrest, struct sql_val v[7])
{
    size_t n = 0;

    v[n++] = VI(pg->user_id);
    if (pg->upload_id)
        v[n++] = VI(pg->upload_id);
    if (k) {
        v[n++] = VT(k->sort_at);
        v[n++] = VI(k->created_at);
        v[n++] = VI(k->id);
    }
    if (nrest > 0)
        v[n++] = VI(a);
    if (nrest > 1)
        v[n++] = VI(b);
    return n;
}

static void key_of(const struct store_photo *p, struct store_photo_key *k)
{
    snprintf(k->sort_at, sizeof(k->sort_at), "%s", p->sort_at);
    k->created_at = p->created_at;
    k->id = p->id;
}

static int run_page(struct sql_conn *c, struct store_page *pg, enum page_way way, int64_t lim,
                    int64_t off, store_photo_cb cb, void *ctx, struct err *err)
{
    const struct store_photo_key *k = way >= WAY_BEFORE ? &pg->key : NULL;
    struct sql_val v[7];
    size_t n = page_args(pg, k, lim, off, k ? 1 : 2, v);
    struct sql_stmt *s = sql_prepare(c, "list photos", page_sql[pg->upload_id != 0][way], v, n,
                                     err);
    struct store_photo p;

    if (!s)
        return -1;
    for (;;) {
        int r = sql_step(s, "list photos", err);
        if (r <= 0)
            return r;
        read_photo(s, &p);
        key_of(&p, pg->n == 0 ? &pg->first : &pg->last);
        if (pg->n == 0)
            pg->last = pg->first;
        pg->n++;
        cb(ctx, &p);
    }
}

/* 1 when a photo lies on the `newer` side of k, 0 none, -1 failed. */
static int beyond(struct sql_conn *c, const struct store_page *pg,
                  const struct store_photo_key *k, bool newer, struct err *err)
{
    struct sql_val v[7];
    size_t n = page_args(pg, k, 0, 0, 0, v);
    int64_t found = 0;

    if (sql_scalar(c, &found, "list photos", beyond_sql[pg->upload_id != 0][newer], v, n,
                   err) != 1)
        return -1;
    return found > 0;
}

/* An OFFSET page, walked to from the nearer end: the rows pg->offset.. from the newest
 * are, from the oldest, the rows total - offset - limit.. (the deferred join's outer
 * ORDER BY puts them newest first again). */
static int offset_page(struct sql_conn *c, struct store_page *pg, store_photo_cb cb, void *ctx,
                       struct err *err)
{
    int64_t off = pg->offset, lim = pg->limit, total = pg->total, end;

    if (off >= total)
        return 0;
    end = lim > total - off ? total : off + lim;  /* the page is rows off..end-1 */
    if (lim == SQL_NO_LIMIT || off <= total - end) {
        if (run_page(c, pg, WAY_NEW, lim, off, cb, ctx, err))
            return -1;
    } else if (run_page(c, pg, WAY_OLD, end - off, total - end, cb, ctx, err)) {
        return -1;
    }
    pg->newer = off > 0;
    pg->older = off + pg->n < total;
    return 0;
}

/* A page on one side of pg->key: one range scan, then whether more lie beyond it. */
static int cursor_page(struct sql_conn *c, struct store_page *pg, store_photo_cb cb, void *ctx,
                       struct err *err)
{
    bool before = pg->from == STORE_PAGE_BEFORE;
    int r;

    if (run_page(c, pg, before ? WAY_BEFORE : WAY_AFTER, pg->limit, 0, cb, ctx, err))
        return -1;
    /* Towards the cursor: what lies beyond the page's near end (or the key itself). */
    r = beyond(c, pg, pg->n ? (before ? &pg->first : &pg->last) : &pg->key, before, err);
    if (r < 0)
        return -1;
    if (before)
        pg->newer = r;
    else
        pg->older = r;
    /* Away from it: a short page is the end; a full one may have more behind it. */
    r = 0;
    if (pg->n == pg->limit && (r = beyond(c, pg, before ? &pg->last : &pg->first, !before,
                                          err)) < 0)
        return -1;
    if (before)
        pg->older = r;
    else
        pg->newer = r;
    return 0;
}

/* The photos the page counts from: the kept count for a library, counted for one upload
 * (through photos_upload: an upload's photos, not the library's). */
static int page_total(struct sql_conn *c, const struct store_page *pg, int64_t *total,
                      struct err *err)
{
    int rc = pg->upload_id == 0
                 ? sql_scalar(c, total, "count photos",
                              "SELECT photo_count FROM users WHERE id = ?1",
                              ARGS(VI(pg->user_id)), err)
                 : sql_scalar(c, total, "count photos",
                              "SELECT count(*) FROM photos WHERE upload_id = ?2 AND user_id = ?1",
                              ARGS(VI(pg->user_id), VI(pg->upload_id)), err);
    if (rc == 0)
        *total = 0;  /* no such user: nothing to list */
    return rc < 0 ? -1 : 0;
}

static int photo_page(struct store *st, struct store_page *pg, store_photo_cb cb, void *ctx,
                      struct err *err)
{
    struct sql_conn *c = sql_pool_borrow(POOL(st), err);
    int rc = -1;

    if (!c)
        return -1;
    pg->n = 0;
    pg->newer = pg->older = false;
    memset(&pg->first, 0, sizeof(pg->first));
    memset(&pg->last, 0, sizeof(pg->last));
    if (pg->limit <= 0)
        pg->limit = SQL_NO_LIMIT;
    if (pg->offset < 0)
        pg->offset = 0;
    if (sql_read_begin(c, err))
        goto out;
    if (page_total(c, pg, &pg->total, err) ||
        (pg->from == STORE_PAGE_OFFSET ? offset_page(c, pg, cb, ctx, err)
                                       : cursor_page(c, pg, cb, ctx, err)) ||
        sql_read_end(c, err))
        goto out;
    rc = 0;
out:
    sql_pool_give_back(POOL(st), c);
    return rc;
}

/* ---- deleting ---- */

static int photo_delete(struct store *st, int64_t id, int64_t user_id, struct store_photo *out,
                        bool *last_ref, struct err *err)
{
    struct sql_conn *c = sql_pool_borrow(POOL(st), err);
    struct sql_stmt *s = NULL;
    struct store_photo p;
    int64_t others = 0;
    int rc = -1, r;

    if (!c)
        return -1;
    if (sql_begin(c, err))
        goto out;
    r = sql_row1(c, &s, "read the photo", "SELECT " PHOTO_COLS " FROM photos WHERE id = ?1 "
                 "AND (?2 = 0 OR user_id = ?2)", ARGS(VI(id), VI(user_id)), err);
    if (r <= 0) {
        rc = r == 0 ? STORE_NOT_FOUND : -1;
        goto out;
    }
    read_photo(s, &p);
    sql_reset(s);
    r = (int)sql_run(c, "delete the photo", "DELETE FROM photos WHERE id = ?1", ARGS(VI(id)),
                     err);
    if (r < 0 || (r > 0 && count_add(c, p.user_id, -r, err)))
        goto out;
    /* Keys are derived from the content, so one test covers thumb and preview too. A
     * file that holds the same original (handed off, not yet processed) is a use too. */
    if (sql_scalar(c, &others, "count the photo's other uses",
                   "SELECT (SELECT count(*) FROM photos WHERE blob_key = ?1) + "
                   "(SELECT count(*) FROM upload_files WHERE spool = ?1)",
                   ARGS(VT(p.blob_key)), err) != 1)
        goto out;
    if (sql_commit(c, err))
        goto out;
    if (out)
        *out = p;
    if (last_ref)
        *last_ref = others == 0;
    rc = 0;
out:
    sql_pool_give_back(POOL(st), c);
    return rc;
}

static int blob_refs(struct store *st, store_key_cb cb, void *ctx, struct err *err)
{
    struct rules_each_key e = {cb, ctx};

    return sql_list(POOL(st), "list stored blobs",
                    "SELECT blob_key FROM photos WHERE blob_key <> '' "
                    "UNION SELECT thumb_key FROM photos WHERE thumb_key <> '' "
                    "UNION SELECT preview_key FROM photos WHERE preview_key <> ''",
                    NOARGS, rules_each_key, &e, err);
}

void rules_photos_ops(struct store_ops *o)
{
    o->photo_get = photo_get;
    o->photo_find_sha = photo_find_sha;
    o->photo_page = photo_page;
    o->photo_delete = photo_delete;
    o->blob_refs = blob_refs;
}
