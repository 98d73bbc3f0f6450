/*
 * test_heifgrid_oom: a good HEIC decoded under memory limits (RLIMIT_AS, as
 * the workers run with --worker-memory) is decoded or reported out of memory
 * (HEIFGRID_NO_MEMORY: retried later), never reported damaged (a permanent
 * failure). Children are forked from a process with one thread (libvips
 * started, nothing run yet); each sets its address-space limit a little above
 * its own size, so the sweep runs through heifgrid's, libavcodec's and
 * libvips' allocations in turn.
 * GLib aborts when its own allocations fail (g_malloc, by design; its
 * g_vasprintf even recurses until the stack overflows): a child may die of a
 * signal in the libvips part, above every limit at which heifgrid or the
 * decoder ran out (a worker dying so is retried as a crash, src/jobs/jobs.c).
 * Skipped under AddressSanitizer: it reserves terabytes of address space, so
 * RLIMIT_AS cannot be set near a process's size.
 */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vips/vips.h>

#include "base/sanitizer.h"
#include "heicgen.h"
#include "media/heifgrid.h"
#include "media/media.h"

#define SIDE 1024 /* 2 x 2 tiles of 512 px, as an iPhone's */
#define TILE 512
#define KB 1024L

static char tmpdir[] = "/tmp/test_heifgrid_oom.XXXXXX";
static char path[256];

/* Texture everywhere (every tile has real slice data to decode). */
static int write_image(void)
{
    struct heicgen_opts o = {.tile = TILE, .quality = 80};
    unsigned char *px = malloc((size_t)SIDE * SIDE * 3);
    VipsImage *img;
    char why[256] = "";
    int rc;

    if (!px)
        return -1;
    for (int y = 0; y < SIDE; y++)
        for (int x = 0; x < SIDE; x++) {
            unsigned char *p = px + ((size_t)y * SIDE + x) * 3;
            p[0] = (unsigned char)(x * 255 / SIDE);
            p[1] = (unsigned char)(y * 255 / SIDE);
            p[2] = (unsigned char)(((x / 8) ^ (y / 8)) & 1 ? 200 : 60);
        }
    img = vips_image_new_from_memory_copy(px, (size_t)SIDE * SIDE * 3, SIDE, SIDE, 3,
                                          VIPS_FORMAT_UCHAR);
    free(px);
    if (!img)
        return -1;
    img->Type = VIPS_INTERPRETATION_sRGB;
    rc = heicgen_write(path, img, &o, why, sizeof(why));
    if (rc != 0)
        fprintf(stderr, "heicgen: %s\n", why);
    g_object_unref(img);
    return rc;
}

/* This process's address-space size in bytes (VmSize), -1 if unknown. */
static long vm_size(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = -1;

    if (!f)
        return -1;
    if (fscanf(f, "%ld", &pages) != 1)
        pages = -1;
    fclose(f);
    return pages < 0 ? -1 : pages * sysconf(_SC_PAGESIZE);
}

static int threads(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;

    if (!d)
        return -1;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

struct outcome {
    int rc; /* enum heifgrid_rc, -1: the child died */
    char why[200];
};

/* In a child: limit the address space to its size plus extra, decode, send
 * the result up fd. */
static void child(int fd, long extra)
{
    struct outcome o = {0};
    VipsImage *img = NULL;
    long vm = vm_size();
    struct rlimit rl = {(rlim_t)(vm + extra), (rlim_t)(vm + extra)};

    if (vm < 0 || setrlimit(RLIMIT_AS, &rl) != 0)
        _exit(2);
    o.rc = (int)heifgrid_decode(path, SIDE, SIDE, 400, &img, o.why, sizeof(o.why));
    if (img && (img->Xsize != 400 || img->Ysize != 400))
        o.rc = -2; /* a wrong picture: reported below */
    if (write(fd, &o, sizeof(o)) != (ssize_t)sizeof(o))
        _exit(3);
    _exit(0);
}

static struct outcome run_child(long extra)
{
    struct outcome o = {.rc = -1};
    int fds[2], status = 0;
    pid_t pid;

    ck_assert_int_eq(pipe(fds), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        child(fds[1], extra);
    }
    close(fds[1]);
    if (read(fds[0], &o, sizeof(o)) != (ssize_t)sizeof(o)) {
        o.rc = -1;
        snprintf(o.why, sizeof(o.why), "child died");
    }
    close(fds[0]);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        o.rc = -1;
        snprintf(o.why, sizeof(o.why), "child ended with status %d", status);
    }
    return o;
}

