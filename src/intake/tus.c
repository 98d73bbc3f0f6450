/* tus: see tus.h. */
#include "intake/tus.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/sha256.h"
#include "base/str.h"
#include "base/timeutil.h"
#include "base/xalloc.h"
#include "intake/ingest.h"
#include "jobs/jobs.h"
#include "store/store.h"

#define TUS_DIR "tus"
#define INFO_MAX 4096
/* A Shoebox upload with no bytes counted for this long leaves the pending list:
 * far above INGEST_REPORT_MS, so an upload still sending keeps its entry (and its
 * last count time), and the list holds only the uploads of the last seconds. */
#define PENDING_IDLE_MS 10000

struct entry {
    struct entry *next;
    char id[TUS_ID_LEN + 1];
    int refs;                 /* under tus.mu */
    pthread_mutex_t mu;       /* everything below */
    bool loaded, deleted;
    struct tus_info info;     /* committed state (as in <id>.info) */
    struct sha256_saved sha;  /* of bytes [0, info.offset) */
    int fd;                   /* <id>.bin, -1 when closed */
    uint64_t gen;             /* the writing PATCH's number */
    bool writing;
    int64_t wr_offset;        /* bytes in the file from the writer */
    struct sha256_saved wr_sha;
    bool wr_checksum;         /* the writer's bytes count only once verified */
};

/* Received bytes of one Shoebox upload not yet counted in the store. */
struct pending {
    struct pending *next;
    int64_t upload_id, bytes;
    int64_t last_ms;          /* monotonic: the last count written */
};

struct tus {
    struct tus_opts o;
    char *data_dir, *dir;
    char node[TUS_NODE_LEN + 1]; /* the prefix of the ids this node makes */
    pthread_mutex_t mu;
    struct entry *entries;
    pthread_t sweeper;
    bool sweeper_started;
    pthread_cond_t cv;
    bool stop;
    struct pending *pending;  /* under mu; written by count_bytes and the sweeper */
};

struct tus_write {
    struct tus *t;
    struct entry *e;
    uint64_t gen;
    enum tus_result status;   /* sticky */
    struct digest *digest;
    unsigned char want[DIGEST_MAX];
    size_t want_len;
    int64_t bytes;            /* received in this request */
    int64_t reported;         /* of them, told to the store (upload_add_bytes) */
    int64_t upload_id;        /* the Shoebox upload at the start (read without the lock) */
    struct err why;           /* set: this writer ended the upload (end_too_large), and why */
};

static void add_bytes(struct tus_write *w);
static bool remove_files(struct tus *t, struct entry *e);

/* ---------------------------------------------------------------- paths */

static void path_of(const struct tus *t, const char *id, const char *ext, char *out, size_t n)
{
    snprintf(out, n, "%s/%s%s", t->dir, id, ext);
}

