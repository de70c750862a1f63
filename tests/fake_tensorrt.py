"""Stand-ins for the ``tensorrt`` module and for PyTorch's CUDA streams and graphs, for tests on machines
without TensorRT or a GPU. They follow the real APIs where the project's code could get them wrong:

- ``FakeTensorRT`` records the calls made to it (``calls``: ``(method, args)`` in order). Its engines add
  their inputs, reading and writing the bound memory through the addresses given to ``set_tensor_address``
  (so a wrong binding shows), with a dynamic batch axis and a profile of batch 1..4. As in TensorRT 10/11
  (Python API reference: ``Builder``, ``IBuilderConfig``, ``IExecutionContext``):

  - ``NetworkDefinitionCreationFlag`` has TensorRT 10's values (``EXPLICIT_BATCH`` 0, deprecated and ignored;
    ``STRONGLY_TYPED`` 1; ``PREFER_AOT_PYTHON_PLUGINS`` 2; ``PREFER_JIT_PYTHON_PLUGINS`` 3) or TensorRT 11's
    (``STRONGLY_TYPED`` 0, deprecated, always on; ``PREFER_AOT_PYTHON_PLUGINS`` 1;
    ``PREFER_JIT_PYTHON_PLUGINS`` 2), by the major version; ``strongly_typed_flag=False`` drops the member
    (a later release). A network created with an undefined flag bit is refused (``create_network`` raises).
  - ``IBuilderConfig.set_timing_cache(cache, ignore_mismatch)`` returns False and sets nothing for a cache
    made on another device or TensorRT version (serialized data starting with :data:`FOREIGN_CACHE`) unless
    ``ignore_mismatch``; ``get_timing_cache()`` is None until a cache is set.
  - ``build_serialized_network`` fails (None) unless the profile gives exactly the network's inputs, each of
    its rank, ``min <= opt <= max``.
  - ``IExecutionContext.set_input_shape`` and ``set_tensor_address`` return False for a name that is not an
    input (or not an I/O tensor); ``set_input_shape`` for a shape of another rank, other non-batch axes or a
    batch outside the profile; ``set_tensor_address`` for an address not :data:`ALIGNMENT` aligned.
    ``execute_async_v3`` returns False unless every I/O tensor is bound, and records its stream handle in
    ``streams``; handle 0 (the legacy default stream) is recorded too, so tests can refuse it.

- ``FakeCuda`` replaces :data:`realtime.model.tensorrt_backend.CUDA_API`: streams with distinct handles whose
  ``wait_stream`` calls are logged in order (``log``), graphs whose capture and replays are logged with the
  capture's stream and capture mode, and a capture that records the execution context each
  ``execute_async_v3`` used.
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import itertools
from types import SimpleNamespace

import numpy as np

MAX_BATCH = 4
#: TensorRT's alignment requirement on I/O tensor addresses (bytes).
ALIGNMENT = 256
#: Serialized timing caches starting with this were made on another GPU or TensorRT version.
FOREIGN_CACHE = b"FOREIGN"


def creation_flags(version: str, strongly_typed_flag: bool = True) -> dict[str, int]:
    """The members of ``NetworkDefinitionCreationFlag`` in TensorRT ``version`` (10.x or 11.x)."""
    if int(version.split(".")[0]) >= 11:
        flags = {"STRONGLY_TYPED": 0, "PREFER_AOT_PYTHON_PLUGINS": 1, "PREFER_JIT_PYTHON_PLUGINS": 2}
    else:
        flags = {
            "EXPLICIT_BATCH": 0,
            "STRONGLY_TYPED": 1,
            "PREFER_AOT_PYTHON_PLUGINS": 2,
            "PREFER_JIT_PYTHON_PLUGINS": 3,
        }
    if not strongly_typed_flag:
        del flags["STRONGLY_TYPED"]
    return flags


class FakeTensorRT(SimpleNamespace):
    """``FakeTensorRT(version, strongly_typed_flag=True)``: ``calls`` lists ``(method, args)`` in order."""

    def __init__(self, version: str = "10.13.0.35", strongly_typed_flag: bool = True, io=None) -> None:
        super().__init__()
        self.__version__ = version
        self.calls: list[tuple[str, tuple]] = []
        self.streams: list[int] = []
        self.build_result: bytes | None = b"PLAN"
        self.parse_ok = True
        self.contexts: list[_Context] = []
        # name -> (mode, shape) of the engine's I/O tensors
        self.io = io or {
            "a": ("in", (-1, 3, 8, 8)),
            "b": ("in", (-1, 3, 8, 8)),
            "out": ("out", (-1, 3, 8, 8)),
        }
        fake = self

        class Logger:
            WARNING = 2

            def __init__(self, severity):
                fake.calls.append(("Logger", (severity,)))

        self.Logger = Logger
        flags = creation_flags(version, strongly_typed_flag)
        self.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", flags)
        self.TensorIOMode = SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")
        self.DataType = SimpleNamespace(FLOAT="FLOAT", HALF="HALF")
        self.Builder = lambda logger: _Builder(fake)
        self.OnnxParser = lambda network, logger: _Parser(fake, network)
        self.Runtime = lambda logger: _Runtime(fake)

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


class _Builder:
    def __init__(self, fake):
        self.fake = fake

    def create_network(self, flags):
        valid = 0
        for member in self.fake.NetworkDefinitionCreationFlag:
            valid |= 1 << int(member)
        if flags & ~valid:
            raise ValueError(f"create_network: undefined flag bits in {flags:#b} (valid {valid:#b})")
        self.fake.calls.append(("create_network", (flags,)))
        network = SimpleNamespace(inputs=[], num_inputs=0)
        network.get_input = lambda i: network.inputs[i]
        return network

    def create_builder_config(self):
        return _Config(self.fake)

    def create_optimization_profile(self):
        fake = self.fake
        profile = SimpleNamespace(shapes={})

        def set_shape(name, low, opt, high):
            fake.calls.append(("set_shape", (name, low, opt, high)))
            profile.shapes[name] = (tuple(low), tuple(opt), tuple(high))

        profile.set_shape = set_shape
        return profile

    def build_serialized_network(self, network, config):
        self.fake.calls.append(("build_serialized_network", ()))
        names = {value.name: value for value in network.inputs}
        shapes = {}
        for profile in config.profiles:
            shapes.update(profile.shapes)
        if set(shapes) != set(names):
            return None  # "Network has dynamic or shape inputs, but no optimization profile" / unknown name
        for name, (low, opt, high) in shapes.items():
            rank = names[name].rank
            if not (len(low) == len(opt) == len(high) == rank):
                return None
            if not all(a <= b <= c for a, b, c in zip(low, opt, high, strict=True)):
                return None
        return self.fake.build_result


class _Config:
    def __init__(self, fake):
        self.fake, self.cache, self.profiles = fake, None, []

    def add_optimization_profile(self, profile):
        self.fake.calls.append(("add_optimization_profile", ()))
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def create_timing_cache(self, data):
        self.fake.calls.append(("create_timing_cache", (bytes(data),)))
        data = bytes(data)
        return SimpleNamespace(data=data, serialize=lambda: memoryview(data + b"+timings"))

    def set_timing_cache(self, cache, ignore_mismatch):
        self.fake.calls.append(("set_timing_cache", (cache.data, ignore_mismatch)))
        if cache.data.startswith(FOREIGN_CACHE) and not ignore_mismatch:
            return False  # another device or TensorRT version: nothing is set
        self.cache = cache
        return True

    def get_timing_cache(self):
        return self.cache


class _Parser:
    def __init__(self, fake, network):
        self.fake, self.network, self.num_errors = fake, network, 0

    def parse_from_file(self, path):
        """Fills the network's inputs with the ONNX graph's (name and rank)."""
        import onnx

        self.fake.calls.append(("parse_from_file", (path,)))
        graph = onnx.load(path, load_external_data=False).graph
        self.network.inputs = [
            SimpleNamespace(name=value.name, rank=len(value.type.tensor_type.shape.dim))
            for value in graph.input
        ]
        self.network.num_inputs = len(self.network.inputs)
        if not self.fake.parse_ok:
            self.num_errors = 1
        return self.fake.parse_ok

    def get_error(self, index):
        return "In node 3 (Conv): unsupported"


class _Runtime:
    def __init__(self, fake):
        self.fake = fake

    def deserialize_cuda_engine(self, data):
        self.fake.calls.append(("deserialize_cuda_engine", (bytes(data),)))
        return None if data == b"CORRUPT" else _Engine(self.fake)


class _Engine:
    def __init__(self, fake):
        self.fake, self.names = fake, list(fake.io)
        self.num_io_tensors = len(self.names)

    def get_tensor_name(self, index):
        return self.names[index]

    def get_tensor_mode(self, name):
        return (
            self.fake.TensorIOMode.INPUT if self.fake.io[name][0] == "in" else self.fake.TensorIOMode.OUTPUT
        )

    def get_tensor_dtype(self, name):
        return self.fake.DataType.FLOAT

    def get_tensor_shape(self, name):
        return self.fake.io[name][1]

    def create_execution_context(self):
        self.fake.calls.append(("create_execution_context", ()))
        context = _Context(self.fake, len(self.fake.contexts))
        self.fake.contexts.append(context)
        return context


class _Context:
    def __init__(self, fake, number):
        self.fake, self.number, self.shapes, self.addresses = fake, number, {}, {}

    def set_input_shape(self, name, shape):
        self.fake.calls.append(("set_input_shape", (name, tuple(shape))))
        io = self.fake.io.get(name)
        if io is None or io[0] != "in":
            return False  # "The given name is not an input tensor"
        declared, shape = io[1], tuple(shape)
        if len(shape) != len(declared) or any(
            d >= 0 and d != s for d, s in zip(declared, shape, strict=True)
        ):
            return False
        if not 1 <= shape[0] <= MAX_BATCH:
            return False
        self.shapes[name] = shape
        return True

    def set_tensor_address(self, name, address):
        self.fake.calls.append(("set_tensor_address", (name,)))
        if name not in self.fake.io or address % ALIGNMENT != 0:
            return False  # unknown name, or "address is not aligned"
        self.addresses[name] = address
        return True

    def execute_async_v3(self, stream_handle):
        self.fake.calls.append(("execute_async_v3", (stream_handle,)))
        self.fake.streams.append(stream_handle)
        if FakeCuda.active is not None:
            FakeCuda.active.log.append(("execute", self.number, stream_handle))
        inputs = [n for n, (mode, _) in self.fake.io.items() if mode == "in"]
        if any(n not in self.addresses for n in self.fake.io) or any(n not in self.shapes for n in inputs):
            return False
        shape = self.shapes[inputs[0]]
        total = np.zeros(shape, np.float32)
        for name in inputs:
            total += _view(self.addresses[name], shape)
        for name, (mode, _) in self.fake.io.items():
            if mode == "out":
                _view(self.addresses[name], shape)[...] = total
        return True


def _view(address: int, shape: tuple[int, ...]) -> np.ndarray:
    count = int(np.prod(shape))
    return np.ctypeslib.as_array((ctypes.c_float * count).from_address(address)).reshape(shape)


class FakeStream:
    """A CUDA stream: a handle (never 0, the legacy default stream) and ``wait_stream`` logged."""

    def __init__(self, cuda: FakeCuda, handle: int) -> None:
        self.cuda, self.cuda_stream = cuda, handle

    def wait_stream(self, other: FakeStream) -> None:
        self.cuda.log.append(("wait", self.cuda_stream, other.cuda_stream))


class FakeGraph:
    def __init__(self, cuda: FakeCuda) -> None:
        self.cuda, self.number = cuda, len(cuda.graphs)
        cuda.graphs.append(self)

    def replay(self) -> None:
        self.cuda.log.append(("replay", self.number))


class FakeCuda:
    """Replaces :data:`realtime.model.tensorrt_backend.CUDA_API`: PyTorch's current stream has handle
    ``current`` (0 by default, as PyTorch's default stream); new streams get handles 1000, 1001, ..."""

    active: FakeCuda | None = None

    def __init__(self, current: int = 0) -> None:
        self.log: list[tuple] = []
        self.graphs: list[FakeGraph] = []
        self._handles = itertools.count(1000)
        self.current = FakeStream(self, current)
        FakeCuda.active = self

    def new_stream(self, device):
        stream = FakeStream(self, next(self._handles))
        self.log.append(("new_stream", stream.cuda_stream))
        return stream

    def current_stream(self, device):
        return self.current

    @contextlib.contextmanager
    def use_stream(self, stream):
        previous, self.current = self.current, stream
        try:
            yield
        finally:
            self.current = previous

    def new_graph(self):
        return FakeGraph(self)

    @contextlib.contextmanager
    def capture(self, graph, stream):
        self.log.append(("capture_begin", graph.number, stream.cuda_stream))
        yield
        self.log.append(("capture_end", graph.number))
