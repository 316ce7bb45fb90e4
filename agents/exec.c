/*  exec.c: the exec agent: a directory of executables, one per method.

    Agent "text" with directory D offers /text/upper for the file D/upper.
    A method is a regular, executable file whose name is made of
    [A-Za-z0-9._-] (not starting with '.') and matches the agent's filter
    (a POSIX extended regular expression), if one is configured. The
    directory is scanned when the agent is created (meshd re-creates agents
    on SIGHUP).

    Per request, one child process:
      - runs D/<method> with D as its working directory, in a process group
        of its own, with a clean environment: PATH, LANG=C.UTF-8, HOME (if
        meshd has one), MESH_AGENT, MESH_METHOD, MESH_PATH, MESH_CALLER (the
        caller's name), MESH_CALLER_ID, MESH_ATTEMPT (1, 2, ...),
        MESH_TIMEOUT_MS, MESH_KEY (when the call has one), MESH_CAST=1 (for
        a cast, whose reply goes nowhere);
      - reads the payload as one line of JSON on stdin, then end of file
        (an empty payload is `null`);
      - answers on stdout and exits:
          exit 0, stdout one JSON value   the reply (no output at all: null)
          exit 0, stdout not JSON         error "invalid JSON from <method>:
                                          <jansson's message>"
          exit 75 (EX_TEMPFAIL)           the request is rejected: the caller
                                          moves on to its next candidate
          any other exit, or a signal     error: the last line of stderr, or
                                          "exit status N" / "killed by signal
                                          S" when stderr is empty
          still running after timeout     its process group is killed
                                          (SIGKILL): "timed out after N ms"
          more than 16 MiB on stdout      killed: "output of <method> exceeds
                                          16 MiB"
    Processes the method leaves behind in its group when it exits are
    killed with it.

    Workers: at most `workers` children run at once per agent; further
    requests wait in a FIFO queue (at most AGENT_EXEC_QUEUE_MAX, beyond
    which they are rejected) and start as children finish. Every way a job
    ends goes through s_job_end, which frees its slot and starts the next.

    Active check: an optional shell command run every 2 s (/bin/sh -c, in
    the directory, output discarded, killed after 5 s). The agent's
    services are offered while its last run exited 0, and not before the
    first run has.

    Children are watched with ev_io (pipes, non-blocking), ev_child (exit)
    and ev_timer (timeout), so the agent needs libev's default loop. */
#include "agent_impl.h"
#include "jsonpack.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define S_PATH_MAX  255 /* a service path (the codec's limit) */
#define S_ERR_MAX   512 /* an error message: a method name (<= 255) and a reason */
#define S_WHY_MAX   200 /* a reason within it */
#define S_ENV_MAX   16
#define S_REGEX_ERR 256

typedef struct s_agent s_agent_t;
typedef struct s_job s_job_t;

typedef struct {
    s_agent_t *agent;
    char *name; /* the file name: the method */
    char *file; /* directory/name */
    char *path; /* /agent/method */
} s_method_t;

struct s_job {
    s_job_t *prev, *next; /* in the queue, then in the running list */
    s_agent_t *agent;
    s_method_t *method;
    mesh_request_t *req;
    char *input; /* JSON text and a newline, for stdin */
    size_t input_len, input_off;
    pid_t pid;
    int fd_in, fd_out, fd_err; /* ours; -1 once closed */
    ev_io w_in, w_out, w_err;
    ev_child w_child;
    ev_timer w_timer;
    char *out;
    size_t out_len, out_cap;
    char err_tail[AGENT_EXEC_STDERR_TAIL];
    size_t err_len;
    int status;
    bool exited, timed_out, overflow;
};

typedef struct {
    s_job_t *head, *tail;
    size_t n;
} s_list_t;

struct s_agent {
    agent_t base;
    mesh_peer_t *peer;
    struct ev_loop *loop;
    char *dir;
    int workers;
    int timeout_ms;
    s_method_t *methods;
    size_t nmethods;
    size_t nexposed; /* methods[0..nexposed) are exposed */
    s_list_t queue;
    s_list_t running;
    agent_stats_t stats;
    /* the active check */
    char *check_cmd;
    bool active;
    bool check_known; /* a first run has finished */
    pid_t check_pid;  /* 0: not running */
    int64_t check_started;
    ev_timer w_check;
    ev_child w_check_child;
};

