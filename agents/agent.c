/*  agent.c: what every kind of agent shares: dispatch of agent.h's calls
    through agent_ops_t, names, the log. */
#include "agent_impl.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_LOG_LINE_MAX 2048

static agent_log_fn *s_log_fn;
static void *s_log_arg;

int agent_base_init(agent_t *self, const agent_ops_t *ops, const char *name)
{
    assert(self && ops && ops->destroy && name);
    self->ops = ops;
    self->draining = false;
    self->name = strdup(name);
    return self->name ? 0 : -1;
}

void agent_base_fini(agent_t *self)
{
    free(self->name);
    self->name = NULL;
}

bool agent_name_ok(const char *name, size_t max)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > max || name[0] == '.') {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

void agent_destroy(agent_t **self_p, bool drain)
{
    if (!self_p || !*self_p) {
        return;
    }
    agent_t *self = *self_p;
    if (drain) {
        if (!self->draining) {
            self->draining = true;
            if (self->ops->drain) {
                self->ops->drain(self);
            }
        }
        return;
    }
    *self_p = NULL;
    self->ops->destroy(self);
}

const char *agent_name(const agent_t *self)
{
    assert(self);
    return self->name;
}

void agent_stats(const agent_t *self, agent_stats_t *out)
{
    assert(self && out);
    memset(out, 0, sizeof *out);
    if (self->ops->stats) {
        self->ops->stats(self, out);
    }
}

size_t agent_inflight(const agent_t *self)
{
    if (!self || !self->ops->inflight) {
        return 0;
    }
    return self->ops->inflight(self);
}

void agent_set_log(agent_log_fn *fn, void *arg)
{
    s_log_fn = fn;
    s_log_arg = arg;
}

void agent_log(int level, const char *agent, const char *fmt, ...)
{
    if (!s_log_fn && level >= AGENT_LOG_DEBUG) {
        return;
    }
    char line[S_LOG_LINE_MAX];
    int n = agent ? snprintf(line, sizeof line, "agent %s: ", agent) : 0;
    if (n < 0 || (size_t)n >= sizeof line) {
        n = 0;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    if (s_log_fn) {
        s_log_fn(level, line, s_log_arg);
    } else {
        fprintf(stderr, "meshd: %s\n", line);
    }
}
