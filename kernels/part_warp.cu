// Part warp: one source for the CUDA kernels and the CPU build (see kernel_common.h). The specification is
// the PyTorch reference in kernels/part_warp.py (fit_part_transforms and _warp_ref). Here:
//   0. each part's source -> target transform, fitted in double precision (fit_part_inverse),
//   1. label each source pixel with the body part of its nearest present segment (within `radius`),
//   2. for each output pixel and active part, sample the part's masked source image bilinearly at the
//      inverse-affine position (grid_sample's align_corners=False convention, zero padding) and keep the
//      maximum over parts (and 0).
// Layouts: image (B, C, H, W); person mask (B, H, W); labels (B, H, W) int32 (-1: no part); joints
// (B, J, 2); inverse and forward affines (B, P, 6) as [m00, m01, m02, m10, m11, m12] mapping pixel-space
// x, y (pixel centers at index + 0.5); active (B, P) int32.
// Distances are compared squared (as the reference does), so both agree on every label, ties included.
#include "kernel_common.h"

#define COLLINEAR_RATIO 1e-4
#define MIN_ABS_DET 1e-6

// Step 1 of kernels/part_warp.py's model for one part of one image: the least-squares affine map of the
// part's joints present in both poses (>= 3 pairs, not collinear), else the limb rule (rotation, stretch
// along the source's principal axis, width kept), or a translation when the source points coincide.
// Writes the inverse map (target -> source pixel space) as 6 floats and returns whether the part is used
// (>= 2 pairs, |det| > MIN_ABS_DET, finite).
KERNEL_FN bool fit_part_inverse(const float* src_xy, const float* src_conf, const float* dst_xy,
                                const float* dst_conf, float threshold, const int* joints_of_part,
                                int max_joints, float* inverse) {
    double n = 0.0, sx = 0.0, sy = 0.0, dx = 0.0, dy = 0.0;
    for (int k = 0; k < max_joints; ++k) {
        const int j = joints_of_part[k];
        if (j < 0 || !joint_present(src_xy, src_conf, j, threshold) ||
            !joint_present(dst_xy, dst_conf, j, threshold))
            continue;
        n += 1.0;
        sx += src_xy[2 * j];
        sy += src_xy[2 * j + 1];
        dx += dst_xy[2 * j];
        dy += dst_xy[2 * j + 1];
    }
    const double inv_n = 1.0 / fmax(n, 1.0);
    const double msx = sx * inv_n, msy = sy * inv_n, mdx = dx * inv_n, mdy = dy * inv_n;
    double s00 = 0.0, s01 = 0.0, s11 = 0.0, c00 = 0.0, c01 = 0.0, c10 = 0.0, c11 = 0.0;
    double re = 0.0, im = 0.0;
    for (int k = 0; k < max_joints; ++k) {
        const int j = joints_of_part[k];
        if (j < 0 || !joint_present(src_xy, src_conf, j, threshold) ||
            !joint_present(dst_xy, dst_conf, j, threshold))
            continue;
        const double ux = src_xy[2 * j] - msx, uy = src_xy[2 * j + 1] - msy;
        const double vx = dst_xy[2 * j] - mdx, vy = dst_xy[2 * j + 1] - mdy;
        s00 += ux * ux;
        s01 += ux * uy;
        s11 += uy * uy;
        c00 += vx * ux;
        c01 += vx * uy;
        c10 += vy * ux;
        c11 += vy * uy;
        re += ux * vx + uy * vy;
        im += ux * vy - uy * vx;
    }
    const double trace = s00 + s11, det_s = s00 * s11 - s01 * s01;
    double a00 = 1.0, a01 = 0.0, a10 = 0.0, a11 = 1.0;
    if (n >= 3.0 && det_s > COLLINEAR_RATIO * trace * trace) {
        // A = C S^-1 with S^-1 = [[s11, -s01], [-s01, s00]] / det(S).
        a00 = (c00 * s11 - c01 * s01) / det_s;
        a01 = (c01 * s00 - c00 * s01) / det_s;
        a10 = (c10 * s11 - c11 * s01) / det_s;
        a11 = (c11 * s00 - c10 * s01) / det_s;
    } else if (trace > 0.0) {
        re /= trace;
        im /= trace;
        const double scale = hypot(re, im);
        const double rc = scale > 0.0 ? re / scale : 1.0, rs = scale > 0.0 ? im / scale : 0.0;
        const double phi = 0.5 * atan2(2.0 * s01, s00 - s11);
        const double ux = cos(phi), uy = sin(phi), vx = -uy, vy = ux;
        // stretch = scale u u^T + v v^T; A = R(rc, rs) stretch.
        const double t00 = scale * ux * ux + vx * vx, t01 = scale * ux * uy + vx * vy;
        const double t10 = scale * uy * ux + vy * vx, t11 = scale * uy * uy + vy * vy;
        a00 = rc * t00 - rs * t10;
        a01 = rc * t01 - rs * t11;
        a10 = rs * t00 + rc * t10;
        a11 = rs * t01 + rc * t11;
    }
    const double tx = mdx - (a00 * msx + a01 * msy), ty = mdy - (a10 * msx + a11 * msy);
    const double det_a = a00 * a11 - a01 * a10;
    const bool used = n >= 2.0 && fabs(det_a) > MIN_ABS_DET && isfinite(det_a) && isfinite(tx) &&
                      isfinite(ty) && isfinite(a00) && isfinite(a01) && isfinite(a10) && isfinite(a11);
    if (!used) {
        inverse[0] = 1.0f, inverse[1] = 0.0f, inverse[2] = 0.0f;
        inverse[3] = 0.0f, inverse[4] = 1.0f, inverse[5] = 0.0f;
        return false;
    }
    const double i00 = a11 / det_a, i01 = -a01 / det_a, i10 = -a10 / det_a, i11 = a00 / det_a;
    inverse[0] = (float)i00;
    inverse[1] = (float)i01;
    inverse[2] = (float)(-(i00 * tx + i01 * ty));
    inverse[3] = (float)i10;
    inverse[4] = (float)i11;
    inverse[5] = (float)(-(i10 * tx + i11 * ty));
    return true;
}

