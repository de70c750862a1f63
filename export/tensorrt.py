"""Verified TensorRT engines of an exported target: ``python -m export tensorrt TARGET.onnx TARGET.plan``
(:mod:`export.cli`).

Steps (docs/architecture.md, "Target bundle" and "Inference backends"):

1. Precision lives in the graph. TensorRT 11 removed the fp16 builder flag (strongly typed networks only), so
   for ``--precision fp16`` the fp32 ONNX graph is rewritten as an fp16 graph first (:func:`convert_to_fp16`,
   written as ``TARGET.fp16.onnx``): weights and activations in fp16, except InstanceNormalization, which is
   fed and run in fp32 between two Casts, with its scale and bias kept fp32 (its sum of squares over a whole
   512x512 plane overflows fp16's 65504); the graph's inputs and output stay float32, so every backend binds
   the same float32 tensors. ONNX Runtime (CPU) checks the fp16 graph against the fp32 one on the same random
   inputs within :data:`FP16_VS_FP32_ATOL`.
2. The engine is built from that graph as a strongly typed network (the ``STRONGLY_TYPED`` creation flag on
   TensorRT 10; on 11 every network is, and the flag is ignored or absent), with one optimization profile
   (batch 1..``max_batch`` at the graph's canvas) and a timing cache file that every build reuses and extends
   (:func:`build_plan`; a cache from another GPU or TensorRT version is not used but replaced).
3. The engine runs (:class:`realtime.model.tensorrt_backend.TensorRTBackend`) against ONNX Runtime on the
   fp32 graph on the same random inputs, within :data:`realtime.catalog.TENSORRT_VS_ONNXRUNTIME_ATOL`
   (:func:`verify_plan`).
4. The face model (``TARGET.face.onnx``, when the sidecar names one) is built the same way as
   ``TARGET.face.plan``; the sidecar's ``versions`` get the build record (TensorRT version, GPU name,
   compute capability, precision: :data:`realtime.model.tensorrt_backend.PLAN_RECORD_KEYS`), which the backend
   checks before loading a plan.

TensorRT API used, as documented (TensorRT 10.x and 11.x Python API):

- https://docs.nvidia.com/deeplearning/tensorrt/latest/inference-library/python-api-docs.html ("The Build
  Phase": ``Logger``, ``Builder``, ``create_network``, ``OnnxParser``, ``create_builder_config``,
  ``build_serialized_network``).
- https://docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api/infer/Core/Builder.html
  (``NetworkDefinitionCreationFlag.STRONGLY_TYPED``: ``1 << int(...)`` passed to ``create_network``;
  ``create_optimization_profile``), ``.../Core/BuilderConfig.html`` (``add_optimization_profile``,
  ``create_timing_cache``, ``set_timing_cache``, ``get_timing_cache``), ``.../Core/OptimizationProfile.html``
  (``set_shape(name, min, opt, max)``), ``.../Core/TimingCache.html`` (``serialize``), ``.../Parsers/Onnx/
  pyOnnx.html`` (``parse_from_file``, ``num_errors``, ``get_error``).
- https://docs.nvidia.com/deeplearning/tensorrt/11.0.0/_static/python-api/infer/Core/Builder.html
  (TensorRT 11: ``STRONGLY_TYPED`` deprecated, strong typing always on) and
  https://docs.nvidia.com/deeplearning/tensorrt/latest/api/migration/tensorrt-10x-to-11x-python-api-reference.html
  (``BuilderFlag.FP16`` removed: precision from the graph).
- https://docs.nvidia.com/deeplearning/tensorrt/latest/performance/builder-performance.html ("Timing Cache":
  tied to the device, CUDA and TensorRT versions; a miss is timed and added).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import realtime.model.tensorrt_backend as rt
from realtime.catalog import (
    DEFAULT_TENSORRT_MAX_BATCH,
    ONNX_SUFFIX,
    TENSORRT_PRECISIONS,
    TENSORRT_SUFFIX,
    TENSORRT_TIMING_CACHE_NAME,
    TENSORRT_VS_ONNXRUNTIME_ATOL,
)
from realtime.model.bundle import read_bundle, write_bundle

log = logging.getLogger(__name__)

#: Largest allowed absolute difference between the fp16 graph and the fp32 graph in ONNX Runtime (outputs in
#: [0, 1] for a generator, [-1, 1] for a face residual): fp16 keeps about 3 decimal digits (eps 9.8e-4), and a
#: generator of ~20 layers accumulates a few ulps of rounding per layer.
FP16_VS_FP32_ATOL = 2e-2
#: Largest batch of the optimization profile by default (:data:`realtime.catalog.DEFAULT_TENSORRT_MAX_BATCH`;
#: the tolerance by precision is :data:`realtime.catalog.TENSORRT_VS_ONNXRUNTIME_ATOL`).
DEFAULT_MAX_BATCH = DEFAULT_TENSORRT_MAX_BATCH
#: Batch sizes of the random inputs compared during verification (capped at the profile's largest).
VERIFY_BATCH_SIZES = (1, 2)
#: Operators run in fp32 inside an fp16 graph, and which of their inputs are fp32 parameters.
FP32_OPS = {"InstanceNormalization": (1, 2)}
#: Inputs of other operators that ONNX requires to be float32 whatever the data's type (Resize's roi, scales).
FP32_INPUT_SLOTS = {("Resize", 1), ("Resize", 2)}
#: The timing cache's file name beside the output by default (:data:`realtime.catalog`'s).
TIMING_CACHE_NAME = TENSORRT_TIMING_CACHE_NAME


class TensorRTExportError(RuntimeError):
    """A conversion or build that failed or did not verify."""


@dataclass(frozen=True)
class TensorRTReport:
    """What :func:`export_tensorrt` wrote and measured (``*_error``: max absolute differences; ``face_*`` None
    without a face model)."""

    plan_path: Path
    precision: str
    fp16_vs_fp32_error: float | None
    tensorrt_vs_onnxruntime_error: float
    record: dict[str, str]
    face_plan_path: Path | None = None
    face_fp16_vs_fp32_error: float | None = None
    face_tensorrt_vs_onnxruntime_error: float | None = None


# -- fp16 graph ----------------------------------------------------------------------------------------------
def convert_to_fp16(model: Any) -> Any:
    """An fp16 copy of an fp32 ONNX model, with InstanceNormalization in fp32 and float32 inputs and outputs.

    Float32 initializers and ``Constant``/``ConstantOfShape`` values become float16 unless every consumer
    takes them in an fp32 slot (InstanceNormalization's scale and bias, Resize's roi and scales); ``Cast`` to
    float becomes ``Cast`` to float16; each InstanceNormalization gets a Cast to float32 before it and back to
    float16 after it; each float32 graph input is cast to float16 where it enters and each float32 output is
    cast back to float32 where it leaves (names unchanged). Intermediate ``value_info`` is dropped (shape
    inference recomputes it).

    Args:
        model: an ``onnx.ModelProto`` (not modified).

    Returns:
        the new ``onnx.ModelProto``, passing ``onnx.checker`` and strict shape inference.

    Raises:
        TensorRTExportError: if a float32 tensor feeds both an fp32 slot and an fp16 one, or the result does
            not check.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    fp32_slots = {(op, i) for op, slots in FP32_OPS.items() for i in slots} | FP32_INPUT_SLOTS
    consumers: dict[str, list[tuple[str, int]]] = {}
    for node in graph.node:
        for index, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node.op_type, index))

    def stays_fp32(name: str) -> bool:
        slots = [(op, i) in fp32_slots for op, i in consumers.get(name, [])]
        if any(slots) and not all(slots):
            raise TensorRTExportError(
                f"float32 tensor {name!r} feeds both fp32 and fp16 inputs: {consumers[name]}"
            )
        return bool(slots) and all(slots)

    def to_fp16(tensor: Any) -> Any:
        array = numpy_helper.to_array(tensor)
        if np.abs(array).max(initial=0.0) > np.finfo(np.float16).max:
            raise TensorRTExportError(f"constant {tensor.name!r} exceeds the fp16 range (|x| > 65504)")
        return numpy_helper.from_array(array.astype(np.float16), tensor.name)

    for index, init in enumerate(graph.initializer):
        if init.data_type == TensorProto.FLOAT and not stays_fp32(init.name):
            graph.initializer[index].CopyFrom(to_fp16(init))
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == TensorProto.FLOAT:
                if node.op_type == "ConstantOfShape" or not stays_fp32(node.output[0]):
                    attr.t.CopyFrom(to_fp16(attr.t))
            if node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.FLOAT16

    nodes = []
    float_inputs = {i.name for i in graph.input if i.type.tensor_type.elem_type == TensorProto.FLOAT}
    for name in sorted(float_inputs):
        nodes.append(helper.make_node("Cast", [name], [f"{name}__fp16"], to=TensorProto.FLOAT16))
    float_outputs = {o.name for o in graph.output if o.type.tensor_type.elem_type == TensorProto.FLOAT}
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name in float_inputs:
                node.input[index] = f"{name}__fp16"
            elif name in float_outputs:
                node.input[index] = f"{name}__fp16"
        for index, name in enumerate(node.output):
            if name in float_outputs:
                node.output[index] = f"{name}__fp16"
        if node.op_type in FP32_OPS:
            data, out = node.input[0], node.output[0]
            nodes.append(helper.make_node("Cast", [data], [f"{data}__fp32"], to=TensorProto.FLOAT))
            node.input[0], node.output[0] = f"{data}__fp32", f"{out}__fp32"
            nodes.append(node)
            nodes.append(helper.make_node("Cast", [f"{out}__fp32"], [out], to=TensorProto.FLOAT16))
        else:
            nodes.append(node)
    for name in sorted(float_outputs):
        nodes.append(helper.make_node("Cast", [f"{name}__fp16"], [name], to=TensorProto.FLOAT))
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]
    try:
        onnx.checker.check_model(model)
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise TensorRTExportError(f"the fp16 graph does not check: {exc}") from exc
    return model