bool tus_id_ok(const char *id)
{
    size_t i;

    for (i = 0; id[i]; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return false;
    return i == TUS_ID_LEN;
}

/* ----------------------------------------------------------- info file */

static void put_hex(char *buf, size_t n, size_t *len, const char *key, const char *s)
{
    size_t sl = strlen(s);
    char *hex = xmalloc(2 * sl + 1);

    str_hex((const unsigned char *)s, sl, hex);
    *len += (size_t)snprintf(buf + *len, n - *len, "%s %s\n", key, hex);
    free(hex);
}

/* Replaces path with data without waiting for the disk (no fsync): for a new
 * upload's first info, which promises no bytes (offset 0). A crash may lose it
 * or leave it empty (load_info: no such upload); the first commit replaces it
 * durably. */
static int write_info_fast(const char *path, const char *data, size_t len, struct err *err)
{
    char tmp[4200];
    int fd, rc;

    snprintf(tmp, sizeof(tmp), "%s.new", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return err_set(err, ERR_TRANSIENT, "receive", "cannot create the upload: %s",
                       errno == ENOSPC ? "disk full" : strerror(errno));
    rc = fs_write_all(fd, data, len, err);
    if (close(fd) < 0 && rc == 0)
        rc = err_set(err, ERR_TRANSIENT, "receive", "cannot create the upload: %s",
                     strerror(errno));
    if (rc == 0)
        rc = fs_rename(tmp, path, err);
    if (rc)
        unlink(tmp);
    return rc;
}

/* Writes <id>.info from e; durably (fsync file and directory) unless !durable. */
static int save_info_as(struct tus *t, struct entry *e, bool durable, struct err *err)
{
    char path[4096], buf[INFO_MAX], sha[2 * SHA256_STATE_BYTES + 1];
    const struct tus_info *i = &e->info;
    size_t len = 0;

    sha256s_to_hex(&e->sha, sha);
    len += (size_t)snprintf(buf + len, sizeof(buf) - len,
                            "tus 1\nlength %lld\noffset %lld\nupload %lld\nuser %lld\n"
                            "created %lld\nexpires %lld\nfile %lld\nsha %s\n",
                            (long long)i->length, (long long)i->offset, (long long)i->upload_id,
                            (long long)i->user_id, (long long)i->created_ms,
                            (long long)i->expires_ms, (long long)i->file_id, sha);
    put_hex(buf, sizeof(buf), &len, "name", i->name);
    put_hex(buf, sizeof(buf), &len, "type", i->type);
    path_of(t, e->id, ".info", path, sizeof(path));
    if (!durable)
        return write_info_fast(path, buf, len, err);
    return fs_write_file_atomic(path, buf, len, err);
}

static int save_info(struct tus *t, struct entry *e, struct err *err)
{
    return save_info_as(t, e, true, err);
}

static void get_hex(const char *hex, char *out, size_t n)
{
    size_t o = 0;

    for (; hex[0] && hex[1] && o + 1 < n; hex += 2) {
        int v = str_unhex2(hex);
        if (v < 0)
            break;
        out[o++] = (char)v;
    }
    out[o] = '\0';
}

/* Reads <id>.info into e. 0, or -1 when absent or damaged. */
static int load_info(struct tus *t, struct entry *e)
{
    char path[4096], buf[INFO_MAX + 1];
    int fd;
    ssize_t n;
    int fields = 0;

    path_of(t, e->id, ".info", path, sizeof(path));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    n = read(fd, buf, INFO_MAX);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    memset(&e->info, 0, sizeof(e->info));
    snprintf(e->info.id, sizeof(e->info.id), "%s", e->id);
    for (char *line = buf, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *val = strchr(line, ' ');
        if (!val)
            continue;
        *val++ = '\0';
        int64_t v = 0;
        bool num = str_to_int64(val, &v) == 0;
        if (!strcmp(line, "length") && num)
            e->info.length = v, fields++;
        else if (!strcmp(line, "offset") && num)
            e->info.offset = v, fields++;
        else if (!strcmp(line, "upload") && num)
            e->info.upload_id = v, fields++;
        else if (!strcmp(line, "user") && num)
            e->info.user_id = v, fields++;
        else if (!strcmp(line, "created") && num)
            e->info.created_ms = v;
        else if (!strcmp(line, "expires") && num)
            e->info.expires_ms = v, fields++;
        else if (!strcmp(line, "file") && num)
            e->info.file_id = v;
        else if (!strcmp(line, "sha") && sha256s_from_hex(&e->sha, val) == 0)
            fields++;
        else if (!strcmp(line, "name"))
            get_hex(val, e->info.name, sizeof(e->info.name));
        else if (!strcmp(line, "type"))
            get_hex(val, e->info.type, sizeof(e->info.type));
    }
    if (fields != 6)
        return -1;
    /* Not complete and no bytes: completion's info (written without waiting
     * for the disk, after the recording removed <id>.bin) was lost in a crash.
     * No such upload: the client sends the file again, recorded once. */
    path_of(t, e->id, ".bin", path, sizeof(path));
    if (e->info.file_id == 0 && access(path, F_OK) < 0 && errno == ENOENT) {
        log_warn("intake", "tus.bytes_gone", "id=%s offset=%lld", e->id, (long long)e->info.offset);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------- entries */

/* The entry of id, loaded; NULL when there is no such upload. Locked on return. */
static struct entry *entry_get(struct tus *t, const char *id)
{
    struct entry *e;

    pthread_mutex_lock(&t->mu);
    for (e = t->entries; e; e = e->next)
        if (!strcmp(e->id, id))
            break;
    if (!e) {
        e = xcalloc(1, sizeof(*e));
        snprintf(e->id, sizeof(e->id), "%s", id);
        pthread_mutex_init(&e->mu, NULL);
        e->fd = -1;
        e->next = t->entries;
        t->entries = e;
    }
    e->refs++;
    pthread_mutex_unlock(&t->mu);
    pthread_mutex_lock(&e->mu);
    if (!e->loaded && !e->deleted) {
        if (load_info(t, e) == 0)
            e->loaded = true;
        else
            e->deleted = true;
    }
    return e;
}

/* Unlocks e and drops the reference. */
static void entry_put(struct tus *t, struct entry *e)
{
    pthread_mutex_unlock(&e->mu);
    pthread_mutex_lock(&t->mu);
    if (--e->refs == 0) {
        for (struct entry **p = &t->entries; *p; p = &(*p)->next)
            if (*p == e) {
                *p = e->next;
                break;
            }
        if (e->fd >= 0)
            close(e->fd);
        pthread_mutex_destroy(&e->mu);
        free(e);
    }
    pthread_mutex_unlock(&t->mu);
}

static int open_bin(struct tus *t, struct entry *e, struct err *err)
{
    char path[4096];

    if (e->fd >= 0)
        return 0;
    path_of(t, e->id, ".bin", path, sizeof(path));
    e->fd = open(path, O_RDWR | O_CLOEXEC);
    if (e->fd < 0)
        return err_set(err, ERR_TRANSIENT, "receive", "cannot open the partial upload: %s",
                       strerror(errno));
    return 0;
}

/* Make [0, offset) durable and the new committed offset. */
static int commit_to(struct tus *t, struct entry *e, int64_t offset,
                     const struct sha256_saved *sha, struct err *err)
{
    if (offset == e->info.offset)
        return 0;
    if (e->fd >= 0 && fdatasync(e->fd) < 0)
        return err_set(err, ERR_TRANSIENT, "receive", "cannot store the bytes: %s",
                       errno == ENOSPC ? "disk full" : strerror(errno));
    int64_t old = e->info.offset;
    struct sha256_saved old_sha = e->sha;
    e->info.offset = offset;
    e->sha = *sha;
    e->info.expires_ms = time_now_ms() + t->o.expire_ms;
    if (save_info(t, e, err)) {
        e->info.offset = old;
        e->sha = old_sha;
        return -1;
    }
    return 0;
}

/* The writer's bytes that are not (yet) good are cut off the file. */
static void drop_uncommitted(struct entry *e)
{
    if (e->fd >= 0 && ftruncate(e->fd, e->info.offset) < 0)
        log_warn("intake", "tus.truncate_failed", "id=%s errno=%d", e->id, errno);
}

/* A writer still at work is stopped: its bytes so far are committed (or
 * dropped when they await a checksum), its later bytes are refused. */
/* The request writing into e (if any) loses it: its later bytes are refused (409). */
static void cut_writer(struct entry *e)
{
    if (e->writing) {
        e->writing = false;
        e->gen++;
    }
}

static void stop_writer(struct tus *t, struct entry *e)
{
    struct err err = {0};

    if (!e->writing)
        return;
    if (e->wr_checksum || commit_to(t, e, e->wr_offset, &e->wr_sha, &err)) {
        if (err_is_set(&err))
            log_warn("intake", "tus.commit_failed", "id=%s msg=%s", e->id, LOG_Q(err.msg));
        drop_uncommitted(e);
    }
    cut_writer(e);
}

/* The Shoebox upload the file goes into must still be there: a file is never
 * put into another upload than the one its client named (the page counts its
 * files there). The start-up sweep keeps uploads tus files point to
 * (tus_upload_refs), so a missing one was removed on purpose: TUS_GONE. */
static enum tus_result check_upload(struct tus *t, struct entry *e, struct err *err)
{
    struct store *st = t->o.store;
    struct store_upload u;
    int rc = st->ops->upload_get(st, e->info.upload_id, e->info.user_id, &u, err);

    if (rc == 0)
        return TUS_OK;
    if (rc != STORE_NOT_FOUND)
        return TUS_ERROR;
    err_clear(err);
    log_warn("intake", "tus.upload_gone", "id=%s upload=%lld", e->id,
             (long long)e->info.upload_id);
    err_set(err, ERR_PERMANENT, "receive",
            "upload %lld is gone: '%s' was not stored; send it again in a new upload",
            (long long)e->info.upload_id, e->info.name[0] ? e->info.name : e->id);
    return TUS_GONE;
}

/* offset == length: into the blob store and the store (ingest_adopt, straight
 * from <id>.bin, whose bytes commit_complete made durable; the hand-off makes
 * the blob durable); its upload was checked (check_upload). The info that
 * says "file N" is then written without waiting for the disk: the file is
 * acknowledged by its row and its blob, which are durable; a crash that loses
 * the info leaves the old offset with <id>.bin gone, which load_info takes as
 * no upload (404: the client sends the file again, recorded once by
 * upload_add_file), or an older offset with the bytes still there. */
static int complete(struct tus *t, struct entry *e, struct err *err)
{
    struct store *st = t->o.store;
    char bin[4096], rel[128], sha[SHA256_HEX_LEN + 1];
    struct ingest *ing;
    int64_t file_id = 0;
    int rc;

    if (e->info.file_id > 0)
        return 0;
    path_of(t, e->id, ".bin", bin, sizeof(bin));
    snprintf(rel, sizeof(rel), TUS_DIR "/%s.bin", e->id);
    struct ingest_opts io = {.store = st, .blobs = t->o.blobs, .data_dir = t->data_dir,
                             .upload_id = e->info.upload_id, .user_id = e->info.user_id,
                             .max_file_size = t->o.max_file_size};
    ing = ingest_new(&io, err);
    if (!ing)
        return -1;
    /* No request around it (two more commits a file): recording the file
     * reopens a finished upload, and a rejected one finishes it when it was
     * the last (store upload_add_file). */
    sha256s_peek_hex(&e->sha, sha);
    rc = ingest_adopt(ing, e->info.name, rel, e->info.length, sha, &file_id);
    if (rc)
        *err = *ingest_error(ing);
    ingest_free(ing);
    if (rc)
        return -1;
    e->info.file_id = file_id;
    if (save_info_as(t, e, false, err))
        return -1;
    if (e->fd >= 0)
        close(e->fd);
    e->fd = -1;
    if (unlink(bin) < 0 && errno != ENOENT)
        log_warn("intake", "tus.unlink_failed", "id=%s errno=%d", e->id, errno);
    if (t->o.jobs)
        jobs_notify(t->o.jobs);
    log_info("intake", "tus.complete", "id=%s upload=%lld file=%lld size=%lld", e->id,
             (long long)e->info.upload_id, (long long)file_id, (long long)e->info.length);
    return 0;
}

/* An upload this node does not hold: its id names another node (several web
 * nodes with their own data directories, and a request the load balancer did
 * not route by the id), or it never existed here. 404 either way: the client
 * starts that file again, and nothing acknowledged is lost (a file completed
 * on the other node is the same name and content in the same upload: recorded
 * once, upload_add_file). */
static enum tus_result not_here(const struct tus *t, const char *id, struct err *err)
{
    if (strncmp(id, t->node, TUS_NODE_LEN) == 0)
        return TUS_NOT_FOUND;
    log_warn("intake", "tus.other_node", "id=%s node=%.*s here=%s", id, TUS_NODE_LEN, id,
             t->node);
    err_set(err, ERR_PERMANENT, "receive",
            "upload %s is held by web node %.*s, not this one (%s): start the file again",
            id, TUS_NODE_LEN, id, t->node);
    return TUS_NOT_FOUND;
}

static enum tus_result check_access(const struct tus *t, struct entry *e, int64_t user_id,
                                    struct err *err)
{
    if (e->deleted)
        return not_here(t, e->id, err);
    if (e->info.user_id != user_id)
        return TUS_NOT_FOUND;
    if (e->info.expires_ms < time_now_ms() && !e->writing)
        return TUS_GONE;
    return TUS_OK;
}

/* The writer reached the length: its bytes are made durable, then the file is
 * recorded (complete(), which writes the info once, with the offset and the
 * file) instead of writing the info for the offset first. A crash in between
 * leaves the old offset on disk: the client, told nothing yet, sends the rest
 * again, and the store takes the same name and content in the same upload as
 * the file it has (upload_add_file). */
static enum tus_result commit_complete(struct tus *t, struct entry *e, struct err *err)
{
    int64_t old = e->info.offset, old_expires = e->info.expires_ms;
    struct sha256_saved old_sha = e->sha;
    struct err e2 = {0};
    enum tus_result r;

    if (e->fd >= 0 && fdatasync(e->fd) < 0) {
        err_set(err, ERR_TRANSIENT, "receive", "cannot store the bytes: %s",
                errno == ENOSPC ? "disk full" : strerror(errno));
        drop_uncommitted(e);
        return TUS_ERROR;
    }
    e->info.offset = e->wr_offset;
    e->sha = e->wr_sha;
    e->info.expires_ms = time_now_ms() + t->o.expire_ms;
    r = check_upload(t, e, err);
    if (r == TUS_OK && complete(t, e, err) == 0)
        return TUS_OK;
    /* Not recorded (it is tried again on the next HEAD): the bytes are on
     * disk, so the offset is kept all the same. */
    if (save_info(t, e, &e2) == 0)
        return r == TUS_OK ? TUS_ERROR : r;
    log_warn("intake", "tus.commit_failed", "id=%s msg=%s", e->id, LOG_Q(e2.msg));
    e->info.offset = old;
    e->info.expires_ms = old_expires;
    e->sha = old_sha;
    drop_uncommitted(e);
    return TUS_ERROR;
}

/* A complete upload whose recording was cut off (crash) is recorded now. */
static enum tus_result finish_if_complete(struct tus *t, struct entry *e, struct err *err)
{
    enum tus_result r;

    if (e->info.length < 0 || e->info.offset != e->info.length || e->info.file_id > 0)
        return TUS_OK;
    r = check_upload(t, e, err);
    if (r == TUS_OK && complete(t, e, err))
        r = TUS_ERROR;
    return r;
}

/* A file its Shoebox upload will never get (a creation refused for its length,
 * a deferred length over the limit, an expired partial upload) is recorded there
 * FAILED with the reason, as a multipart file over the limit is, so the upload
 * does not wait for it and its report says why. Only into the user's own upload;
 * a failure is logged (the upload then waits --upload-idle for the file). */
static void record_failed(struct tus *t, int64_t user_id, int64_t upload_id, const char *name,
                          int64_t size, const struct err *why)
{
    struct store *st = t->o.store;
    struct store_upload u;
    char shown[LIMIT_FILENAME_BYTES + 1];
    struct store_file_new f = {.upload_id = upload_id, .user_id = user_id, .name = shown,
                               .sha256 = "", .format = "", .spool = "", .size = size,
                               .failed = true, .error = why};
    struct err e = {0};
    int64_t file_id = 0;

    if (st->ops->upload_get(st, upload_id, user_id, &u, &e) != 0)
        return;  /* not the user's, or gone: the 413 says it all */
    ingest_display_name(name, shown, sizeof(shown));
    if (st->ops->upload_add_file(st, &f, time_now_ms(), &file_id, &e) < 0) {
        log_warn("intake", "tus.record_failed", "upload=%lld name=%s msg=%s",
                 (long long)upload_id, LOG_Q(shown), LOG_Q(e.msg));
        return;
    }
    metrics_add(METRICS_FILES_FAILED, 1);
    log_info("intake", "file.failed", "upload=%lld file=%lld name=%s size=%lld stage=%s msg=%s",
             (long long)upload_id, (long long)file_id, LOG_Q(shown), (long long)size,
             why->stage, LOG_Q(why->msg));
    if (t->o.jobs)
        jobs_notify(t->o.jobs);
}

/* A deferred-length upload whose length (declared, or reached by its bytes) is
 * over max_file_size can never complete: it ends at once, as a creation refused
 * for its length does. Its files go (later requests: 404, as after a
 * termination) and, when this call's unlink removed its info (once, also across
 * processes sharing DATA/tus/), it is recorded FAILED in its upload with why:
 * a crash in between loses the record (the upload waits --upload-idle), never
 * makes it twice. Under e->mu. */
static void end_too_large(struct tus *t, struct entry *e, int64_t size, const struct err *why)
{
    bool removed;

    cut_writer(e);
    removed = remove_files(t, e);
    log_info("intake", "tus.too_large", "id=%s upload=%lld size=%lld", e->id,
             (long long)e->info.upload_id, (long long)size);
    if (removed)
        record_failed(t, e->info.user_id, e->info.upload_id, e->info.name, size, why);
}

/* ------------------------------------------------------------------ API */

enum tus_result tus_create(struct tus *t, int64_t user_id, int64_t length, int64_t upload_id,
                           const char *name, const char *type, struct tus_info *out,
                           struct err *err)
{
    struct store *st = t->o.store;
    struct store_upload u;
    unsigned char rnd[(TUS_ID_LEN - TUS_NODE_LEN) / 2];
    char id[TUS_ID_LEN + 1], path[4096];
    struct entry *e;
    int fd, rc;

    if (length > t->o.max_file_size) {
        char lim[32];
        str_format_size(t->o.max_file_size, lim, sizeof(lim));
        err_set(err, ERR_PERMANENT, "receive", "the file is larger than %s", lim);
        if (upload_id > 0)
            record_failed(t, user_id, upload_id, name, length, err);
        return TUS_TOO_LARGE;
    }
    if (upload_id > 0) {
        rc = st->ops->upload_get(st, upload_id, user_id, &u, err);
        if (rc == STORE_NOT_FOUND) {
            err_set(err, ERR_PERMANENT, "receive",
                    "no such upload of yours: leave out 'upload' to start a new one");
            return TUS_NOT_FOUND;
        }
        /* A change to the upload: one without a file is kept until every tus
         * upload pointing to it has expired, counted from its last change. */
        if (rc || st->ops->upload_add_bytes(st, upload_id, 0, time_now_ms(), err))
            return TUS_ERROR;
    } else if (st->ops->upload_create(st, user_id, 1, t->o.batch_size, time_now_ms(),
                                      &upload_id, err)) {
        return TUS_ERROR;
    }
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        err_set(err, ERR_TRANSIENT, "receive", "no randomness");
        return TUS_ERROR;
    }
    memcpy(id, t->node, TUS_NODE_LEN);
    str_hex(rnd, sizeof(rnd), id + TUS_NODE_LEN);
    path_of(t, id, ".bin", path, sizeof(path));
    fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        err_set(err, ERR_TRANSIENT, "receive", "cannot create the upload: %s",
                errno == ENOSPC ? "disk full" : strerror(errno));
        return TUS_ERROR;
    }
    e = entry_get(t, id);  /* no info yet: marked deleted; fill it in */
    e->deleted = false;
    e->loaded = true;
    e->fd = fd;
    memset(&e->info, 0, sizeof(e->info));
    snprintf(e->info.id, sizeof(e->info.id), "%s", id);
    e->info.length = length;
    e->info.upload_id = upload_id;
    e->info.user_id = user_id;
    e->info.created_ms = time_now_ms();
    e->info.expires_ms = e->info.created_ms + t->o.expire_ms;
    ingest_display_name(name, e->info.name, sizeof(e->info.name));
    snprintf(e->info.type, sizeof(e->info.type), "%s", type ? type : "");
    sha256s_init(&e->sha);
    if (save_info_as(t, e, length == 0, err)) {
        unlink(path);
        e->deleted = true;
        entry_put(t, e);
        return TUS_ERROR;
    }
    if (length == 0 && complete(t, e, err)) /* nothing to wait for: record it now */
        log_warn("intake", "tus.complete_failed", "id=%s msg=%s", id, LOG_Q(err->msg));
    *out = e->info;
    log_info("intake", "tus.created", "id=%s upload=%lld user=%lld length=%lld name=%s", id,
             (long long)upload_id, (long long)user_id, (long long)length, LOG_Q(e->info.name));
    entry_put(t, e);
    return TUS_OK;
}

enum tus_result tus_head(struct tus *t, const char *id, int64_t user_id, struct tus_info *out,
                         struct err *err)
{
    struct entry *e;
    enum tus_result r;

    if (!tus_id_ok(id))
        return TUS_NOT_FOUND;
    e = entry_get(t, id);
    r = check_access(t, e, user_id, err);
    /* A HEAD follows a PATCH its client saw break, which the server may not
     * have seen yet (it can go on reading that connection for a while): the
     * PATCH is stopped here, so the offset answered is the one the next PATCH
     * must start at, not one the old PATCH moves on from (a 409, the body
     * sent again). */
    if (r == TUS_OK && e->writing) {
        log_info("intake", "tus.head_takeover", "id=%s offset=%lld", e->id,
                 (long long)e->wr_offset);
        stop_writer(t, e);
    }
    if (r == TUS_OK)
        r = finish_if_complete(t, e, err);
    *out = e->info;
    entry_put(t, e);
    return r;
}

/* A PATCH's Upload-Length (new_length >= 0) sets a deferred length. One over
 * max_file_size ends the upload (end_too_large): TUS_TOO_LARGE. Under e->mu. */
static enum tus_result set_length(struct tus *t, struct entry *e, int64_t new_length,
                                  struct err *err)
{
    char size[32], lim[32];

    if (new_length < 0)
        return TUS_OK;
    if (e->info.length >= 0 && e->info.length != new_length) {
        err_set(err, ERR_PERMANENT, "receive", "Upload-Length is already %lld",
                (long long)e->info.length);
        return TUS_BAD;
    }
    if (new_length > t->o.max_file_size) {
        str_format_size(new_length, size, sizeof(size));
        str_format_size(t->o.max_file_size, lim, sizeof(lim));
        if (!strcmp(size, lim)) { /* just over: rounded they look the same */
            snprintf(size, sizeof(size), "%lld bytes", (long long)new_length);
            snprintf(lim, sizeof(lim), "%lld bytes", (long long)t->o.max_file_size);
        }
        err_set(err, ERR_PERMANENT, "receive", "the file is %s, larger than %s", size, lim);
        end_too_large(t, e, new_length, err);
        return TUS_TOO_LARGE;
    }
    if (new_length < e->info.offset) {
        err_set(err, ERR_PERMANENT, "receive", "Upload-Length is below the offset");
        return TUS_BAD;
    }
    if (e->info.length >= 0)
        return TUS_OK;
    e->info.length = new_length;
    if (save_info(t, e, err)) {
        e->info.length = -1;
        return TUS_ERROR;
    }
    return TUS_OK;
}

enum tus_result tus_patch_begin(struct tus *t, const char *id, int64_t user_id, int64_t offset,
                                int64_t new_length, const char *checksum_alg,
                                const unsigned char *checksum, size_t checksum_len,
                                struct tus_write **wp, struct tus_info *out, struct err *err)
{
    struct entry *e;
    enum tus_result r;
    struct tus_write *w;

    *wp = NULL;
    if (!tus_id_ok(id))
        return TUS_NOT_FOUND;
    e = entry_get(t, id);
    r = check_access(t, e, user_id, err);
    if (r != TUS_OK)
        goto out;
    if (e->writing) {
        log_info("intake", "tus.takeover", "id=%s offset=%lld", e->id, (long long)e->wr_offset);
        stop_writer(t, e);
    }
    r = set_length(t, e, new_length, err);
    if (r != TUS_OK)
        goto out;
    if (offset != e->info.offset) {
        err_set(err, ERR_PERMANENT, "receive", "Upload-Offset %lld is not the upload's offset %lld",
                (long long)offset, (long long)e->info.offset);
        r = TUS_CONFLICT;
        goto out;
    }
    if (e->info.file_id == 0 && open_bin(t, e, err)) {
        r = TUS_ERROR;
        goto out;
    }
    w = xcalloc(1, sizeof(*w));
    w->t = t;
    w->e = e;
    if (checksum_alg) {
        w->digest = digest_new(checksum_alg);
        memcpy(w->want, checksum, checksum_len < DIGEST_MAX ? checksum_len : DIGEST_MAX);
        w->want_len = checksum_len;
    }
    w->gen = ++e->gen;
    w->upload_id = e->info.upload_id;
    e->writing = e->info.file_id == 0;
    e->wr_offset = e->info.offset;
    e->wr_sha = e->sha;
    e->wr_checksum = checksum_alg != NULL;
    *out = e->info;
    *wp = w;
    pthread_mutex_unlock(&e->mu); /* the reference stays with the writer */
    return TUS_OK;
out:
    *out = e->info;
    entry_put(t, e);
    return r;
}

/* Under e->mu: the bytes of a deferred-length upload went past max_file_size with
 * len more: it can never complete (end_too_large). */
static void end_deferred(struct tus_write *w, size_t len)
{
    char lim[32];
    int64_t reached = w->e->wr_offset + (int64_t)len;

    /* Its size is not known: only that it is over the limit. */
    str_format_size(w->t->o.max_file_size, lim, sizeof(lim));
    err_set(&w->why, ERR_PERMANENT, "receive",
            "the file is larger than %s: more than that was sent", lim);
    end_too_large(w->t, w->e, reached, &w->why);
}

enum tus_result tus_patch_data(struct tus_write *w, const void *data, size_t len)
{
    struct entry *e = w->e;
    struct err err = {0};

    if (w->status != TUS_OK || len == 0)
        return w->status;
    pthread_mutex_lock(&e->mu);
    if (e->gen != w->gen || e->deleted) {
        w->status = TUS_SUPERSEDED;
        goto out;
    }
    int64_t limit = e->info.length >= 0 ? e->info.length : w->t->o.max_file_size;
    if ((uint64_t)len > (uint64_t)(limit - e->wr_offset)) {
        w->status = TUS_TOO_LARGE;
        if (e->info.length < 0)
            end_deferred(w, len);
        goto out;
    }
    const char *p = data;
    size_t left = len;
    int64_t at = e->wr_offset;
    while (left > 0) {
        ssize_t n = pwrite(e->fd, p, left, at);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            log_warn("intake", "tus.write_failed", "id=%s errno=%d", e->id, errno);
            w->status = TUS_ERROR;
            goto out;
        }
        p += n;
        left -= (size_t)n;
        at += n;
    }
    sha256s_update(&e->wr_sha, data, len);
    if (w->digest)
        digest_update(w->digest, data, len);
    e->wr_offset += (int64_t)len;
    w->bytes += (int64_t)len;
    metrics_add(METRICS_BYTES_RECEIVED, len);
    bool committed = false;
    if (!e->wr_checksum && e->wr_offset - e->info.offset >= TUS_COMMIT_BYTES) {
        if (commit_to(w->t, e, e->wr_offset, &e->wr_sha, &err)) {
            log_warn("intake", "tus.commit_failed", "id=%s msg=%s", e->id, LOG_Q(err.msg));
            w->status = TUS_ERROR;
        } else {
            committed = true;
        }
    }
    pthread_mutex_unlock(&e->mu);
    if (committed)
        add_bytes(w); /* the progress page sees a long PATCH move */
    return w->status;
out:
    pthread_mutex_unlock(&e->mu);
    return w->status;
}

/* Adds n to the upload's bytes_received. Progress is advisory: a failed update
 * is kept for the next one. */
static void store_bytes(struct tus *t, int64_t upload_id, int64_t n)
{
    struct store *st = t->o.store;
    struct err err = {0};

    if (st->ops->upload_add_bytes(st, upload_id, n, time_now_ms(), &err) == 0)
        return;
    log_warn("intake", "upload.bytes", "upload=%lld msg=%s", (long long)upload_id, LOG_Q(err.msg));
    pthread_mutex_lock(&t->mu);
    for (struct pending *p = t->pending; p; p = p->next)
        if (p->upload_id == upload_id) {
            p->bytes += n;
            break;
        }
    pthread_mutex_unlock(&t->mu);
}

/* Counts n received bytes of the upload: written to the store at once when its
 * last count is INGEST_REPORT_MS old, else gathered and written by the sweeper
 * thread within INGEST_REPORT_MS (as a multipart request counts its bytes: at
 * most one store commit per INGEST_REPORT_MS, not one per file). */
static void count_bytes(struct tus *t, int64_t upload_id, int64_t n)
{
    int64_t now = time_mono_ms(), due = 0;
    struct pending *p;

    pthread_mutex_lock(&t->mu);
    for (p = t->pending; p; p = p->next)
        if (p->upload_id == upload_id)
            break;
    if (!p) {
        p = xcalloc(1, sizeof(*p));
        p->upload_id = upload_id;
        p->last_ms = now - INGEST_REPORT_MS;
        p->next = t->pending;
        t->pending = p;
    }
    p->bytes += n;
    if (now - p->last_ms >= INGEST_REPORT_MS) {
        due = p->bytes;
        p->bytes = 0;
        p->last_ms = now;
    } else {
        pthread_cond_signal(&t->cv); /* the sweeper writes it when due */
    }
    pthread_mutex_unlock(&t->mu);
    if (due > 0)
        store_bytes(t, upload_id, due);
}

/* Under t->mu: takes the first count due by now (all with `all`) out of the
 * pending list into *id, *n; forgets uploads idle for PENDING_IDLE_MS. false
 * when none is due; *wait_ms is then how long until the next one is. */
static bool take_due(struct tus *t, int64_t now, bool all, int64_t *id, int64_t *n,
                     int64_t *wait_ms)
{
    *wait_ms = -1;
    for (struct pending **pp = &t->pending; *pp;) {
        struct pending *p = *pp;
        int64_t left = p->last_ms + INGEST_REPORT_MS - now;
        if (p->bytes > 0 && (all || left <= 0)) {
            *id = p->upload_id;
            *n = p->bytes;
            p->bytes = 0;
            p->last_ms = now;
            return true;
        }
        if (p->bytes == 0 && now - p->last_ms > PENDING_IDLE_MS) {
            *pp = p->next;
            free(p);
            continue;
        }
        if (p->bytes > 0 && (*wait_ms < 0 || left < *wait_ms))
            *wait_ms = left;
        pp = &p->next;
    }
    return false;
}

/* Under t->mu (dropped around the store calls): writes the counts that are due
 * (every one with `all`). Returns how long until the next one is due, or -1. */
static int64_t flush_bytes(struct tus *t, bool all)
{
    int64_t id, n, wait_ms;

    while (take_due(t, time_mono_ms(), all, &id, &n, &wait_ms)) {
        pthread_mutex_unlock(&t->mu);
        store_bytes(t, id, n);
        pthread_mutex_lock(&t->mu);
    }
    return wait_ms;
}

static void add_bytes(struct tus_write *w)
{
    int64_t n = w->bytes - w->reported;

    if (n <= 0)
        return;
    count_bytes(w->t, w->upload_id, n);
    w->reported += n;
}

static void free_write(struct tus_write *w)
{
    digest_free(w->digest);
    free(w);
}

enum tus_result tus_patch_end(struct tus_write *w, struct tus_info *out, struct err *err)
{
    struct tus *t = w->t;
    struct entry *e = w->e;
    enum tus_result r = w->status;

    pthread_mutex_lock(&e->mu);
    if (err_is_set(&w->why)) {
        err_set(err, ERR_PERMANENT, "receive", "%s", w->why.msg);
        goto out;
    }
    if (e->gen != w->gen || e->deleted) {
        err_set(err, ERR_PERMANENT, "receive",
                "another request took this upload over: ask its offset (HEAD) and go on");
        r = TUS_SUPERSEDED;
        goto out;
    }
    e->writing = false;
    if (r == TUS_OK && w->digest) {
        unsigned char got[DIGEST_MAX];
        size_t n = digest_final(w->digest, got);
        if (n != w->want_len || memcmp(got, w->want, n) != 0) {
            err_set(err, ERR_PERMANENT, "receive",
                    "checksum mismatch: the bytes of this request were discarded");
            r = TUS_CHECKSUM;
        }
    }
    if (w->digest && r != TUS_OK) {
        drop_uncommitted(e);
    } else if (r == TUS_OK && e->info.file_id == 0 && e->wr_offset == e->info.length &&
               e->wr_offset > e->info.offset) {
        r = commit_complete(t, e, err);
    } else if (commit_to(t, e, e->wr_offset, &e->wr_sha, err)) {
        drop_uncommitted(e);
        r = TUS_ERROR;
    }
    if (r == TUS_TOO_LARGE && !err_is_set(err))
        err_set(err, ERR_PERMANENT, "receive",
                e->info.length >= 0 ? "the body goes past Upload-Length"
                                    : "the file is larger than the size limit");
    if (r == TUS_ERROR && !err_is_set(err))
        err_set(err, ERR_TRANSIENT, "receive", "cannot store the bytes");
    if (r == TUS_OK)
        r = finish_if_complete(t, e, err);
out:
    *out = e->info;
    add_bytes(w);
    entry_put(t, e);
    free_write(w);
    return r;
}

void tus_patch_abort(struct tus_write *w)
{
    struct err err = {0};

    if (!w)
        return;
    struct entry *e = w->e;
    pthread_mutex_lock(&e->mu);
    if (e->gen == w->gen && !e->deleted && e->writing) {
        if (e->wr_checksum || commit_to(w->t, e, e->wr_offset, &e->wr_sha, &err))
            drop_uncommitted(e);
        e->writing = false;
        log_info("intake", "tus.broken_off", "id=%s offset=%lld", e->id,
                 (long long)e->info.offset);
    }
    add_bytes(w);
    entry_put(w->t, e);
    free_write(w);
}

/* Removes the upload's files. True when this call removed its info file: the
 * one termination that counts when two processes sharing DATA/tus/ take the
 * same upload at once (unlink decides; an entry's mutex is per process). */
static bool remove_files(struct tus *t, struct entry *e)
{
    char path[4096];
    struct err err = {0};
    bool removed = true;

    if (e->fd >= 0)
        close(e->fd);
    e->fd = -1;
    path_of(t, e->id, ".bin", path, sizeof(path));
    if (unlink(path) < 0 && errno != ENOENT)
        log_warn("intake", "tus.unlink_failed", "id=%s errno=%d", e->id, errno);
    path_of(t, e->id, ".info", path, sizeof(path));
    if (unlink(path) < 0) {
        removed = false;
        if (errno != ENOENT)
            log_warn("intake", "tus.unlink_failed", "id=%s errno=%d", e->id, errno);
    }
    if (fs_fsync_dir(t->dir, &err))
        log_warn("intake", "tus.fsync_failed", "msg=%s", LOG_Q(err.msg));
    e->deleted = true;
    return removed;
}

/* A terminated file will never arrive: its Shoebox upload expects one file less
 * (store upload_drop_expected), so it goes on at once with the files it has, or
 * goes when it has none and expects none. Called after the info file is gone, so
 * a crash in between loses the count rather than making it twice: the upload then
 * waits --upload-idle, as it did before terminations counted. */
static void drop_expected(struct tus *t, const struct tus_info *i)
{
    struct store *st = t->o.store;
    struct err err = {0};
    bool lowered = false, deleted = false;
    int rc = st->ops->upload_drop_expected(st, i->upload_id, time_now_ms(), &lowered, &deleted,
                                           &err);

    if (rc < 0) {
        log_warn("intake", "tus.drop_failed", "id=%s upload=%lld msg=%s", i->id,
                 (long long)i->upload_id, LOG_Q(err.msg));
        return;
    }
    if (rc == STORE_NOT_FOUND || !lowered)
        return;
    log_info("intake", "upload.file_dropped", "upload=%lld id=%s name=%s deleted=%d",
             (long long)i->upload_id, i->id, LOG_Q(i->name), deleted);
    if (t->o.jobs)
        jobs_notify(t->o.jobs);
}

enum tus_result tus_delete(struct tus *t, const char *id, int64_t user_id, struct err *err)
{
    struct entry *e;
    enum tus_result r;

    if (!tus_id_ok(id))
        return TUS_NOT_FOUND;
    e = entry_get(t, id);
    r = check_access(t, e, user_id, err);
    if (r != TUS_OK && r != TUS_GONE)
        goto out;
    cut_writer(e);  /* the file is not to come */
    /* Every byte arrived: it is a file of the upload (recorded now if a crash cut
     * its recording off); only the tus resource goes. A store that cannot record
     * it now keeps it, for the client to ask again. */
    bool whole = e->info.length >= 0 && e->info.offset == e->info.length;
    if (whole && finish_if_complete(t, e, err) == TUS_ERROR) {
        r = TUS_ERROR;
        goto out;
    }
    err_clear(err);
    bool removed = remove_files(t, e);
    log_info("intake", "tus.terminated", "id=%s upload=%lld complete=%d", id,
             (long long)e->info.upload_id, whole);
    if (!whole && removed)
        drop_expected(t, &e->info);
    r = TUS_OK;
out:
    entry_put(t, e);
    return r;
}

/* The ids of the .info files in dir into *out (each xstrndup'd, the array
 * xrealloc'd: the caller frees both) and *n. 0, or -1 with errno from opendir. */
static int list_ids(const char *dir, char ***out, size_t *n)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **ids = NULL;
    size_t cap = 0;

    *out = NULL;
    *n = 0;
    if (!d)
        return -1;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len != TUS_ID_LEN + 5 || strcmp(de->d_name + TUS_ID_LEN, ".info"))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            ids = xrealloc(ids, cap * sizeof(*ids));
        }
        ids[(*n)++] = xstrndup(de->d_name, TUS_ID_LEN);
    }
    closedir(d);
    *out = ids;
    return 0;
}