// Part label of a source pixel center: the part of the nearest segment whose two joints are present (ties
// go to the earlier segment), or -1 if its squared distance exceeds `radius_sq` or none is present.
KERNEL_FN int pixel_part_label(float px, float py, const float* xy, const float* conf, float threshold,
                               const int* seg_a, const int* seg_b, const int* seg_part, int num_segments,
                               float radius_sq) {
    float best = INFINITY;
    int label = -1;
    for (int s = 0; s < num_segments; ++s) {
        const int a = seg_a[s], b = seg_b[s];
        if (!joint_present(xy, conf, a, threshold) || !joint_present(xy, conf, b, threshold)) continue;
        const float d = segment_distance_sq(px, py, xy[2 * a], xy[2 * a + 1], xy[2 * b], xy[2 * b + 1]);
        if (d < best) {
            best = d;
            label = seg_part[s];
        }
    }
    return best <= radius_sq ? label : -1;
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
// Pass 0, one thread per (image, part); grid (ceil(B * P / 64), 1, 1), block (64, 1, 1).
extern "C" __global__ void part_fit_kernel(const float* src_joints, const float* src_conf,
                                           const float* dst_joints, const float* dst_conf, int batch,
                                           int num_joints, float threshold, const int* part_joints,
                                           int num_parts, int max_joints, float* inverse, int* active) {
    const int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= batch * num_parts) return;
    const int b = k / num_parts, p = k % num_parts;
    const size_t jo = (size_t)b * num_joints;
    active[k] = fit_part_inverse(src_joints + 2 * jo, src_conf + jo, dst_joints + 2 * jo, dst_conf + jo,
                                 threshold, part_joints + (size_t)p * max_joints, max_joints,
                                 inverse + (size_t)k * 6)
                    ? 1
                    : 0;
}

// Pass 1, one thread per source pixel; grid (ceil(W / 16), ceil(H / 16), B), block (16, 16, 1).
extern "C" __global__ void part_labels_kernel(const float* joints, const float* confidence, int num_joints,
                                              float threshold, const int* seg_a, const int* seg_b,
                                              const int* seg_part, int num_segments, float radius_sq,
                                              int height, int width, int* labels) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    const int i = blockIdx.y * blockDim.y + threadIdx.y;
    const int b = blockIdx.z;
    if (i >= height || j >= width) return;
    labels[((size_t)b * height + i) * width + j] = pixel_part_label(
        (float)j + 0.5f, (float)i + 0.5f, joints + (size_t)b * num_joints * 2,
        confidence + (size_t)b * num_joints, threshold, seg_a, seg_b, seg_part, num_segments, radius_sq);
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

// Output pixels [*j0, *j1) of row i whose inverse-mapped centers can fall in the source box
// [lo_x, hi_x] x [lo_y, hi_y] (the row's image under the affine map is a line: clip it to the box),
// widened by a pixel for rounding.
static void row_span(const float* inv, int i, float lo_x, float hi_x, float lo_y, float hi_y, int width,
                     int* j0, int* j1) {
    const float qy = (float)i + 0.5f;
    float lo = -INFINITY, hi = INFINITY;  // range of qx = j + 0.5
    const float bounds[2][2] = {{lo_x, hi_x}, {lo_y, hi_y}};
    for (int axis = 0; axis < 2; ++axis) {
        const float slope = inv[3 * axis], offset = inv[3 * axis + 1] * qy + inv[3 * axis + 2];
        const float b0 = bounds[axis][0] - offset, b1 = bounds[axis][1] - offset;
        if (fabsf(slope) < 1e-12f) {
            if (b0 > 0.0f || b1 < 0.0f) lo = INFINITY;  // the whole row maps outside the box
            continue;
        }
        const float e0 = b0 / slope, e1 = b1 / slope;
        lo = fmaxf(lo, fminf(e0, e1));
        hi = fminf(hi, fmaxf(e0, e1));
    }
    if (!(lo <= hi)) {
        *j0 = *j1 = 0;
        return;
    }
    pixel_window(lo - 0.5f, hi - 0.5f, 1.0f, width, j0, j1);
}