def _random_inputs(session: Any, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        i.name: rng.random((batch, *(int(d) for d in i.shape[1:])), dtype=np.float32)
        for i in session.get_inputs()
    }


def compare_onnx(
    reference: Path, candidate: Path, seed: int = 0, max_batch: int = max(VERIFY_BATCH_SIZES)
) -> float:
    """Max absolute difference between two ONNX graphs with the same inputs and outputs, run by ONNX Runtime
    on the CPU on random inputs in [0, 1) of :data:`VERIFY_BATCH_SIZES` (up to ``max_batch``)."""
    import onnxruntime as ort

    ref = ort.InferenceSession(str(reference), providers=["CPUExecutionProvider"])
    got = ort.InferenceSession(str(candidate), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    error = 0.0
    for batch in (b for b in VERIFY_BATCH_SIZES if b <= max_batch):
        feed = _random_inputs(ref, batch, rng)
        for a, b in zip(ref.run(None, feed), got.run(None, feed), strict=True):
            error = max(error, float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()))
    return error


def write_fp16_onnx(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], atol: float = FP16_VS_FP32_ATOL, seed: int = 0
) -> float:
    """Convert ``src`` (fp32 ONNX) with :func:`convert_to_fp16`, check it against ``src`` in ONNX Runtime, and
    write it to ``dst``.

    Returns:
        the maximum absolute difference from the fp32 graph.

    Raises:
        TensorRTExportError: if the conversion fails or differs by more than ``atol`` (nothing written).
    """
    import onnx

    dst = Path(dst)
    tmp = dst.with_name(dst.name + ".tmp")
    onnx.save(convert_to_fp16(onnx.load(str(src))), str(tmp))
    try:
        error = compare_onnx(Path(src), tmp, seed)
    except Exception as exc:  # onnxruntime's exceptions have no common public base class
        tmp.unlink(missing_ok=True)
        raise TensorRTExportError(f"ONNX Runtime cannot run the fp16 graph of {src}: {exc}") from exc
    if not error <= atol:
        tmp.unlink(missing_ok=True)
        raise TensorRTExportError(f"the fp16 graph of {src} differs from fp32 by {error:.3g} > {atol:.3g}")
    os.replace(tmp, dst)
    log.info("wrote %s (max |fp16 - fp32| = %.3g in ONNX Runtime)", dst, error)
    return error


