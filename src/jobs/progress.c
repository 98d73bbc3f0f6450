/* progress: see progress.h. Pure functions; no state. */
#include "jobs/progress.h"

#include <string.h>

static int64_t ceil_div(int64_t a, int64_t b)
{
    return b > 0 ? (a + b - 1) / b : 0;
}

static const char *status_of(const struct store_upload *u)
{
    if (!u->finished_at && !u->fatal[0])
        return "processing";
    if (u->fatal[0] || u->total == 0 || u->failed == u->total)
        return "failed";
    return "completed";
}

static const char *phase_of(const struct store_upload *u)
{
    if (u->finished_at || u->fatal[0])
        return "done";
    if (u->open_requests > 0 || u->total < u->expected)
        return "receiving";
    /* Files in a batch not yet all done: a batch is being worked on. */
    if (u->current_batch > 0 && u->processed + u->queued_files < u->total)
        return "processing";
    return "queued";
}

void progress_idle(struct progress *p)
{
    memset(p, 0, sizeof(*p));
    p->eta_seconds = -1;
    p->status = "idle";
    p->phase = "idle";
}

void progress_from_upload(const struct store_upload *u, int64_t now, struct progress *p)
{
    int64_t known = u->total > u->expected ? u->total : u->expected;
    int64_t bs = u->batch_size > 0 ? u->batch_size : 1;
    int64_t unbatched = u->queued_files + (u->expected > u->total ? u->expected - u->total : 0);
    int64_t elapsed = now - u->created_at;

    memset(p, 0, sizeof(*p));
    p->upload_id = u->id;
    p->total = u->total;
    p->processed = u->processed;
    p->uploaded = u->uploaded;
    p->failed = u->failed;
    p->duplicates = u->duplicates;
    p->current_batch = u->current_batch;
    p->batch_size = u->batch_size;
    p->total_batches = u->current_batch + ceil_div(unbatched, bs);
    p->bytes_received = u->bytes_received;
    p->bytes_total = u->bytes_total;
    p->started_at = u->created_at;
    p->updated_at = u->updated_at;
    p->finished_at = u->finished_at;
    p->version = u->version;
    p->status = status_of(u);
    p->phase = phase_of(u);
    p->percent = known > 0 ? 100.0 * (double)u->processed / (double)known : 0.0;
    if (u->finished_at) {
        p->percent = 100.0;
        p->eta_seconds = 0;
    } else if (u->processed > 0 && elapsed > 0) {
        /* Average rate so far; crude, but steady and never negative. */
        double per_file_ms = (double)elapsed / (double)u->processed;
        p->eta_seconds = (int64_t)(per_file_ms * (double)(known - u->processed) / 1000.0 + 0.5);
    } else {
        p->eta_seconds = -1;
    }
}
