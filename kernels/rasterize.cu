// Stick-figure rasterization: one source for the CUDA kernel and the CPU build (see kernel_common.h).
// The drawing model is the one of kernels/rasterize.py's reference (its module docstring): capsules with
// a 1-pixel linear anti-aliased edge composited "over" in limb order, then joint discs in joint order.
// Layouts: joints (B, J, 2) float32 x, y in pixels; confidence (B, J); out (B, 3, H, W) planar RGB.
#include "kernel_common.h"

// Coverage of pixel center (px, py) by a limb capsule of half width `half` (0 outside the ramp).
KERNEL_FN float limb_coverage(float px, float py, float ax, float ay, float bx, float by, float half) {
    return clamp01(half + 0.5f - segment_distance(px, py, ax, ay, bx, by));
}

KERNEL_FN float disc_coverage(float px, float py, float cx, float cy, float radius) {
    return clamp01(radius + 0.5f - hypotf(px - cx, py - cy));
}

// "over": out = out * (1 - alpha) + color * alpha, for the three channels.
KERNEL_FN void composite(float* rgb, const float* color, float alpha) {
    for (int c = 0; c < 3; ++c) rgb[c] = rgb[c] * (1.0f - alpha) + color[c] * alpha;
}

// The whole drawing model for one pixel of one image (the GPU path; the CPU loop below visits the same
// pixels limb by limb through each limb's window, which gives the same result since coverage is 0 outside).
KERNEL_FN void shade_pixel(int i, int j, const float* xy, const float* conf, int num_joints,
                           const int* parents, const int* children, const float* limb_rgb, int num_limbs,
                           const float* joint_rgb, float half, float radius, float threshold, float* rgb) {
    const float px = (float)j + 0.5f, py = (float)i + 0.5f;
    rgb[0] = rgb[1] = rgb[2] = 0.0f;
    for (int l = 0; l < num_limbs; ++l) {
        const int a = parents[l], b = children[l];
        if (!joint_present(xy, conf, a, threshold) || !joint_present(xy, conf, b, threshold)) continue;
        const float alpha = limb_coverage(px, py, xy[2 * a], xy[2 * a + 1], xy[2 * b], xy[2 * b + 1], half);
        if (alpha > 0.0f) composite(rgb, limb_rgb + 3 * l, alpha);
    }
    if (radius > 0.0f) {
        for (int k = 0; k < num_joints; ++k) {
            if (!joint_present(xy, conf, k, threshold)) continue;
            const float alpha = disc_coverage(px, py, xy[2 * k], xy[2 * k + 1], radius);
            if (alpha > 0.0f) composite(rgb, joint_rgb + 3 * k, alpha);
        }
    }
}

#ifdef __CUDACC__
// One thread per pixel; grid (ceil(W / 16), ceil(H / 16), B), block (16, 16, 1).
extern "C" __global__ void rasterize_kernel(const float* joints, const float* confidence, int num_joints,
                                            const int* parents, const int* children, const float* limb_rgb,
                                            int num_limbs, const float* joint_rgb, float half,
                                            float radius, float threshold, int height, int width,
                                            float* out) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    const int i = blockIdx.y * blockDim.y + threadIdx.y;
    const int b = blockIdx.z;
    if (i >= height || j >= width) return;
    float rgb[3];
    shade_pixel(i, j, joints + (size_t)b * num_joints * 2, confidence + (size_t)b * num_joints, num_joints,
                parents, children, limb_rgb, num_limbs, joint_rgb, half, radius, threshold, rgb);
    const size_t plane = (size_t)height * width;
    float* o = out + (size_t)b * 3 * plane + (size_t)i * width + j;
    o[0] = rgb[0];
    o[plane] = rgb[1];
    o[2 * plane] = rgb[2];
}
#else
// Composite one color with the coverage `coverage(px, py)` over the window [y0, y1) x [x0, x1) of `out`.
template <typename Coverage>
static void paint_window(float* out, int height, int width, int x0, int x1, int y0, int y1,
                         const float* color, Coverage coverage) {
    const size_t plane = (size_t)height * width;
    for (int i = y0; i < y1; ++i) {
        for (int j = x0; j < x1; ++j) {
            const float alpha = coverage((float)j + 0.5f, (float)i + 0.5f);
            if (alpha > 0.0f) {
                float* o = out + (size_t)i * width + j;
                float rgb[3] = {o[0], o[plane], o[2 * plane]};
                composite(rgb, color, alpha);
                o[0] = rgb[0];
                o[plane] = rgb[1];
                o[2 * plane] = rgb[2];
            }
        }
    }
}

// The CPU host loop: images one after another; each limb, then each disc, over the window it can cover.
extern "C" void rasterize_cpu(const float* joints, const float* confidence, int batch, int num_joints,
                              const int* parents, const int* children, const float* limb_rgb, int num_limbs,
                              const float* joint_rgb, float half, float radius, float threshold, int height,
                              int width, float* out) {
    const size_t image = (size_t)3 * height * width;
    for (int b = 0; b < batch; ++b) {
        const float* xy = joints + (size_t)b * num_joints * 2;
        const float* conf = confidence + (size_t)b * num_joints;
        float* o = out + b * image;
        for (size_t k = 0; k < image; ++k) o[k] = 0.0f;
        for (int l = 0; l < num_limbs; ++l) {
            const int a = parents[l], c = children[l];
            if (!joint_present(xy, conf, a, threshold) || !joint_present(xy, conf, c, threshold)) continue;
            const float ax = xy[2 * a], ay = xy[2 * a + 1], bx = xy[2 * c], by = xy[2 * c + 1];
            int x0, x1, y0, y1;
            pixel_window(fminf(ax, bx), fmaxf(ax, bx), half + 0.5f, width, &x0, &x1);
            pixel_window(fminf(ay, by), fmaxf(ay, by), half + 0.5f, height, &y0, &y1);
            paint_window(o, height, width, x0, x1, y0, y1, limb_rgb + 3 * l,
                         [=](float px, float py) { return limb_coverage(px, py, ax, ay, bx, by, half); });
        }
        if (radius > 0.0f) {
            for (int k = 0; k < num_joints; ++k) {
                if (!joint_present(xy, conf, k, threshold)) continue;
                const float cx = xy[2 * k], cy = xy[2 * k + 1];
                int x0, x1, y0, y1;
                pixel_window(cx, cx, radius + 0.5f, width, &x0, &x1);
                pixel_window(cy, cy, radius + 0.5f, height, &y0, &y1);
                paint_window(o, height, width, x0, x1, y0, y1, joint_rgb + 3 * k,
                             [=](float px, float py) { return disc_coverage(px, py, cx, cy, radius); });
            }
        }
    }
}
#endif