// The CPU host loop, per image. Pass 0 fits every part. Pass 1 visits each present segment's window
// (pixels beyond the radius cannot take its label) keeping the nearest squared distance so far, then
// boxes each part's masked pixels; pass 2 visits, for each active part and each output row, the pixels
// whose inverse-mapped centers can reach that box. The result is that of evaluating every pixel.
extern "C" void part_warp_cpu(const float* image, const float* mask, const float* joints,
                              const float* confidence, const float* target_joints,
                              const float* target_confidence, int batch, int num_joints, float threshold,
                              const int* part_joints, int max_joints, const int* seg_a, const int* seg_b,
                              const int* seg_part, int num_segments, float radius_sq, int num_parts,
                              int channels, int height, int width, float* inverse, int* active, int* labels,
                              float* out) {
    const size_t plane = (size_t)height * width;
    const float radius = sqrtf(radius_sq);
    std::vector<float> best(plane);
    for (int b = 0; b < batch; ++b) {
        const float* xy = joints + (size_t)b * num_joints * 2;
        const float* conf = confidence + (size_t)b * num_joints;
        for (int p = 0; p < num_parts; ++p)
            active[b * num_parts + p] = fit_part_inverse(
                xy, conf, target_joints + (size_t)b * num_joints * 2, target_confidence + (size_t)b * num_joints,
                threshold, part_joints + (size_t)p * max_joints, max_joints,
                inverse + ((size_t)b * num_parts + p) * 6);
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
            const int part = seg_part[s];
            int x0, x1, y0, y1;
            pixel_window(fminf(ax, bx), fmaxf(ax, bx), radius, width, &x0, &x1);
            pixel_window(fminf(ay, by), fmaxf(ay, by), radius, height, &y0, &y1);
            for (int i = y0; i < y1; ++i) {
                float* best_row = best.data() + (size_t)i * width;
                int* lab_row = lab + (size_t)i * width;
                for (int j = x0; j < x1; ++j) {
                    const float d = segment_distance_sq((float)j + 0.5f, (float)i + 0.5f, ax, ay, bx, by);
                    const bool nearer = d < best_row[j];
                    best_row[j] = nearer ? d : best_row[j];
                    lab_row[j] = nearer ? part : lab_row[j];
                }
            }
        }
        // Final labels, and each part's source box: the pixels with its label and a non-zero mask.
        std::vector<int> box(4 * (size_t)num_parts);
        for (int p = 0; p < num_parts; ++p) {
            box[4 * p] = width, box[4 * p + 1] = -1, box[4 * p + 2] = height, box[4 * p + 3] = -1;
        }
        const float* m = mask + b * plane;
        for (int i = 0; i < height; ++i) {
            for (int j = 0; j < width; ++j) {
                const size_t k = (size_t)i * width + j;
                if (!(best[k] <= radius_sq)) lab[k] = -1;
                const int p = lab[k];
                if (p < 0 || m[k] == 0.0f) continue;
                int* q = &box[4 * p];
                q[0] = j < q[0] ? j : q[0];
                q[1] = j > q[1] ? j : q[1];
                q[2] = i < q[2] ? i : q[2];
                q[3] = i > q[3] ? i : q[3];
            }
        }
        for (int p = 0; p < num_parts; ++p) {
            if (!active[b * num_parts + p] || box[4 * p + 1] < 0) continue;  // skipped, or no pixels
            // Sample positions that can reach the box's pixel centers through a bilinear tap.
            const float lo_x = (float)box[4 * p] + 0.5f - 1.0f, hi_x = (float)box[4 * p + 1] + 0.5f + 1.0f;
            const float lo_y = (float)box[4 * p + 2] + 0.5f - 1.0f, hi_y = (float)box[4 * p + 3] + 0.5f + 1.0f;
            const float* inv = inverse + ((size_t)b * num_parts + p) * 6;
            const float* img = image + (size_t)b * channels * plane;
            for (int i = 0; i < height; ++i) {
                int j0, j1;
                row_span(inv, i, lo_x, hi_x, lo_y, hi_y, width, &j0, &j1);
                for (int j = j0; j < j1; ++j)
                    warp_part_into(i, j, inv, p, img, mask + b * plane, lab, channels, height, width,
                                   o + (size_t)i * width + j, plane);
            }
        }
    }
}
#endif
