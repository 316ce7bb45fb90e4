/*  mesh/mesh.h: the public API of mesh, a brokerless peer-to-peer service mesh.
    Include this header only; it includes the rest. */
#ifndef MESH_MESH_H
#define MESH_MESH_H

#include "export.h"
#include "defaults.h"
#include "error.h"
#include "peer.h"
#include "tasks.h"

#define MESH_VERSION_MAJOR 0
#define MESH_VERSION_MINOR 1
#define MESH_VERSION_PATCH 0

#ifdef __cplusplus
extern "C" {
#endif

/*  The library's version, "MAJOR.MINOR.PATCH" (static storage). */
MESH_EXPORT const char *mesh_version(void);

#ifdef __cplusplus
}
#endif
#endif
