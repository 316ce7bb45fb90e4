/*  error.c: the error table. */
#include <mesh/mesh.h>

const char *mesh_strerror(int err)
{
    switch (err) {
    case MESH_OK:
        return "success";
#define XX(name, code, text)                                                                      \
    case code:                                                                                     \
        return text;
        MESH_ERR_MAP(XX)
#undef XX
    default:
        return "unknown error";
    }
}

const char *mesh_err_name(int err)
{
    switch (err) {
    case MESH_OK:
        return "MESH_OK";
#define XX(name, code, text)                                                                      \
    case code:                                                                                     \
        return "MESH_ERR_" #name;
        MESH_ERR_MAP(XX)
#undef XX
    default:
        return "MESH_ERR_UNKNOWN";
    }
}

const char *mesh_version(void)
{
    return MESH_VERSION_STRING;
}
