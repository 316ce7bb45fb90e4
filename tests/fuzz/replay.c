/*  replay.c: a main() for a fuzz target when libFuzzer is not linked in.

    Feeds every regular file named on the command line, and every regular file
    directly inside each directory named, to LLVMFuzzerTestOneInput, each in a
    heap buffer of exactly its size (so ASan sees any read past the end, as
    under libFuzzer). Fails if a path cannot be read or nothing was replayed;
    the target itself aborts on a broken property. Used by ctest
    (fuzz_replay_<target>) to replay the seed and regression corpora in every
    build, sanitized or not. */
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define S_REPLAY_MAX_SIZE (16 * 1024 * 1024) /* refuse anything bigger: not a corpus file */

/*  Replays one file. Returns 0, or -1 after printing why. */
static int s_replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = -1;
    uint8_t *data = NULL;
    if (fseek(f, 0, SEEK_END) != 0) {
        goto done;
    }
    long size = ftell(f);
    if (size < 0 || size > S_REPLAY_MAX_SIZE || fseek(f, 0, SEEK_SET) != 0) {
        goto done;
    }
    /* malloc(0) may return NULL: keep one byte, pass size 0 */
    data = malloc(size ? (size_t)size : 1);
    if (!data || fread(data, 1, (size_t)size, f) != (size_t)size) {
        goto done;
    }
    LLVMFuzzerTestOneInput(data, (size_t)size);
    rc = 0;
done:
    if (rc != 0) {
        fprintf(stderr, "replay: %s: cannot read\n", path);
    }
    free(data);
    fclose(f);
    return rc;
}

static int s_compare(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*  Replays every regular file in dir, in name order. Returns the number
    replayed, or -1. */
static long s_replay_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    char **paths = NULL;
    size_t n = 0, cap = 0;
    long rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        size_t len = strlen(dir) + 1 + strlen(e->d_name) + 1;
        char *path = malloc(len);
        if (!path) {
            rc = -1;
            break;
        }
        snprintf(path, len, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            free(path);
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **grown = realloc(paths, cap * sizeof *paths);
            if (!grown) {
                free(path);
                rc = -1;
                break;
            }
            paths = grown;
        }
        paths[n++] = path;
    }
    closedir(d);
    if (n) {
        qsort(paths, n, sizeof *paths, s_compare);
    }
    for (size_t i = 0; i < n; i++) {
        if (rc >= 0) {
            rc = s_replay_file(paths[i]) == 0 ? rc + 1 : -1;
        }
        free(paths[i]);
    }
    free(paths);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR|FILE...\n", argv[0]);
        return 2;
    }
    long total = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        long n = S_ISDIR(st.st_mode) ? s_replay_dir(argv[i]) : (s_replay_file(argv[i]) ? -1 : 1);
        if (n < 0) {
            return 1;
        }
        printf("replay: %s: %ld input(s)\n", argv[i], n);
        total += n;
    }
    if (total == 0) {
        fprintf(stderr, "replay: no inputs found\n");
        return 1;
    }
    printf("replay: %ld input(s) passed\n", total);
    return 0;
}
