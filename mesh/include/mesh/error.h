/*  mesh/error.h: error codes.

    Every mesh call that can fail returns 0 on success or one of the negative
    codes below. OS errors are mapped onto these codes, never passed through.
    The table is the single source of the enum, mesh_strerror() and
    mesh_err_name(). */
#ifndef MESH_ERROR_H
#define MESH_ERROR_H

#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MESH_ERR_MAP(XX)                                                                    \
    XX(INVAL, -1, "invalid argument")                                                       \
    XX(NOMEM, -2, "out of memory")                                                          \
    XX(TOOLONG, -3, "value too long")                                                       \
    XX(NOIFACE, -4, "no such network interface")                                            \
    XX(ADDRINUSE, -5, "address already in use")                                             \
    XX(SOCKET, -6, "socket error")                                                          \
    XX(AGAIN, -7, "resource temporarily unavailable (peer queue full)")                     \
    XX(NOTFOUND, -8, "not found")                                                           \
    XX(EXISTS, -9, "already exists")                                                        \
    XX(STATE, -10, "operation not allowed in the current state")                            \
    XX(MALFORMED, -11, "malformed input")                                                   \
    XX(TIMEOUT, -12, "timed out")                                                           \
    XX(NOPROVIDER, -13, "no providers")                                                     \
    XX(REMOTE, -14, "remote error")                                                         \
    XX(PEERLOST, -15, "peer lost")                                                          \
    XX(REJECTED, -16, "rejected")                                                           \
    XX(CLOSED, -17, "closed")                                                               \
    XX(THREAD, -18, "thread error")                                                         \
    XX(CONFIG, -19, "configuration error")

typedef enum {
    MESH_OK = 0,
#define MESH_XX_ENUM(name, code, text) MESH_ERR_##name = (code),
    MESH_ERR_MAP(MESH_XX_ENUM)
#undef MESH_XX_ENUM
} mesh_err_t;

/*  Human-readable text for an error code (static storage, never NULL). */
MESH_EXPORT const char *mesh_strerror(int err);

/*  Short symbolic name ("MESH_ERR_TIMEOUT"), static storage, never NULL. */
MESH_EXPORT const char *mesh_err_name(int err);

#ifdef __cplusplus
}
#endif
#endif