/* An info file that does not load (empty, or its bytes gone: load_info) and
 * was last written longer than the expiry ago: nothing will ever use it. */
static bool stale_info(const struct tus *t, const struct entry *e, int64_t now_ms)
{
    char path[4096];
    struct stat sb;

    path_of(t, e->id, ".info", path, sizeof(path));
    return stat(path, &sb) == 0 && (int64_t)sb.st_mtime * 1000 + t->o.expire_ms < now_ms;
}

/* "24 h", "90 min", "3 s": a duration for a person, in the largest unit that
 * states it exactly (--tus-expire is whole seconds). */
static void format_duration(int64_t ms, char *out, size_t n)
{
    int64_t s = ms / 1000;

    if (s >= 2 * 86400 && s % 86400 == 0)
        snprintf(out, n, "%lld days", (long long)(s / 86400));
    else if (s >= 3600 && s % 3600 == 0)
        snprintf(out, n, "%lld h", (long long)(s / 3600));
    else if (s >= 60 && s % 60 == 0)
        snprintf(out, n, "%lld min", (long long)(s / 60));
    else
        snprintf(out, n, "%lld s", (long long)s);
}

struct same_name {
    char shown[LIMIT_FILENAME_BYTES + 1];  /* the tus upload's name as files are named */
    int64_t length;                        /* -1: not known */
    bool found;
};

