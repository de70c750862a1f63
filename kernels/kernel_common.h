// Shared by every kernel source: lets one .cu file compile both with nvcc (GPU) and as plain C++ (CPU).
//
// Per-pixel work lives in KERNEL_FN (__host__ __device__) functions. Under nvcc a thin __global__ wrapper
// calls them once per pixel; compiled as C++ (g++ -x c++ file.cu) the CUDA qualifiers are defined empty
// and an extern "C" host loop calls the same functions, so the CPU build runs the kernel's own math.
#pragma once

#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define KERNEL_FN __host__ __device__ __forceinline__
#else
#define __host__
#define __device__
#define __global__
#define KERNEL_FN static inline
#endif

KERNEL_FN float clamp01(float v) { return fminf(fmaxf(v, 0.0f), 1.0f); }

// Distance from point (px, py) to the segment a-b (a capsule's axis). A zero-length segment is its point.
// Same operation order as the PyTorch references: t = clamp(((p - a) . d) / max(|d|^2, 1e-12), 0, 1).
KERNEL_FN float segment_distance(float px, float py, float ax, float ay, float bx, float by) {
    const float dx = bx - ax, dy = by - ay;
    const float length_sq = dx * dx + dy * dy;
    float t = 0.0f;
    if (length_sq > 0.0f) {
        t = ((px - ax) * dx + (py - ay) * dy) / fmaxf(length_sq, 1e-12f);
        t = clamp01(t);
    }
    return hypotf(px - (ax + t * dx), py - (ay + t * dy));
}

// Squared distance to the segment: the same t, no square root (for nearest-segment comparisons).
KERNEL_FN float segment_distance_sq(float px, float py, float ax, float ay, float bx, float by) {
    const float dx = bx - ax, dy = by - ay;
    const float length_sq = dx * dx + dy * dy;
    float t = 0.0f;
    if (length_sq > 0.0f) {
        t = ((px - ax) * dx + (py - ay) * dy) / fmaxf(length_sq, 1e-12f);
        t = clamp01(t);
    }
    const float ex = px - (ax + t * dx), ey = py - (ay + t * dy);
    return ex * ex + ey * ey;
}

// A joint is present when its confidence reaches the threshold and both coordinates are finite.
KERNEL_FN bool joint_present(const float* joints_xy, const float* confidence, int joint, float threshold) {
    return confidence[joint] >= threshold && isfinite(joints_xy[2 * joint]) &&
           isfinite(joints_xy[2 * joint + 1]);
}

#ifndef __CUDACC__
// Pixel index range [*start, *stop) whose centers (index + 0.5) can lie within `reach` of [lo, hi],
// clipped to [0, size). Computed in float and clamped before converting, so far-off coordinates are safe.
static inline void pixel_window(float lo, float hi, float reach, int size, int* start, int* stop) {
    const float a = floorf(lo - reach), b = ceilf(hi + reach) + 1.0f;
    *start = (int)fminf(fmaxf(a, 0.0f), (float)size);
    *stop = (int)fminf(fmaxf(b, 0.0f), (float)size);
}
#endif
