/*  fuzz.h: shared by the fuzz targets in this directory.

    Each target defines LLVMFuzzerTestOneInput, feeds the input to one decoder
    and checks properties of the result. A broken property is a crash
    (abort), so libFuzzer keeps the input and the replay test fails on it,
    with or without sanitizers and whatever NDEBUG says. */
#ifndef MESH_FUZZ_H
#define MESH_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define MESH_FUZZ_CHECK(cond)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond);            \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