/* A file of the upload with the tus upload's name whose bytes all arrived (it has
 * a content hash; a refused one has none) and, when known, its length. */
static void find_same_name(void *ctx, const struct store_file *f)
{
    struct same_name *s = ctx;

    if (f->sha256[0] && !strcmp(f->name, s->shown) && (s->length < 0 || f->size == s->length))
        s->found = true;
}

/* Did the file arrive in its upload another way? Its client, told 404 by a node
 * that does not hold this half (several web nodes), sent it again through another
 * tus upload: the half left behind is no failed file. A store that cannot tell
 * says no (the failure is recorded). */
static bool arrived_elsewhere(struct tus *t, const struct tus_info *i)
{
    struct store *st = t->o.store;
    struct same_name s = {.length = i->length};
    struct err err = {0};

    ingest_display_name(i->name, s.shown, sizeof(s.shown));
    if (st->ops->upload_files(st, i->upload_id, find_same_name, &s, &err))
        return false;
    return s.found;
}

/* An expired partial upload is a file its Shoebox upload will never get (its client
 * stopped): recorded FAILED there with a reason a person can act on. */
static void record_expired(struct tus *t, const struct tus_info *i)
{
    char at[32], len[32], dur[32], where[80];
    struct err why = {0};

    if (arrived_elsewhere(t, i)) {
        log_info("intake", "tus.expired_sent_again", "id=%s upload=%lld name=%s", i->id,
                 (long long)i->upload_id, LOG_Q(i->name));
        return;
    }
    str_format_size(i->offset, at, sizeof(at));
    str_format_size(i->length, len, sizeof(len));
    format_duration(t->o.expire_ms, dur, sizeof(dur));
    snprintf(where, sizeof(where), i->length >= 0 ? "%s of %s" : "%s", at, len);
    err_set(&why, ERR_PERMANENT, "receive",
            "the upload stopped at %s and was not resumed within %s; send the file again",
            where, dur);
    record_failed(t, i->user_id, i->upload_id, i->name, i->length >= 0 ? i->length : i->offset,
                  &why);
}