/* ------------------------------------------------------------------------ */
/* small helpers */

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_list_push(s_list_t *l, s_job_t *j)
{
    j->next = NULL;
    j->prev = l->tail;
    if (l->tail) {
        l->tail->next = j;
    } else {
        l->head = j;
    }
    l->tail = j;
    l->n++;
}

static void s_list_remove(s_list_t *l, s_job_t *j)
{
    if (j->prev) {
        j->prev->next = j->next;
    } else {
        l->head = j->next;
    }
    if (j->next) {
        j->next->prev = j->prev;
    } else {
        l->tail = j->prev;
    }
    j->prev = j->next = NULL;
    l->n--;
}

/*  A pipe whose ends are close-on-exec and not 0, 1 or 2 (meshd may run
    with a standard descriptor closed; a child's dup2 onto the same number
    would leave it close-on-exec). */
static int s_pipe(int fds[2])
{
    if (pipe2(fds, O_CLOEXEC) != 0) {
        return -1;
    }
    for (int i = 0; i < 2; i++) {
        if (fds[i] < 3) {
            int moved = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
            if (moved < 0) {
                int saved = errno;
                close(fds[0]);
                close(fds[1]);
                errno = saved;
                return -1;
            }
            close(fds[i]);
            fds[i] = moved;
        }
    }
    return 0;
}

static int s_nonblock(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/*  write() without SIGPIPE when the child has closed its stdin (meshd may
    not ignore SIGPIPE, and the library never installs signal handlers). */
static ssize_t s_write_nosigpipe(int fd, const void *buf, size_t len)
{
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE) == 1;
    ssize_t n = write(fd, buf, len);
    int saved = errno;
    if (n < 0 && saved == EPIPE && !was_pending) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    return n;
}

/*  Kills a child's process group (and the child, should it have left it). */
static void s_kill_group(pid_t pid)
{
    if (pid > 0) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
    }
}

/*  The last non-empty line of the stderr tail, made safe to carry as an
    error message (printable, valid UTF-8 is not assumed: other bytes
    become '?'), in out. Empty if stderr said nothing. */
static void s_last_line(const char *tail, size_t len, char *out, size_t outlen)
{
    while (len > 0 && (tail[len - 1] == '\n' || tail[len - 1] == '\r' || tail[len - 1] == ' ' ||
                       tail[len - 1] == '\t')) {
        len--;
    }
    size_t start = len;
    while (start > 0 && tail[start - 1] != '\n') {
        start--;
    }
    size_t o = 0;
    for (size_t i = start; i < len && o + 1 < outlen; i++) {
        unsigned char c = (unsigned char)tail[i];
        out[o++] = (c >= 0x20 && c < 0x7f) || c == '\t' ? (char)c : '?';
    }
    out[o] = '\0';
}

/* ------------------------------------------------------------------------ */
/* spawning */

typedef struct {
    char *vars[S_ENV_MAX + 1];
    size_t n;
    bool failed;
} s_env_t;

static void s_env_add(s_env_t *e, const char *name, const char *value)
{
    if (e->failed || e->n == S_ENV_MAX) {
        e->failed = true;
        return;
    }
    char *var = NULL;
    if (asprintf(&var, "%s=%s", name, value) < 0) {
        e->failed = true;
        return;
    }
    e->vars[e->n++] = var;
    e->vars[e->n] = NULL;
}

static void s_env_free(s_env_t *e)
{
    for (size_t i = 0; i < e->n; i++) {
        free(e->vars[i]);
    }
    e->n = 0;
}

static void s_env_base(s_env_t *e, const s_agent_t *self)
{
    s_env_add(e, "PATH", AGENT_EXEC_ENV_PATH);
    s_env_add(e, "LANG", "C.UTF-8");
    const char *home = getenv("HOME");
    if (home) {
        s_env_add(e, "HOME", home);
    }
    s_env_add(e, "MESH_AGENT", self->base.name);
}

/*  Starts argv[0] in dir with stdin/stdout/stderr on the given descriptors
    (-1: /dev/null), in a new process group, every signal at its default
    and none blocked, no other descriptor open. Returns 0 or an errno. */