/* The limits over a child's size: every 48 KB up to 2.4 MB (heifgrid's
 * planes, then libavcodec's context and tables, the 0.4 MB picture pool of
 * a 512 px tile, the packets: on this machine the decoder's part is 0.4 to
 * 2 MB), then a few up to 48 MB (libvips' worker thread wants an 8 MB stack,
 * malloc an arena): 56 children, most of them ending early. */
static long limit_at(int i)
{
    static const long coarse[] = {4, 8, 16, 32, 48};
    int fine = 2400 / 48;

    if (i <= fine)
        return i * 48 * KB;
    i -= fine + 1;
    return i < (int)(sizeof(coarse) / sizeof(coarse[0])) ? coarse[i] * 1024 * KB : -1;
}

START_TEST(test_memory_sweep)
{
    int ok = 0, nomem = 0, from_hevc = 0, died = 0;
    long last_ours = -1, first_death = -1;

    for (int i = 0; limit_at(i) >= 0; i++) {
        long extra = limit_at(i);
        struct outcome o = run_child(extra);
        if (o.rc == -1) {
            died++;
            first_death = first_death < 0 ? extra : first_death;
            continue;
        }
        ck_assert_msg(o.rc == HEIFGRID_OK || o.rc == HEIFGRID_NO_MEMORY,
                      "limit %ld KB over its size: rc %d, %s", extra / KB, o.rc, o.why);
        ok += o.rc == HEIFGRID_OK;
        nomem += o.rc == HEIFGRID_NO_MEMORY;
        if (o.rc == HEIFGRID_NO_MEMORY && !strstr(o.why, "scaling"))
            last_ours = extra; /* heifgrid's reading or the decoder, not libvips */
        from_hevc += o.rc == HEIFGRID_NO_MEMORY && strstr(o.why, "HEVC") != NULL;
    }
    printf("memory sweep: %d decoded, %d out of memory (%d in the HEVC decoder), %d died in "
           "libvips\n", ok, nomem, from_hevc, died);
    /* The sweep reached the decoder and came out the other side. */
    ck_assert_msg(from_hevc > 0, "no child ran out of memory in the HEVC decoder");
    ck_assert_msg(ok > 0, "no child decoded the image: raise the top limit");
    ck_assert_msg(first_death < 0 || first_death > last_ours,
                  "a child died at %ld KB, below %ld KB where heifgrid still failed cleanly",
                  first_death / KB, last_ours / KB);
}
END_TEST

int main(void)
{
    Suite *s;
    TCase *tc;
    SRunner *sr;
    struct err e = {0};
    int failed, status = 0;
    pid_t pid;

#if UNDER_ASAN
    printf("SKIP: AddressSanitizer reserves terabytes of address space: RLIMIT_AS cannot be "
           "set near the process's size\n");
    return 77;
#endif
    if (!mkdtemp(tmpdir))
        return 1;
    snprintf(path, sizeof(path), "%s/grid.heic", tmpdir);
    /* x265 and libvips start threads: write the image in a child */
    pid = fork();
    if (pid == 0)
        _exit(media_init("test_heifgrid_oom", 1, &e) == 0 && write_image() == 0 ? 0 : 1);
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
        fprintf(stderr, "cannot write the test image\n");
        return 1;
    }
    if (media_init("test_heifgrid_oom", 1, &e) != 0) {
        fprintf(stderr, "setup failed: %s\n", e.msg);
        return 1;
    }
    if (threads() != 1) {
        fprintf(stderr, "%d threads after media_init: forking would copy a broken libvips\n",
                threads());
        return 1;
    }
    s = suite_create("heifgrid_oom");
    tc = tcase_create("rlimit");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_memory_sweep);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK); /* the test forks its own children */
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    unlink(path);
    rmdir(tmpdir);
    return failed ? 1 : 0;
}