/* An expired upload goes; false when it is kept for the next sweep. One whose bytes
 * all arrived is recorded first if a crash cut that off (a store that cannot keeps
 * it). A partial one is recorded FAILED in its upload (record_expired) when this
 * call's unlink removed its info: once, also with processes sharing DATA/tus/;
 * other web nodes have their own DATA/tus/. A crash between the unlink and the
 * record loses the record (the upload waits --upload-idle), never makes it twice.
 * A terminated upload has no files left to expire. Under e->mu. */
static bool expire(struct tus *t, struct entry *e)
{
    struct err err = {0};

    if (finish_if_complete(t, e, &err) == TUS_ERROR) {
        log_warn("intake", "tus.complete_failed", "id=%s msg=%s", e->id, LOG_Q(err.msg));
        return false;
    }
    bool partial = e->info.file_id == 0;
    log_info("intake", "tus.expired", "id=%s upload=%lld offset=%lld complete=%d", e->id,
             (long long)e->info.upload_id, (long long)e->info.offset, !partial);
    if (remove_files(t, e) && partial)
        record_expired(t, &e->info);
    return true;
}

int tus_sweep(struct tus *t, int64_t now_ms, int *removed)
{
    size_t n = 0;
    char **ids;

    *removed = 0;
    if (list_ids(t->dir, &ids, &n))
        return -1;
    for (size_t i = 0; i < n; i++) {
        struct entry *e = tus_id_ok(ids[i]) ? entry_get(t, ids[i]) : NULL;
        if (e && !e->deleted && !e->writing && e->info.expires_ms < now_ms) {
            if (expire(t, e))
                (*removed)++;
        } else if (e && e->deleted && stale_info(t, e, now_ms)) {
            log_info("intake", "tus.expired", "id=%s damaged=1", e->id);
            remove_files(t, e);
            (*removed)++;
        }
        if (e)
            entry_put(t, e);
        free(ids[i]);
    }
    free(ids);
    return 0;
}

