// Host shim for tests: compiles a kernel source's __global__ wrappers with a C++ compiler (g++) and runs them
// on the CPU exactly as the GPU would, one call per thread of the launch grid. Not part of any build of the
// kernels; tests/kernels/fake_pycuda.py uses it as the "GPU" behind its pycuda test double.
//
// Include this header first, then the .cu file (the one source: nothing of the math is copied here):
//
//     #include "cuda_host_shim.h"
//     #include "rasterize.cu"
//     extern "C" void launch_rasterize_kernel(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
//                                             unsigned bz, void* joints, ...) {
//         shim_launch(rasterize_kernel, shim_dim3{gx, gy, gz}, shim_dim3{bx, by, bz}, joints, ...);
//     }
//
// It defines __CUDACC__ (so the .cu file compiles its __global__ wrappers and kernel_common.h its device
// qualifiers), the qualifiers themselves as plain C++, and the built-in index variables (blockIdx,
// blockDim, threadIdx, gridDim) that shim_launch sets before each call. The wrappers in this project use no
// shared memory, no barriers and no warp functions, so running the threads one after another is exact.
// The system headers a kernel may use are included before __CUDACC__ is defined (some check it).
#pragma once

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include <type_traits>

#ifdef __CUDACC__
#error "cuda_host_shim.h is for a host C++ compiler, not nvcc"
#endif
#define __CUDACC__ 1
#define __host__
#define __device__
#define __global__
#define __forceinline__ inline

struct shim_dim3 {
    unsigned int x, y, z;
};

static shim_dim3 blockIdx, blockDim, threadIdx, gridDim;

// An argument as the kernel parameter's type: pointers stay pointers, ints ints, floats floats; anything else
// (a pycuda format that does not match the kernel's signature) fails to compile.
template <typename Param, typename Given>
static inline Param shim_arg(Given given) {
    static_assert(std::is_pointer<Param>::value == std::is_pointer<Given>::value,
                  "a pointer argument ('P') where the kernel takes a number, or the reverse");
    static_assert(std::is_pointer<Param>::value || std::is_same<Param, Given>::value,
                  "an int ('i') where the kernel takes a float ('f'), or the reverse");
    return (Param)given;
}

// Launch `kernel` over `grid` x `block` (the CUDA limits checked by the caller), as the GPU would: every
// thread of every block once, with blockIdx, threadIdx, blockDim and gridDim set.
template <typename... Params, typename... Given>
static void shim_launch(void (*kernel)(Params...), shim_dim3 grid, shim_dim3 block, Given... given) {
    static_assert(sizeof...(Params) == sizeof...(Given), "argument count differs from the kernel's");
    gridDim = grid;
    blockDim = block;
    for (unsigned int bz = 0; bz < grid.z; ++bz)
        for (unsigned int by = 0; by < grid.y; ++by)
            for (unsigned int bx = 0; bx < grid.x; ++bx)
                for (unsigned int tz = 0; tz < block.z; ++tz)
                    for (unsigned int ty = 0; ty < block.y; ++ty)
                        for (unsigned int tx = 0; tx < block.x; ++tx) {
                            blockIdx = shim_dim3{bx, by, bz};
                            threadIdx = shim_dim3{tx, ty, tz};
                            kernel(shim_arg<Params>(given)...);
                        }
}