static int s_spawn(pid_t *pid, const char *dir, char *const argv[], char *const envp[], int fd_in,
                   int fd_out, int fd_err)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&fa);
    if (rc != 0) {
        return rc;
    }
    rc = posix_spawnattr_init(&attr);
    if (rc != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return rc;
    }
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    int fds[3] = {fd_in, fd_out, fd_err};
    for (int i = 0; i < 3 && rc == 0; i++) {
        rc = fds[i] >= 0 ? posix_spawn_file_actions_adddup2(&fa, fds[i], i)
                         : posix_spawn_file_actions_addopen(&fa, i, "/dev/null",
                                                            i == 0 ? O_RDONLY : O_WRONLY, 0);
    }
    if (rc == 0) {
        rc = posix_spawn_file_actions_addchdir_np(&fa, dir);
    }
    if (rc == 0) {
        rc = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    }
    if (rc == 0) {
        rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                                 POSIX_SPAWN_SETSIGDEF);
    }
    if (rc == 0) {
        rc = posix_spawnattr_setpgroup(&attr, 0);
    }
    if (rc == 0) {
        rc = posix_spawnattr_setsigmask(&attr, &none);
    }
    if (rc == 0) {
        rc = posix_spawnattr_setsigdefault(&attr, &all);
    }
    if (rc == 0) {
        rc = posix_spawn(pid, argv[0], &fa, &attr, argv, envp);
    }
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* jobs */

static void s_pump(s_agent_t *self);

static void s_job_free(s_job_t *job)
{
    free(job->input);
    free(job->out);
    free(job);
}

/*  Stops the job's watchers and closes its descriptors. */
static void s_job_detach(s_job_t *job)
{
    struct ev_loop *loop = job->agent->loop;
    ev_io *ws[3] = {&job->w_in, &job->w_out, &job->w_err};
    int *fds[3] = {&job->fd_in, &job->fd_out, &job->fd_err};
    for (int i = 0; i < 3; i++) {
        ev_io_stop(loop, ws[i]);
        if (*fds[i] >= 0) {
            close(*fds[i]);
            *fds[i] = -1;
        }
    }
    ev_child_stop(loop, &job->w_child);
    ev_timer_stop(loop, &job->w_timer);
}

/*  Finishes a request that never got (or no longer has) a process. */
static void s_req_error(s_agent_t *self, mesh_request_t *req, const char *message)
{
    self->stats.errors++;
    mesh_request_error(req, message);
}

/*  The reply from a successful run: stdout as JSON, packed. */
static void s_job_reply(s_job_t *job)
{
    s_agent_t *self = job->agent;
    const char *method = job->method->name;
    size_t i = 0;
    while (i < job->out_len && strchr(" \t\r\n", job->out[i])) {
        i++;
    }
    json_t *value;
    char err[S_ERR_MAX];
    if (i == job->out_len) {
        value = json_null(); /* said nothing: null */
    } else {
        json_error_t jerr;
        value = json_loadb(job->out, job->out_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        if (!value) {
            snprintf(err, sizeof err, "invalid JSON from %s: %s", method, jerr.text);
            s_req_error(self, job->req, err);
            return;
        }
    }
    uint8_t *packed = NULL;
    size_t len = 0;
    char why[S_WHY_MAX];
    int rc = jsonpack_from_json(value, &packed, &len, why, sizeof why);
    json_decref(value);
    if (rc != 0) {
        snprintf(err, sizeof err, "reply of %s: %s", method, why);
        s_req_error(self, job->req, err);
        return;
    }
    rc = mesh_request_reply(job->req, packed, len);
    if (rc != 0) {
        agent_log(AGENT_LOG_WARN, self->base.name, "%s: reply of %zu bytes not sent: %s", method,
                  len, mesh_strerror(rc));
    }
    free(packed);
}

/*  Every end of a started job comes here, once its process has exited
    (s_on_child): the request is finished, the worker slot freed, the next
    queued job started. */
static void s_job_end(s_job_t *job)
{
    s_agent_t *self = job->agent;
    s_job_detach(job);
    kill(-job->pid, SIGKILL); /* whatever the method left behind in its group */
    s_list_remove(&self->running, job);

    const char *method = job->method->name;
    char err[S_ERR_MAX];
    char line[AGENT_EXEC_ERROR_MAX + 1];
    s_last_line(job->err_tail, job->err_len, line, sizeof line);
    if (job->timed_out) {
        self->stats.timeouts++;
        snprintf(err, sizeof err, "timed out after %d ms", self->timeout_ms);
        s_req_error(self, job->req, err);
    } else if (job->overflow) {
        snprintf(err, sizeof err, "output of %s exceeds %d MiB", method,
                 AGENT_EXEC_STDOUT_MAX / (1024 * 1024));
        s_req_error(self, job->req, err);
    } else if (WIFEXITED(job->status) && WEXITSTATUS(job->status) == AGENT_EXEC_EXIT_REJECT) {
        mesh_request_reject(job->req);
    } else if (WIFEXITED(job->status) && WEXITSTATUS(job->status) == 0) {
        s_job_reply(job);
    } else {
        self->stats.crashes++;
        if (line[0]) {
            s_req_error(self, job->req, line);
        } else if (WIFSIGNALED(job->status)) {
            snprintf(err, sizeof err, "killed by signal %d", WTERMSIG(job->status));
            s_req_error(self, job->req, err);
        } else {
            snprintf(err, sizeof err, "exit status %d", WEXITSTATUS(job->status));
            s_req_error(self, job->req, err);
        }
    }
    job->req = NULL;
    s_job_free(job);
    s_pump(self);
}

/*  Reads what is there; returns false at end of file or on an error. */
static bool s_read_stdout(s_job_t *job)
{
    for (int round = 0; round < 16; round++) {
        if (job->out_cap - job->out_len < AGENT_EXEC_READ_CHUNK) {
            size_t cap = job->out_cap ? job->out_cap * 2 : AGENT_EXEC_READ_CHUNK;
            while (cap - job->out_len < AGENT_EXEC_READ_CHUNK) {
                cap *= 2;
            }
            if (cap > AGENT_EXEC_STDOUT_MAX + AGENT_EXEC_READ_CHUNK) {
                cap = AGENT_EXEC_STDOUT_MAX + AGENT_EXEC_READ_CHUNK;
            }
            char *grown = realloc(job->out, cap);
            if (!grown) {
                job->overflow = true;
                return false;
            }
            job->out = grown;
            job->out_cap = cap;
        }
        ssize_t n = read(job->fd_out, job->out + job->out_len, AGENT_EXEC_READ_CHUNK);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return true;
        }
        if (n <= 0) {
            return false;
        }
        job->out_len += (size_t)n;
        if (job->out_len > AGENT_EXEC_STDOUT_MAX) {
            job->overflow = true;
            return false;
        }
    }
    return true;
}