int tus_upload_refs(const char *data_dir, int64_t now_ms, int64_t **ids, size_t *n,
                    struct err *err)
{
    struct tus t = {.dir = xasprintf("%s/" TUS_DIR, data_dir)};
    struct entry e;
    size_t n_names = 0;
    char **names;
    int rc = 0;

    *ids = NULL;
    *n = 0;
    if (list_ids(t.dir, &names, &n_names)) {
        if (errno != ENOENT)
            rc = err_set(err, ERR_TRANSIENT, "receive", "cannot read '%s': %s", t.dir,
                         strerror(errno));
        free(t.dir);
        return rc;
    }
    if (n_names)
        *ids = xcalloc(n_names, sizeof(**ids));
    for (size_t i = 0; i < n_names; i++) {
        memset(&e, 0, sizeof(e));
        snprintf(e.id, sizeof(e.id), "%s", names[i]);
        if (load_info(&t, &e) == 0 && e.info.file_id == 0 && e.info.expires_ms >= now_ms)
            (*ids)[(*n)++] = e.info.upload_id;
        free(names[i]);
    }
    free(names);
    free(t.dir);
    return 0;
}

/* Sweeps every sweep period, and writes gathered byte counts when due. */
static void *sweeper(void *arg)
{
    struct tus *t = arg;
    int64_t period = t->o.sweep_ms;

    if (period <= 0)
        period = t->o.expire_ms / 2 < 60000 ? t->o.expire_ms / 2 : 60000;
    if (period < 200)
        period = 200;
    int64_t next_sweep = time_mono_ms() + period;
    pthread_mutex_lock(&t->mu);
    while (!t->stop) {
        int64_t wait = flush_bytes(t, false), until_sweep = next_sweep - time_mono_ms();
        if (wait < 0 || wait > until_sweep)
            wait = until_sweep;
        /* flush_bytes drops mu around the store: a stop signalled then is seen here */
        if (wait > 0 && !t->stop) {
            struct timespec ts = time_after_ms(CLOCK_MONOTONIC, wait);
            pthread_cond_timedwait(&t->cv, &t->mu, &ts);
        }
        if (t->stop || time_mono_ms() < next_sweep)
            continue;
        pthread_mutex_unlock(&t->mu);
        int removed = 0;
        tus_sweep(t, time_now_ms(), &removed);
        next_sweep = time_mono_ms() + period;
        pthread_mutex_lock(&t->mu);
    }
    flush_bytes(t, true);
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

static bool node_ok(const char *s, size_t len)
{
    if (len != TUS_NODE_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* path = data, durably (temp name, fsync, rename, fsync dir), with plain
 * system calls: not through base/fs, whose fault points (--faults fsync=N)
 * count the fsyncs of received files, which a start-up write would shift. */
static int write_node_file(const char *dir, const char *path, const char *data,
                           struct err *err)
{
    char tmp[4200];
    size_t len = strlen(data);
    int fd, ok;

    snprintf(tmp, sizeof(tmp), "%s.new", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ok = fd >= 0 && write(fd, data, len) == (ssize_t)len && fsync(fd) == 0;
    if (fd >= 0 && close(fd) < 0)
        ok = 0;
    ok = ok && rename(tmp, path) == 0;
    if (ok) {
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ok = fd >= 0 && fsync(fd) == 0;
        if (fd >= 0)
            close(fd);
    }
    if (ok)
        return 0;
    unlink(tmp);
    return err_set(err, ERR_TRANSIENT, "receive", "cannot write '%s': %s", path,
                   strerror(errno));
}

/* This node's tag from DATA/tus/node, made (random, written durably) on the
 * first start. Nodes sharing one data directory share it. */
static int load_node(struct tus *t, struct err *err)
{
    char path[4096], buf[64];
    unsigned char rnd[TUS_NODE_LEN / 2];
    ssize_t n = -1;
    int fd;

    snprintf(path, sizeof(path), "%s/node", t->dir);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        n--;
    if (n > 0 && node_ok(buf, (size_t)n)) {
        memcpy(t->node, buf, TUS_NODE_LEN);
        t->node[TUS_NODE_LEN] = '\0';
        log_info("intake", "tus.node", "node=%s", t->node);
        return 0;
    }
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        return err_set(err, ERR_TRANSIENT, "receive", "no randomness");
    str_hex(rnd, sizeof(rnd), t->node);
    snprintf(buf, sizeof(buf), "%s\n", t->node);
    if (write_node_file(t->dir, path, buf, err))
        return -1;
    log_info("intake", "tus.node", "node=%s created=1", t->node);
    return 0;
}

const char *tus_node(const struct tus *t)
{
    return t->node;
}

struct tus *tus_new(const struct tus_opts *o, struct err *err)
{
    struct tus *t;
    pthread_condattr_t ca;

    if (!o || !o->store || !o->data_dir || o->expire_ms <= 0 || o->max_file_size <= 0) {
        err_set(err, ERR_PERMANENT, "receive", "invalid tus options");
        return NULL;
    }
    t = xcalloc(1, sizeof(*t));
    t->o = *o;
    t->data_dir = xstrdup(o->data_dir);
    t->o.data_dir = t->data_dir;
    t->dir = xasprintf("%s/" TUS_DIR, o->data_dir);
    pthread_mutex_init(&t->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (fs_mkdir_p(t->dir, 0700, err) || load_node(t, err)) {
        tus_free(t);
        return NULL;
    }
    if (pthread_create(&t->sweeper, NULL, sweeper, t) != 0) {
        err_set(err, ERR_TRANSIENT, "receive", "cannot start the tus sweeper");
        tus_free(t);
        return NULL;
    }
    t->sweeper_started = true;
    return t;
}

void tus_free(struct tus *t)
{
    if (!t)
        return;
    if (t->sweeper_started) {
        pthread_mutex_lock(&t->mu);
        t->stop = true;
        pthread_cond_signal(&t->cv);
        pthread_mutex_unlock(&t->mu);
        pthread_join(t->sweeper, NULL);
    }
    pthread_mutex_lock(&t->mu);
    flush_bytes(t, true);
    while (t->pending) {
        struct pending *p = t->pending;
        t->pending = p->next;
        free(p);
    }
    pthread_mutex_unlock(&t->mu);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t->dir);
    free(t->data_dir);
    free(t);
}

const struct tus_opts *tus_opts(const struct tus *t)
{
    return &t->o;
}
