/*  mesh/export.h: symbol visibility for the public API. */
#ifndef MESH_EXPORT_H
#define MESH_EXPORT_H

#if defined(MESH_BUILDING)
#define MESH_EXPORT __attribute__((visibility("default")))
#else
#define MESH_EXPORT
#endif

#endif