static bool s_read_stderr(s_job_t *job)
{
    char buf[AGENT_EXEC_STDERR_TAIL];
    for (int round = 0; round < 16; round++) {
        ssize_t n = read(job->fd_err, buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return true;
        }
        if (n <= 0) {
            return false;
        }
        /* keep the last AGENT_EXEC_STDERR_TAIL bytes */
        size_t len = (size_t)n;
        if (job->err_len + len > sizeof job->err_tail) {
            size_t drop = job->err_len + len - sizeof job->err_tail;
            drop = drop > job->err_len ? job->err_len : drop;
            memmove(job->err_tail, job->err_tail + drop, job->err_len - drop);
            job->err_len -= drop;
        }
        memcpy(job->err_tail + job->err_len, buf, len);
        job->err_len += len;
    }
    return true;
}

static void s_close_fd(s_job_t *job, ev_io *w, int *fd)
{
    ev_io_stop(job->agent->loop, w);
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static void s_on_stdin(struct ev_loop *loop, ev_io *w, int revents)
{
    s_job_t *job = w->data;
    while (job->input_off < job->input_len) {
        ssize_t n = s_write_nosigpipe(job->fd_in, job->input + job->input_off,
                                      job->input_len - job->input_off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        if (n <= 0) {
            break; /* EPIPE: the method does not read its input; fine */
        }
        job->input_off += (size_t)n;
    }
    s_close_fd(job, &job->w_in, &job->fd_in);
}

static void s_on_stdout(struct ev_loop *loop, ev_io *w, int revents)
{
    s_job_t *job = w->data;
    if (!s_read_stdout(job)) {
        s_close_fd(job, &job->w_out, &job->fd_out);
        if (job->overflow) {
            s_kill_group(job->pid); /* ev_child ends the job */
        }
    }
}

static void s_on_stderr(struct ev_loop *loop, ev_io *w, int revents)
{
    s_job_t *job = w->data;
    if (!s_read_stderr(job)) {
        s_close_fd(job, &job->w_err, &job->fd_err);
    }
}

static void s_on_child(struct ev_loop *loop, ev_child *w, int revents)
{
    s_job_t *job = w->data;
    ev_child_stop(loop, w);
    job->exited = true;
    job->status = w->rstatus;
    /* what the method wrote is in the pipes now: take it; a descriptor
       still open past that belongs to something it left running, which
       s_job_end kills */
    if (job->fd_out >= 0 && !s_read_stdout(job)) {
        s_close_fd(job, &job->w_out, &job->fd_out);
    }
    if (job->fd_err >= 0 && !s_read_stderr(job)) {
        s_close_fd(job, &job->w_err, &job->fd_err);
    }
    s_job_end(job);
}

static void s_on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    s_job_t *job = w->data;
    job->timed_out = true;
    s_kill_group(job->pid); /* ev_child follows, and ends the job */
}

/*  Starts a job's process. Returns 0, or an errno (nothing started, the
    job untouched but for its descriptors). */
static int s_job_start(s_job_t *job)
{
    s_agent_t *self = job->agent;
    mesh_request_t *req = job->req;
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
    if (s_pipe(in) != 0 || s_pipe(out) != 0 || s_pipe(err) != 0) {
        int saved = errno;
        int *all[] = {in, out, err};
        for (int i = 0; i < 3; i++) {
            for (int k = 0; k < 2; k++) {
                if (all[i][k] >= 0) {
                    close(all[i][k]);
                }
            }
        }
        return saved;
    }
    s_env_t env = {.n = 0};
    char attempt[16], timeout[16];
    snprintf(attempt, sizeof attempt, "%u", mesh_request_attempt(req));
    snprintf(timeout, sizeof timeout, "%d", self->timeout_ms);
    s_env_base(&env, self);
    s_env_add(&env, "MESH_METHOD", job->method->name);
    s_env_add(&env, "MESH_PATH", job->method->path);
    s_env_add(&env, "MESH_CALLER", mesh_request_from_name(req) ? mesh_request_from_name(req) : "");
    s_env_add(&env, "MESH_CALLER_ID", mesh_request_from(req) ? mesh_request_from(req) : "");
    s_env_add(&env, "MESH_ATTEMPT", attempt);
    s_env_add(&env, "MESH_TIMEOUT_MS", timeout);
    if (mesh_request_key(req)) {
        s_env_add(&env, "MESH_KEY", mesh_request_key(req));
    }
    if (mesh_request_is_cast(req)) {
        s_env_add(&env, "MESH_CAST", "1");
    }
    int rc = env.failed ? ENOMEM : 0;
    /* the input goes into the pipe before the method starts, as much as the
       pipe holds (64 KiB by default: every payload but large ones), and the
       pipe is closed when it all fits: a method then always reads its whole
       input, even if meshd is killed right after starting it */
    if (rc == 0 && s_nonblock(in[1]) != 0) {
        rc = errno;
    }
    while (rc == 0 && job->input_off < job->input_len) {
        ssize_t n = write(in[1], job->input + job->input_off, job->input_len - job->input_off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break; /* full (EAGAIN): the rest once it runs */
        }
        job->input_off += (size_t)n;
    }
    bool all_in = job->input_off == job->input_len;
    if (rc == 0 && all_in) {
        close(in[1]);
        in[1] = -1;
    }
    if (rc == 0) {
        char *argv[] = {job->method->file, NULL};
        rc = s_spawn(&job->pid, self->dir, argv, env.vars, in[0], out[1], err[1]);
    }
    s_env_free(&env);
    close(in[0]);
    close(out[1]);
    close(err[1]);
    if (rc == 0 && (s_nonblock(out[0]) != 0 || s_nonblock(err[0]) != 0)) {
        rc = errno; /* cannot happen with pipes; be safe */
        s_kill_group(job->pid);
    }
    if (rc != 0) {
        if (in[1] >= 0) {
            close(in[1]);
        }
        close(out[0]);
        close(err[0]);
        return rc;
    }
    job->fd_in = in[1];
    job->fd_out = out[0];
    job->fd_err = err[0];
    struct ev_loop *loop = self->loop;
    ev_io_init(&job->w_in, s_on_stdin, job->fd_in, EV_WRITE);
    ev_io_init(&job->w_out, s_on_stdout, job->fd_out, EV_READ);
    ev_io_init(&job->w_err, s_on_stderr, job->fd_err, EV_READ);
    ev_child_init(&job->w_child, s_on_child, job->pid, 0);
    ev_timer_init(&job->w_timer, s_on_timeout, self->timeout_ms / 1000.0, 0.0);
    job->w_in.data = job->w_out.data = job->w_err.data = job;
    job->w_child.data = job->w_timer.data = job;
    if (job->fd_in >= 0) {
        ev_io_start(loop, &job->w_in);
    }
    ev_io_start(loop, &job->w_out);
    ev_io_start(loop, &job->w_err);
    ev_child_start(loop, &job->w_child);
    ev_timer_start(loop, &job->w_timer);
    return 0;
}

/*  Starts queued jobs while workers are free. */
static void s_pump(s_agent_t *self)
{
    while (self->queue.head && self->running.n < (size_t)self->workers) {
        s_job_t *job = self->queue.head;
        s_list_remove(&self->queue, job);
        int rc = s_job_start(job);
        if (rc != 0) {
            char err[S_ERR_MAX];
            snprintf(err, sizeof err, "cannot run %s: %s", job->method->name, strerror(rc));
            agent_log(AGENT_LOG_WARN, self->base.name, "%s", err);
            s_req_error(self, job->req, err);
            s_job_free(job);
            continue;
        }
        s_list_push(&self->running, job);
    }
}

/*  JSON text for a method's stdin. Reals are written with 15 significant
    digits when that reads back as the same value (0.4, not jansson's
    exact 0.40000000000000002), with 17 otherwise. */
static char *s_dumps(const json_t *v)
{
    size_t flags = JSON_ENCODE_ANY | JSON_COMPACT;
    char *text = json_dumps(v, flags | JSON_REAL_PRECISION(15));
    if (text) {
        json_t *back = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        bool same = back && json_equal(v, back);
        json_decref(back);
        if (same) {
            return text;
        }
        free(text);
    }
    return json_dumps(v, flags);
}

static void s_on_request(mesh_peer_t *peer, mesh_request_t *req, void *arg)
{
    s_method_t *m = arg;
    s_agent_t *self = m->agent;
    if (self->base.draining || self->queue.n >= AGENT_EXEC_QUEUE_MAX) {
        mesh_request_reject(req); /* the caller moves on to another provider */
        return;
    }
    self->stats.requests++;
    char err[S_ERR_MAX], why[S_WHY_MAX];
    json_t *payload = json_null();
    if (mesh_request_size(req) > 0) {
        payload = jsonpack_to_json(mesh_request_data(req), mesh_request_size(req), why, sizeof why);
        if (!payload) {
            snprintf(err, sizeof err, "bad payload for %s: %s", m->name, why);
            s_req_error(self, req, err);
            return;
        }
    }
    char *text = s_dumps(payload);
    json_decref(payload);
    s_job_t *job = calloc(1, sizeof *job);
    size_t len = text ? strlen(text) : 0;
    char *input = text ? realloc(text, len + 2) : NULL;
    if (!job || !input) {
        free(job);
        free(input ? input : text);
        s_req_error(self, req, "out of memory");
        return;
    }
    input[len] = '\n';
    input[len + 1] = '\0';
    job->agent = self;
    job->method = m;
    job->req = req;
    job->input = input;
    job->input_len = len + 1;
    job->fd_in = job->fd_out = job->fd_err = -1;
    s_list_push(&self->queue, job);
    s_pump(self);
}

/* ------------------------------------------------------------------------ */
/* the active check */

static bool s_is_active(mesh_peer_t *peer, void *arg)
{
    s_agent_t *self = arg;
    return self->active && !self->base.draining;
}

static void s_check_result(s_agent_t *self, bool ok, const char *why)
{
    if (ok != self->active || !self->check_known) {
        agent_log(ok ? AGENT_LOG_INFO : AGENT_LOG_WARN, self->base.name, "active check %s: %s",
                  ok ? "passes" : "fails", ok ? "offered" : why);
    }
    self->active = ok;
    self->check_known = true;
}

static void s_on_check_child(struct ev_loop *loop, ev_child *w, int revents)
{
    s_agent_t *self = w->data;
    ev_child_stop(loop, w);
    int status = w->rstatus;
    kill(-self->check_pid, SIGKILL); /* whatever it left behind */
    self->check_pid = 0;
    char why[64];
    if (WIFEXITED(status)) {
        snprintf(why, sizeof why, "exit status %d, not offered", WEXITSTATUS(status));
    } else {
        snprintf(why, sizeof why, "killed by signal %d, not offered", WTERMSIG(status));
    }
    s_check_result(self, WIFEXITED(status) && WEXITSTATUS(status) == 0, why);
}

static void s_on_check_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    s_agent_t *self = w->data;
    if (self->check_pid > 0) {
        if (s_now_ms() - self->check_started >= AGENT_EXEC_CHECK_TIMEOUT_MS) {
            s_kill_group(self->check_pid); /* ev_child reports the failure */
        }
        return;
    }
    s_env_t env = {.n = 0};
    s_env_base(&env, self);
    char *argv[] = {"/bin/sh", "-c", self->check_cmd, NULL};
    int rc = env.failed ? ENOMEM : s_spawn(&self->check_pid, self->dir, argv, env.vars, -1, -1, -1);
    s_env_free(&env);
    if (rc != 0) {
        self->check_pid = 0;
        char why[S_ERR_MAX];
        snprintf(why, sizeof why, "cannot run /bin/sh: %s", strerror(rc));
        s_check_result(self, false, why);
        return;
    }
    self->check_started = s_now_ms();
    ev_child_set(&self->w_check_child, self->check_pid, 0);
    ev_child_start(loop, &self->w_check_child);
}

