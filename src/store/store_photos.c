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
    "preview_key, created_at"

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
        if (r < 0)
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

/* The rows of one page, on c (inside the caller's read snapshot). A user's whole
 * library (upload_id 0) is paged in photos_list's order by a deferred join: the OFFSET
 * walks that index alone (it holds every column the inner query reads), and only the
 * page's rows are read, so the last page of 100,000 costs an index walk, not 100,000 row
 * reads. One upload's photos (few) go through photos_upload. */
static struct sql_stmt *page_stmt(struct sql_conn *c, int64_t user_id, int64_t upload_id,
                                  int64_t limit, int64_t offset, struct err *err)
{
    int64_t lim = limit > 0 ? limit : SQL_NO_LIMIT, off = offset > 0 ? offset : 0;

    if (upload_id == 0)
        return sql_prepare(c, "list photos", "SELECT " PHOTO_COLS " FROM photos WHERE id IN "
                           "(SELECT id FROM photos WHERE user_id = ?1 "
                           "ORDER BY sort_at DESC, created_at DESC, id DESC LIMIT ?2 OFFSET ?3) "
                           "ORDER BY sort_at DESC, created_at DESC, id DESC",
                           ARGS(VI(user_id), VI(lim), VI(off)), err);
    return sql_prepare(c, "list photos", "SELECT " PHOTO_COLS " FROM photos "
                       "WHERE upload_id = ?2 AND user_id = ?1 "
                       "ORDER BY sort_at DESC, created_at DESC, id DESC LIMIT ?3 OFFSET ?4",
                       ARGS(VI(user_id), VI(upload_id), VI(lim), VI(off)), err);
}

static int list_page(struct sql_conn *c, int64_t user_id, int64_t upload_id, int64_t limit,
                     int64_t offset, store_photo_cb cb, void *ctx, struct err *err)
{
    struct sql_stmt *s = page_stmt(c, user_id, upload_id, limit, offset, err);
    struct store_photo p;

    if (!s)
        return -1;
    for (;;) {
        int r = sql_step(s, "list photos", err);
        if (r <= 0)
            return r;
        read_photo(s, &p);
        cb(ctx, &p);
    }
}

/* How many photos the page counts from (index-only for a whole library). */
static int count_photos(struct sql_conn *c, int64_t user_id, int64_t upload_id, int64_t *total,
                        struct err *err)
{
    int rc = upload_id == 0
                 ? sql_scalar(c, total, "count photos",
                              "SELECT count(*) FROM photos WHERE user_id = ?1",
                              ARGS(VI(user_id)), err)
                 : sql_scalar(c, total, "count photos",
                              "SELECT count(*) FROM photos WHERE upload_id = ?2 AND user_id = ?1",
                              ARGS(VI(user_id), VI(upload_id)), err);
    return rc == 1 ? 0 : -1;
}

static int photo_list(struct store *st, int64_t user_id, int64_t upload_id, int64_t limit,
                      int64_t offset, store_photo_cb cb, void *ctx, int64_t *total,
                      struct err *err)
{
    struct sql_conn *c = sql_pool_borrow(POOL(st), err);
    int rc = -1;

    if (!c)
        return -1;
    if (sql_read_begin(c, err))
        goto out;
    if (total && count_photos(c, user_id, upload_id, total, err))
        goto out;
    if (list_page(c, user_id, upload_id, limit, offset, cb, ctx, err) || sql_read_end(c, err))
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
    if (sql_run(c, "delete the photo", "DELETE FROM photos WHERE id = ?1", ARGS(VI(id)),
                err) < 0)
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
    o->photo_list = photo_list;
    o->photo_delete = photo_delete;
    o->blob_refs = blob_refs;
}
