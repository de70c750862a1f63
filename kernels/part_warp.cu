// Part warp: one source for the CUDA kernels and the CPU build (see kernel_common.h). The specification is
// the PyTorch reference in kernels/part_warp.py; the affine fit is shared (done in PyTorch before the
// launch), these functions do the per-pixel work:
//   1. label each source pixel with the body part of its nearest present segment (within `radius`),
//   2. for each output pixel and active part, sample the part's masked source image bilinearly at the
//      inverse-affine position (grid_sample's align_corners=False convention, zero padding) and keep the
//      maximum over parts (and 0).
// Layouts: image (B, C, H, W); person mask (B, H, W); labels (B, H, W) int32 (-1: no part); joints
// (B, J, 2); inverse and forward affines (B, P, 6) as [m00, m01, m02, m10, m11, m12] mapping pixel-space
// x, y (pixel centers at index + 0.5); active (B, P) int32.
#include "kernel_common.h"

// Part label of a source pixel center: the part of the nearest segment whose two joints are present (ties
// go to the earlier segment), or -1 if that segment is farther than `radius` or none is present.
KERNEL_FN int pixel_part_label(float px, float py, const float* xy, const float* conf, float threshold,
                               const int* seg_a, const int* seg_b, const int* seg_part, int num_segments,
                               float radius) {
    float best = INFINITY;
    int label = -1;
    for (int s = 0; s < num_segments; ++s) {
        const int a = seg_a[s], b = seg_b[s];
        if (!joint_present(xy, conf, a, threshold) || !joint_present(xy, conf, b, threshold)) continue;
        const float d = segment_distance(px, py, xy[2 * a], xy[2 * a + 1], xy[2 * b], xy[2 * b + 1]);
        if (d < best) {
            best = d;
            label = seg_part[s];
        }
    }
    return best <= radius ? label : -1;
}

// Max of `out` (channel planes `plane` apart, at output pixel (i, j)) and part `part`'s warped, masked
// source: bilinear taps at the inverse-affine position; a tap counts when it lies on the canvas and its
// label is `part`, weighted by the person mask there. `out` must already be >= 0 (0 is the floor).
KERNEL_FN void warp_part_into(int i, int j, const float* inv, int part, const float* image,
                              const float* mask, const int* labels, int channels, int height, int width,
                              float* out, size_t plane) {
    const float qx = (float)j + 0.5f, qy = (float)i + 0.5f;
    const float ix = inv[0] * qx + inv[1] * qy + inv[2] - 0.5f;  // source position in index units
    const float iy = inv[3] * qx + inv[4] * qy + inv[5] - 0.5f;
    if (!(ix > -1.0f && ix < (float)width && iy > -1.0f && iy < (float)height)) return;  // all taps off
    const float fx0 = floorf(ix), fy0 = floorf(iy);
    const int x0 = (int)fx0, y0 = (int)fy0;
    const float fx = ix - fx0, fy = iy - fy0;
    float w[4] = {(1.0f - fx) * (1.0f - fy), fx * (1.0f - fy), (1.0f - fx) * fy, fx * fy};
    size_t at[4] = {0, 0, 0, 0};
    bool any = false;
    for (int k = 0; k < 4; ++k) {
        const int x = x0 + (k & 1), y = y0 + (k >> 1);
        if (x < 0 || x >= width || y < 0 || y >= height) {
            w[k] = 0.0f;
            continue;
        }
        at[k] = (size_t)y * width + x;
        if (labels[at[k]] != part) {
            w[k] = 0.0f;
            continue;
        }
        w[k] *= mask[at[k]];
        any = any || w[k] != 0.0f;
    }
    if (!any) return;
    for (int c = 0; c < channels; ++c) {
        const float* src = image + (size_t)c * plane;
        const float v = w[0] * src[at[0]] + w[1] * src[at[1]] + w[2] * src[at[2]] + w[3] * src[at[3]];
        out[(size_t)c * plane] = fmaxf(out[(size_t)c * plane], v);
    }
}

#ifdef __CUDACC__
// Pass 1, one thread per source pixel; grid (ceil(W / 16), ceil(H / 16), B), block (16, 16, 1).
extern "C" __global__ void part_labels_kernel(const float* joints, const float* confidence, int num_joints,
                                              float threshold, const int* seg_a, const int* seg_b,
                                              const int* seg_part, int num_segments, float radius,
                                              int height, int width, int* labels) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    const int i = blockIdx.y * blockDim.y + threadIdx.y;
    const int b = blockIdx.z;
    if (i >= height || j >= width) return;
    labels[((size_t)b * height + i) * width + j] = pixel_part_label(
        (float)j + 0.5f, (float)i + 0.5f, joints + (size_t)b * num_joints * 2,
        confidence + (size_t)b * num_joints, threshold, seg_a, seg_b, seg_part, num_segments, radius);
}

// Pass 2, one thread per output pixel; same grid and block.
extern "C" __global__ void part_warp_kernel(const float* image, const float* mask, const int* labels,
                                            const float* inverse, const int* active, int num_parts,
                                            int channels, int height, int width, float* out) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    const int i = blockIdx.y * blockDim.y + threadIdx.y;
    const int b = blockIdx.z;
    if (i >= height || j >= width) return;
    const size_t plane = (size_t)height * width;
    float* o = out + (size_t)b * channels * plane + (size_t)i * width + j;
    for (int c = 0; c < channels; ++c) o[(size_t)c * plane] = 0.0f;
    for (int p = 0; p < num_parts; ++p) {
        if (!active[b * num_parts + p]) continue;
        warp_part_into(i, j, inverse + ((size_t)b * num_parts + p) * 6, p,
                       image + (size_t)b * channels * plane, mask + (size_t)b * plane,
                       labels + (size_t)b * plane, channels, height, width, o, plane);
    }
}
#else
#include <vector>