static void s_check_stop(s_agent_t *self)
{
    ev_timer_stop(self->loop, &self->w_check);
    ev_child_stop(self->loop, &self->w_check_child);
    if (self->check_pid > 0) {
        s_kill_group(self->check_pid); /* libev reaps it */
        self->check_pid = 0;
    }
}

/* ------------------------------------------------------------------------ */
/* the agent */

static void s_unexpose(s_agent_t *self)
{
    while (self->nexposed > 0) {
        mesh_peer_unexpose(self->peer, self->methods[--self->nexposed].path);
    }
}

static void s_free(s_agent_t *self)
{
    for (size_t i = 0; i < self->nmethods; i++) {
        free(self->methods[i].name);
        free(self->methods[i].file);
        free(self->methods[i].path);
    }
    free(self->methods);
    free(self->dir);
    free(self->check_cmd);
    agent_base_fini(&self->base);
    free(self);
}

static void s_drain(agent_t *base)
{
    s_agent_t *self = (s_agent_t *)base;
    s_unexpose(self);
    s_check_stop(self);
}

static void s_destroy(agent_t *base)
{
    s_agent_t *self = (s_agent_t *)base;
    s_unexpose(self);
    s_check_stop(self);
    s_job_t *job;
    while ((job = self->running.head) != NULL) {
        s_job_detach(job);
        s_kill_group(job->pid); /* libev reaps it */
        s_list_remove(&self->running, job);
        s_req_error(self, job->req, "agent unloaded");
        s_job_free(job);
    }
    while ((job = self->queue.head) != NULL) {
        s_list_remove(&self->queue, job);
        s_req_error(self, job->req, "agent unloaded");
        s_job_free(job);
    }
    s_free(self);
}

