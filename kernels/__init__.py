"""Custom image ops (leaf modules: they import nothing from the project; tables come in as tensors).

- :func:`kernels.rasterize.rasterize_stick_figure`: anti-aliased batched stick figures.
- :func:`kernels.part_warp.warp_body_parts`: per-body-part affine warp merged by max.

Each op has ``impl="auto" | "ref" | "cpu" | "cuda"``: a PyTorch reference (the specification) and two
builds of one ``.cu`` source, C++ for CPU tensors and CUDA for CUDA tensors, built once and cached by
:mod:`kernels._build`. The project calls them through :mod:`realtime.pose.render`, which binds the skeleton.
"""