# -- build ---------------------------------------------------------------------------------------------------
def onnx_input_shapes(path: str | os.PathLike[str]) -> dict[str, tuple[int, ...]]:
    """The graph inputs' shapes without the batch axis, ``{name: (C, H, W)}``.

    Raises:
        TensorRTExportError: if a non-batch axis is not a fixed size.
    """
    import onnx

    shapes = {}
    for value in onnx.load(str(path), load_external_data=False).graph.input:
        dims = value.type.tensor_type.shape.dim[1:]
        if not all(d.HasField("dim_value") for d in dims):
            raise TensorRTExportError(f"{path}: input {value.name!r} has a dynamic axis besides the batch")
        shapes[value.name] = tuple(int(d.dim_value) for d in dims)
    return shapes


def build_plan(
    onnx_path: str | os.PathLike[str],
    plan_path: str | os.PathLike[str],
    *,
    max_batch: int = DEFAULT_MAX_BATCH,
    timing_cache: str | os.PathLike[str] | None = None,
    trt: Any = None,
) -> Path:
    """Build and write a serialized engine from an ONNX graph, as a strongly typed network (precision as in
    the graph), with one optimization profile: every input ``(1..max_batch, C, H, W)``, optimal at batch 1.

    Args:
        onnx_path: the graph (fp16 from :func:`write_fp16_onnx`, or fp32).
        plan_path: the engine file to write (atomically).
        max_batch: the profile's largest batch.
        timing_cache: a timing cache file, read if present and written back extended (after the plan); one
            made elsewhere (another GPU, TensorRT or CUDA version) is not used and is replaced; None for none.
        trt: the ``tensorrt`` module (tests pass a stand-in); imported when None.

    Raises:
        realtime.model.backends.BackendError: without TensorRT (says what to install).
        TensorRTExportError: if parsing or building fails (with the parser's errors).
    """
    if max_batch < 1:
        raise TensorRTExportError(f"max_batch must be >= 1, got {max_batch}")
    trt = rt.import_tensorrt() if trt is None else trt
    onnx_path, plan_path = Path(onnx_path), Path(plan_path)
    shapes = onnx_input_shapes(onnx_path)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if strongly_typed is not None:  # required on TensorRT 10; ignored (always on) on 11
        flags |= 1 << int(strongly_typed)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise TensorRTExportError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    for index in range(network.num_inputs):
        name = network.get_input(index).name
        if name not in shapes:
            raise TensorRTExportError(f"TensorRT's network has an input {name!r} that {onnx_path} lacks")
        chw = shapes[name]
        profile.set_shape(name, (1, *chw), (1, *chw), (max_batch, *chw))
    config.add_optimization_profile(profile)
    cache_path = None if timing_cache is None else Path(timing_cache)
    cached = cache_path.read_bytes() if cache_path is not None and cache_path.is_file() else b""
    if cache_path is not None:
        _set_timing_cache(config, cache_path, cached)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise TensorRTExportError(f"TensorRT could not build an engine from {onnx_path} (see its log above)")
    _write_atomic(plan_path, bytes(serialized))  # first: nothing after the build may lose it
    if cache_path is not None:
        cache = config.get_timing_cache()
        if cache is None:
            log.warning("timing cache %s: TensorRT kept no cache for this build; the file is left as it was",
                        cache_path)  # fmt: skip
        else:
            _write_atomic(cache_path, bytes(cache.serialize()))
            log.info("timing cache %s: %d bytes read, written back", cache_path, len(cached))
    log.info("built %s from %s (batch 1..%d)", plan_path, onnx_path.name, max_batch)
    return plan_path