static size_t s_inflight(const agent_t *base)
{
    const s_agent_t *self = (const s_agent_t *)base;
    return self->running.n + self->queue.n;
}

static void s_stats(const agent_t *base, agent_stats_t *out)
{
    *out = ((const s_agent_t *)base)->stats;
}

static const agent_ops_t s_ops = {
    .kind = "exec",
    .drain = s_drain,
    .destroy = s_destroy,
    .inflight = s_inflight,
    .stats = s_stats,
};

static int s_cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/*  The directory's methods, sorted by name. Returns 0 or -1 (logged). */
static int s_scan(s_agent_t *self, const regex_t *filter)
{
    const char *name = self->base.name;
    DIR *d = opendir(self->dir);
    if (!d) {
        agent_log(AGENT_LOG_ERROR, name, "%s: %s", self->dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!agent_name_ok(e->d_name, S_PATH_MAX) ||
            (filter && regexec(filter, e->d_name, 0, NULL, 0) != 0)) {
            continue;
        }
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, 0) != 0 || !S_ISREG(st.st_mode) ||
            faccessat(dirfd(d), e->d_name, X_OK, AT_EACCESS) != 0) {
            continue;
        }
        if (strlen(name) + strlen(e->d_name) + 2 > S_PATH_MAX) {
            agent_log(AGENT_LOG_WARN, name, "%s: the service path would be longer than %d bytes",
                      e->d_name, S_PATH_MAX);
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **grown = realloc(names, cap * sizeof *names);
            if (!grown) {
                rc = -1;
                break;
            }
            names = grown;
        }
        if (!(names[n] = strdup(e->d_name))) {
            rc = -1;
            break;
        }
        n++;
    }
    closedir(d);
    if (rc == 0 && n == 0) {
        agent_log(AGENT_LOG_ERROR, name, "%s: no executable methods%s", self->dir,
                  filter ? " match the filter" : "");
        rc = -1;
    } else if (rc == 0) {
        qsort(names, n, sizeof *names, s_cmp_names);
        self->methods = calloc(n, sizeof *self->methods);
        rc = self->methods ? 0 : -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (rc == 0) {
            s_method_t *m = &self->methods[self->nmethods++];
            m->agent = self;
            m->name = names[i];
            names[i] = NULL;
            if (asprintf(&m->file, "%s/%s", self->dir, m->name) < 0) {
                m->file = NULL;
                rc = -1;
            } else if (asprintf(&m->path, "/%s/%s", name, m->name) < 0) {
                m->path = NULL;
                rc = -1;
            }
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

agent_t *agent_exec_new(mesh_peer_t *peer, struct ev_loop *loop, const agent_config_t *cfg)
{
    assert(peer && loop && cfg);
    const char *name = cfg->name ? cfg->name : "?";
    if (!agent_name_ok(cfg->name, AGENT_NAME_MAX)) {
        agent_log(AGENT_LOG_ERROR, NULL,
                  "exec agent '%s': a name is 1-%d characters of [A-Za-z0-9._-]", name,
                  AGENT_NAME_MAX);
        return NULL;
    }
    if (!ev_is_default_loop(loop)) {
        agent_log(AGENT_LOG_ERROR, name, "exec agents need libev's default loop (ev_child)");
        return NULL;
    }
    if (!cfg->path || !*cfg->path) {
        agent_log(AGENT_LOG_ERROR, name, "no directory given");
        return NULL;
    }
    if (cfg->workers < 0 || cfg->workers > AGENT_EXEC_WORKERS_MAX || cfg->timeout_ms < 0) {
        agent_log(AGENT_LOG_ERROR, name, "workers %d (0-%d) or timeout %d ms out of range",
                  cfg->workers, AGENT_EXEC_WORKERS_MAX, cfg->timeout_ms);
        return NULL;
    }
    regex_t filter;
    bool has_filter = cfg->filter && *cfg->filter;
    if (has_filter) {
        int rc = regcomp(&filter, cfg->filter, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char why[S_REGEX_ERR];
            regerror(rc, &filter, why, sizeof why);
            agent_log(AGENT_LOG_ERROR, name, "filter '%s': %s", cfg->filter, why);
            return NULL;
        }
    }
    s_agent_t *self = calloc(1, sizeof *self);
    if (!self || agent_base_init(&self->base, &s_ops, cfg->name) != 0) {
        free(self);
        if (has_filter) {
            regfree(&filter);
        }
        agent_log(AGENT_LOG_ERROR, name, "out of memory");
        return NULL;
    }
    self->peer = peer;
    self->loop = loop;
    self->workers = cfg->workers > 0 ? cfg->workers : AGENT_EXEC_WORKERS_DEFAULT;
    self->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : AGENT_EXEC_TIMEOUT_DEFAULT;
    self->active = true;
    self->dir = realpath(cfg->path, NULL);
    if (!self->dir) {
        agent_log(AGENT_LOG_ERROR, name, "%s: %s", cfg->path, strerror(errno));
    }
    int rc = self->dir ? s_scan(self, has_filter ? &filter : NULL) : -1;
    if (has_filter) {
        regfree(&filter);
    }
    if (rc == 0 && cfg->active_check && *cfg->active_check) {
        self->check_cmd = strdup(cfg->active_check);
        self->active = false; /* until the first run passes */
        rc = self->check_cmd ? 0 : -1;
    }
    mesh_expose_opts_t opts = {
        .tags = cfg->tags, .ntags = cfg->ntags, .active = s_is_active, .active_arg = self};
    while (rc == 0 && self->nexposed < self->nmethods) {
        s_method_t *m = &self->methods[self->nexposed];
        int erc = mesh_peer_expose(peer, m->path, s_on_request, m, &opts);
        if (erc != 0) {
            agent_log(AGENT_LOG_ERROR, name, "cannot offer %s: %s", m->path, mesh_strerror(erc));
            rc = -1;
            break;
        }
        self->nexposed++;
    }
    if (rc != 0) {
        s_unexpose(self);
        s_free(self);
        return NULL;
    }
    ev_timer_init(&self->w_check, s_on_check_timer, 0.0, AGENT_EXEC_CHECK_INTERVAL_MS / 1000.0);
    self->w_check.data = self;
    ev_child_init(&self->w_check_child, s_on_check_child, 0, 0);
    self->w_check_child.data = self;
    if (self->check_cmd) {
        ev_timer_start(loop, &self->w_check);
    }
    agent_log(AGENT_LOG_INFO, name, "%zu method%s from %s, %d worker%s, timeout %d ms",
              self->nmethods, self->nmethods == 1 ? "" : "s", self->dir, self->workers,
              self->workers == 1 ? "" : "s", self->timeout_ms);
    return &self->base;
}
