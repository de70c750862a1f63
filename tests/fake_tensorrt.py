"""A stand-in for the ``tensorrt`` module that records the calls made to it, for tests on machines without
TensorRT. Its engines add their inputs (reading and writing the bound memory through the addresses given to
``set_tensor_address``, so a wrong binding shows), with a dynamic batch axis and a profile of batch 1..4."""

from __future__ import annotations

import ctypes
import enum
from types import SimpleNamespace

import numpy as np

MAX_BATCH = 4


class FakeTensorRT(SimpleNamespace):
    """``FakeTensorRT(version, strongly_typed_flag=True)``: ``calls`` lists ``(method, args)`` in order."""

    def __init__(self, version: str = "10.13.0.35", strongly_typed_flag: bool = True, io=None) -> None:
        super().__init__()
        self.__version__ = version
        self.calls: list[tuple[str, tuple]] = []
        self.build_result: bytes | None = b"PLAN"
        self.parse_ok = True
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
        flags = {"STRONGLY_TYPED": 0} if strongly_typed_flag else {}
        flags["PREFER_JIT_PYTHON_PLUGINS"] = 2
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
        self.fake.calls.append(("create_network", (flags,)))
        network = SimpleNamespace(inputs=[])
        network.get_input = lambda i: network.inputs[i]
        return network

    def create_builder_config(self):
        return _Config(self.fake)

    def create_optimization_profile(self):
        fake = self.fake
        return SimpleNamespace(set_shape=lambda *a: fake.calls.append(("set_shape", a)))

    def build_serialized_network(self, network, config):
        self.fake.calls.append(("build_serialized_network", ()))
        return self.fake.build_result


class _Config:
    def __init__(self, fake):
        self.fake, self.cache = fake, None

    def add_optimization_profile(self, profile):
        self.fake.calls.append(("add_optimization_profile", ()))

    def create_timing_cache(self, data):
        self.fake.calls.append(("create_timing_cache", (bytes(data),)))
        self.cache = SimpleNamespace(serialize=lambda: bytes(data) + b"+timings")
        return self.cache

    def set_timing_cache(self, cache, ignore_mismatch):
        self.fake.calls.append(("set_timing_cache", (ignore_mismatch,)))

    def get_timing_cache(self):
        return self.cache


class _Parser:
    def __init__(self, fake, network):
        self.fake, self.network, self.num_errors = fake, network, 0

    def parse_from_file(self, path):
        """Fills the network's inputs with the ONNX graph's."""
        import onnx

        self.fake.calls.append(("parse_from_file", (path,)))
        graph = onnx.load(path, load_external_data=False).graph
        self.network.inputs = [SimpleNamespace(name=value.name) for value in graph.input]
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
        return _Context(self.fake)


class _Context:
    def __init__(self, fake):
        self.fake, self.shapes, self.addresses = fake, {}, {}

    def set_input_shape(self, name, shape):
        self.fake.calls.append(("set_input_shape", (name, tuple(shape))))
        self.shapes[name] = tuple(shape)
        return 1 <= shape[0] <= MAX_BATCH

    def set_tensor_address(self, name, address):
        self.fake.calls.append(("set_tensor_address", (name,)))
        self.addresses[name] = address
        return True

    def execute_async_v3(self, stream_handle):
        self.fake.calls.append(("execute_async_v3", (stream_handle,)))
        inputs = [n for n, (mode, _) in self.fake.io.items() if mode == "in"]
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