// The CPU host loop. Pass 1 visits each present segment's window (pixels farther than `radius` cannot
// take its label) keeping the nearest distance so far; pass 2 visits, for each active part, the output
// pixels its forward-mapped source box can reach. Both give the same result as every pixel.
extern "C" void part_warp_cpu(const float* image, const float* mask, const float* joints,
                              const float* confidence, int batch, int num_joints, float threshold,
                              const int* seg_a, const int* seg_b, const int* seg_part, int num_segments,
                              float radius, const float* inverse, const float* forward, const int* active,
                              int num_parts, int channels, int height, int width, int* labels, float* out) {
    const size_t plane = (size_t)height * width;
    std::vector<float> best(plane);
    for (int b = 0; b < batch; ++b) {
        const float* xy = joints + (size_t)b * num_joints * 2;
        const float* conf = confidence + (size_t)b * num_joints;
        int* lab = labels + b * plane;
        float* o = out + (size_t)b * channels * plane;
        for (size_t k = 0; k < plane; ++k) {
            best[k] = INFINITY;
            lab[k] = -1;
        }
        for (size_t k = 0; k < (size_t)channels * plane; ++k) o[k] = 0.0f;
        for (int s = 0; s < num_segments; ++s) {
            const int a = seg_a[s], c = seg_b[s];
            if (!joint_present(xy, conf, a, threshold) || !joint_present(xy, conf, c, threshold)) continue;
            const float ax = xy[2 * a], ay = xy[2 * a + 1], bx = xy[2 * c], by = xy[2 * c + 1];
            int x0, x1, y0, y1;
            pixel_window(fminf(ax, bx), fmaxf(ax, bx), radius, width, &x0, &x1);
            pixel_window(fminf(ay, by), fmaxf(ay, by), radius, height, &y0, &y1);
            for (int i = y0; i < y1; ++i) {
                for (int j = x0; j < x1; ++j) {
                    const float d = segment_distance((float)j + 0.5f, (float)i + 0.5f, ax, ay, bx, by);
                    const size_t k = (size_t)i * width + j;
                    if (d < best[k]) {
                        best[k] = d;
                        lab[k] = seg_part[s];
                    }
                }
            }
        }
        for (size_t k = 0; k < plane; ++k)
            if (!(best[k] <= radius)) lab[k] = -1;
        for (int p = 0; p < num_parts; ++p) {
            if (!active[b * num_parts + p]) continue;
            // Source box: centers of the part's possible pixels, widened by one pixel for the bilinear taps.
            float lo_x = INFINITY, hi_x = -INFINITY, lo_y = INFINITY, hi_y = -INFINITY;
            for (int s = 0; s < num_segments; ++s) {
                const int a = seg_a[s], c = seg_b[s];
                if (seg_part[s] != p || !joint_present(xy, conf, a, threshold) ||
                    !joint_present(xy, conf, c, threshold))
                    continue;
                lo_x = fminf(lo_x, fminf(xy[2 * a], xy[2 * c]));
                hi_x = fmaxf(hi_x, fmaxf(xy[2 * a], xy[2 * c]));
                lo_y = fminf(lo_y, fminf(xy[2 * a + 1], xy[2 * c + 1]));
                hi_y = fmaxf(hi_y, fmaxf(xy[2 * a + 1], xy[2 * c + 1]));
            }
            if (!(lo_x <= hi_x)) continue;  // no present segment: the part has no pixels
            lo_x = fmaxf(lo_x - radius, 0.5f) - 1.0f;
            hi_x = fminf(hi_x + radius, (float)width - 0.5f) + 1.0f;
            lo_y = fmaxf(lo_y - radius, 0.5f) - 1.0f;
            hi_y = fminf(hi_y + radius, (float)height - 0.5f) + 1.0f;
            if (lo_x > hi_x || lo_y > hi_y) continue;  // the part lies off the canvas
            const float* f = forward + ((size_t)b * num_parts + p) * 6;
            float tx0 = INFINITY, tx1 = -INFINITY, ty0 = INFINITY, ty1 = -INFINITY;
            for (int corner = 0; corner < 4; ++corner) {
                const float x = (corner & 1) ? hi_x : lo_x, y = (corner & 2) ? hi_y : lo_y;
                const float tx = f[0] * x + f[1] * y + f[2], ty = f[3] * x + f[4] * y + f[5];
                tx0 = fminf(tx0, tx);
                tx1 = fmaxf(tx1, tx);
                ty0 = fminf(ty0, ty);
                ty1 = fmaxf(ty1, ty);
            }
            int j0, j1, i0, i1;  // output pixels whose centers lie in the box, 2 px margin for rounding
            pixel_window(tx0 - 0.5f, tx1 - 0.5f, 2.0f, width, &j0, &j1);
            pixel_window(ty0 - 0.5f, ty1 - 0.5f, 2.0f, height, &i0, &i1);
            const float* inv = inverse + ((size_t)b * num_parts + p) * 6;
            const float* img = image + (size_t)b * channels * plane;
            for (int i = i0; i < i1; ++i)
                for (int j = j0; j < j1; ++j)
                    warp_part_into(i, j, inv, p, img, mask + b * plane, lab, channels, height, width,
                                   o + (size_t)i * width + j, plane);
        }
    }
}
#endif