def _set_timing_cache(config: Any, cache_path: Path, cached: bytes) -> None:
    """Give ``config`` the timing cache read from ``cache_path`` (``cached``, empty for a new one).

    ``IBuilderConfig.set_timing_cache(cache, ignore_mismatch=False)`` returns False and sets nothing when the
    cache was made on another device or by another TensorRT or CUDA version; the build then starts from an
    empty cache (so ``get_timing_cache()`` has one to serialize afterwards), and the file is replaced by this
    machine's cache after the build.

    Raises:
        TensorRTExportError: if TensorRT refuses even an empty cache.
    """
    if config.set_timing_cache(config.create_timing_cache(cached), False):
        return
    log.warning(
        "timing cache %s was made on another GPU or by another TensorRT/CUDA version (%d bytes): not used; "
        "this build starts a new one and replaces the file",
        cache_path,
        len(cached),
    )
    if not config.set_timing_cache(config.create_timing_cache(b""), False):
        raise TensorRTExportError(f"TensorRT refused an empty timing cache (for {cache_path})")


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def build_record(trt: Any, precision: str, device: torch.device) -> dict[str, str]:
    """The sidecar's build record of plans built here
    (:data:`realtime.model.tensorrt_backend.PLAN_RECORD_KEYS`)."""
    gpu_name, (major, minor) = rt.cuda_device_info(device)
    return {
        "tensorrt": str(trt.__version__),
        "tensorrt_gpu": gpu_name,
        "tensorrt_compute_capability": f"{major}.{minor}",
        "tensorrt_precision": precision,
    }


def verify_plan(
    plan_path: Path, onnx_fp32: Path, record: dict[str, str], atol: float, *, seed: int = 0, trt: Any = None
) -> float:
    """Run the engine and ONNX Runtime (CPU, the fp32 graph) on the same random inputs.

    Returns:
        the maximum absolute difference.

    Raises:
        TensorRTExportError: if it exceeds ``atol``.
    """
    import onnxruntime as ort

    backend = rt.TensorRTBackend(plan_path, build_record=record, trt=trt)
    session = ort.InferenceSession(str(onnx_fp32), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    error = 0.0
    for batch in VERIFY_BATCH_SIZES:
        feed = _random_inputs(session, batch, rng)
        expected = session.run(backend.output_names, feed)
        got = backend.run({name: torch.from_numpy(x) for name, x in feed.items()})
        for name, want in zip(backend.output_names, expected, strict=True):
            error = max(error, float(np.abs(got[name].cpu().numpy() - want).max()))
    if not error <= atol:
        raise TensorRTExportError(f"{plan_path} differs from ONNX Runtime by {error:.3g} > {atol:.3g}")
    return error


def export_tensorrt(
    onnx_path: str | os.PathLike[str],
    plan_path: str | os.PathLike[str],
    *,
    precision: str = TENSORRT_PRECISIONS[0],
    max_batch: int = DEFAULT_MAX_BATCH,
    timing_cache: str | os.PathLike[str] | None = None,
    atol: float | None = None,
    device: str | torch.device = "cuda",
    trt: Any = None,
) -> TensorRTReport:
    """Convert, build and verify ``TARGET.plan`` (and ``TARGET.face.plan``) from ``TARGET.onnx`` and record
    the build in the sidecar (see the module's docstring).

    Args:
        onnx_path: the fp32 ``.onnx`` written by ``python -m export onnx``, with its sidecar.
        plan_path: the ``.plan`` to write (same stem as the sidecar: ``TARGET.plan``).
        precision: one of :data:`realtime.catalog.TENSORRT_PRECISIONS` ("fp16", "fp32").
        max_batch: the optimization profile's largest batch.
        timing_cache: the timing cache file (default: :data:`TIMING_CACHE_NAME` beside the plan).
        atol: TensorRT vs ONNX Runtime tolerance (default: ``precision``'s in
            :data:`realtime.catalog.TENSORRT_VS_ONNXRUNTIME_ATOL`).
        device: the CUDA device to build and verify on.
        trt: the ``tensorrt`` module (tests pass a stand-in); imported when None.

    Raises:
        realtime.model.backends.BackendError: without TensorRT or CUDA.
        realtime.model.bundle.BundleError: without a sidecar beside ``onnx_path``.
        TensorRTExportError: for a wrong file name, a failed conversion, build or verification.
    """
    onnx_path, plan_path = Path(onnx_path), Path(plan_path)
    if precision not in TENSORRT_VS_ONNXRUNTIME_ATOL:
        raise TensorRTExportError(
            f"precision must be one of {list(TENSORRT_VS_ONNXRUNTIME_ATOL)}, got {precision!r}"
        )
    if (
        plan_path.suffix != TENSORRT_SUFFIX
        or onnx_path.suffix != ONNX_SUFFIX
        or plan_path.stem != onnx_path.stem
    ):
        raise TensorRTExportError(
            "expected TARGET.onnx -> TARGET.plan in one stem (they share TARGET.json), got "
            f"{onnx_path} -> {plan_path}"
        )
    trt = rt.import_tensorrt() if trt is None else trt
    bundle = read_bundle(onnx_path)
    record = build_record(trt, precision, torch.device(device))
    atol = TENSORRT_VS_ONNXRUNTIME_ATOL[precision] if atol is None else atol
    cache = plan_path.parent / TIMING_CACHE_NAME if timing_cache is None else Path(timing_cache)

    def one(src: Path, dst: Path) -> tuple[float | None, float]:
        graph, fp16_error = src, None
        if precision == "fp16":
            graph = src.with_name(src.stem + ".fp16.onnx")
            fp16_error = write_fp16_onnx(src, graph)
        build_plan(graph, dst, max_batch=max_batch, timing_cache=cache, trt=trt)
        return fp16_error, verify_plan(dst, src, record, atol, trt=trt)

    fp16_error, error = one(onnx_path, plan_path)
    face_plan = face_fp16 = face_error = None
    if bundle.face_model is not None:
        face_onnx = onnx_path.parent / bundle.face_model
        face_plan = face_onnx.with_suffix(TENSORRT_SUFFIX)
        face_fp16, face_error = one(face_onnx, face_plan)
    write_bundle(onnx_path, dataclasses.replace(bundle, versions={**bundle.versions, **record}))
    return TensorRTReport(plan_path, precision, fp16_error, error, record, face_plan, face_fp16, face_error)
