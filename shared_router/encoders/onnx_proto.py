"""ONNX model files written without the onnx package: protobuf's wire format for a few messages.

The ONNX backend builds its graphs from the weights (:mod:`~shared_router.encoders.bert_onnx`)
and hands ONNX Runtime the serialised bytes. Those graphs use only a handful of the messages of
``onnx.proto`` (proto2), and only some of their fields; this module writes exactly those, in
the bytes protobuf itself writes for the messages ``onnx.helper`` builds (fields in field-number
order, repeated scalars unpacked, each field the helper sets written even when it holds its
default), so the onnx package (and ml_dtypes, which it pulls in) is not a dependency:

* ``ModelProto``: ``ir_version`` (1), ``producer_name`` (2), ``graph`` (7), ``opset_import`` (8);
* ``OperatorSetIdProto``: ``domain`` (1), ``version`` (2);
* ``GraphProto``: ``node`` (1), ``name`` (2), ``initializer`` (5), ``input`` (11), ``output`` (12);
* ``NodeProto``: ``input`` (1), ``output`` (2), ``name`` (3), ``op_type`` (4), ``attribute`` (5),
  attributes in name order;
* ``AttributeProto``: ``name`` (1), ``f`` (2), ``i`` (3), ``ints`` (8), ``type`` (20);
* ``TensorProto``: ``dims`` (1), ``data_type`` (2), ``name`` (8), ``raw_data`` (9, little-endian);
* ``ValueInfoProto``: ``name`` (1), ``type`` (2), a ``TypeProto`` whose ``tensor_type`` (1) has
  ``elem_type`` (1) and ``shape`` (2): ``TensorShapeProto.dim`` (1), each a ``dim_value`` (1)
  or ``dim_param`` (2).

Each function returns one serialised message; a message nests another as its bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from shared_router.errors import EncoderError

__all__ = [
    "FLOAT",
    "INT64",
    "AttributeValue",
    "graph",
    "model",
    "node",
    "tensor",
    "value_info",
]

FLOAT = 1
"""``TensorProto.FLOAT``: the element type of float32 tensors."""

INT64 = 7
"""``TensorProto.INT64``: the element type of int64 tensors."""

_TENSOR_TYPES = {
    np.dtype(np.float32): FLOAT,
    np.dtype(np.uint8): 2,
    np.dtype(np.int8): 3,
    np.dtype(np.int32): 6,
    np.dtype(np.int64): INT64,
}
"""``TensorProto.DataType`` of each numpy dtype a graph's constants may have."""

_ATTRIBUTE_FLOAT, _ATTRIBUTE_INT, _ATTRIBUTE_INTS = 1, 2, 7  # AttributeProto.AttributeType
_VARINT, _FIXED32, _BYTES = 0, 5, 2  # wire types
_UINT64 = (1 << 64) - 1

AttributeValue = int | float | Sequence[int]
"""A node attribute: an int (``INT``), a float (``FLOAT``) or a sequence of ints (``INTS``)."""


def _varint(value: int) -> bytes:
    """A base-128 varint; a negative value as its 64-bit two's complement (10 bytes)."""
    value &= _UINT64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _integer(number: int, value: int) -> bytes:
    return _varint(number << 3 | _VARINT) + _varint(value)


def _delimited_parts(
    number: int, payload: bytes | memoryview
) -> tuple[bytes, bytes, bytes | memoryview]:
    """A length-delimited field as its key, length and payload, to join with others once."""
    return _varint(number << 3 | _BYTES), _varint(len(payload)), payload


def _delimited(number: int, payload: bytes) -> bytes:
    return b"".join(_delimited_parts(number, payload))


def _text(number: int, value: str) -> bytes:
    return _delimited(number, value.encode("utf-8"))


def tensor(name: str, value: np.ndarray) -> bytes:
    """A ``TensorProto`` holding an array as ``raw_data``, as ``onnx.numpy_helper`` writes it.

    Args:
        name: The tensor's name in the graph.
        value: The array: float32, uint8, int8, int32 or int64, of any shape (a scalar too).

    Raises:
        EncoderError: When the array has another dtype.
    """
    data_type = _TENSOR_TYPES.get(value.dtype.newbyteorder("="))
    if data_type is None:
        supported = ", ".join(str(dtype) for dtype in _TENSOR_TYPES)
        raise EncoderError(
            f"an ONNX constant of dtype {value.dtype} cannot be written (tensor {name!r}); "
            f"convert it to one of: {supported}"
        )
    # The array's own little-endian bytes, read in place by the join (no intermediate copy).
    raw = np.ascontiguousarray(value, value.dtype.newbyteorder("<")).reshape(-1).view(np.uint8).data
    dims = b"".join(_integer(1, int(size)) for size in value.shape)
    return b"".join((dims, _integer(2, data_type), _text(8, name), *_delimited_parts(9, raw)))


def _attribute(name: str, value: AttributeValue) -> bytes:
    if isinstance(value, float):
        single = np.array(value, dtype="<f4").tobytes()
        content = _varint(2 << 3 | _FIXED32) + single
        kind = _ATTRIBUTE_FLOAT
    elif isinstance(value, int):
        content, kind = _integer(3, value), _ATTRIBUTE_INT
    else:
        content, kind = b"".join(_integer(8, int(item)) for item in value), _ATTRIBUTE_INTS
    return b"".join((_text(1, name), content, _integer(20, kind)))


def node(
    op_type: str,
    inputs: Sequence[str],
    outputs: Sequence[str],
    *,
    name: str = "",
    attributes: Mapping[str, AttributeValue] | None = None,
) -> bytes:
    """A ``NodeProto`` of the default domain, as ``onnx.helper.make_node`` writes it.

    Args:
        op_type: The operator (``"MatMul"``).
        inputs: Names of the inputs, in order.
        outputs: Names of the outputs, in order.
        name: The node's name; an empty one is not written.
        attributes: The attributes by name; they are written in name order.
    """
    fields = [_text(1, item) for item in inputs]
    fields += [_text(2, item) for item in outputs]
    if name:
        fields.append(_text(3, name))
    fields.append(_text(4, op_type))
    for key, value in sorted((attributes or {}).items()):
        fields.append(_delimited(5, _attribute(key, value)))
    return b"".join(fields)


def value_info(name: str, elem_type: int, shape: Sequence[int | str]) -> bytes:
    """A ``ValueInfoProto`` of a tensor, as ``onnx.helper.make_tensor_value_info`` writes it.

    Args:
        name: The graph input's or output's name.
        elem_type: Its element type (:data:`FLOAT`, :data:`INT64`).
        shape: Each dimension: an int for a fixed size, a str for a named (dynamic) one.
    """
    dims = b"".join(
        _delimited(1, _integer(1, size) if isinstance(size, int) else _text(2, size))
        for size in shape
    )
    tensor_type = _integer(1, elem_type) + _delimited(2, dims)
    return _text(1, name) + _delimited(2, _delimited(1, tensor_type))


def graph(
    name: str,
    nodes: Sequence[bytes],
    inputs: Sequence[bytes],
    outputs: Sequence[bytes],
    initializers: Sequence[bytes] = (),
) -> bytes:
    """A ``GraphProto``, as ``onnx.helper.make_graph`` writes it.

    Args:
        name: The graph's name.
        nodes: Its nodes (:func:`node`), in topological order.
        inputs: Its inputs (:func:`value_info`).
        outputs: Its outputs (:func:`value_info`).
        initializers: Its constants (:func:`tensor`).
    """
    fields = [(1, item) for item in nodes]
    fields.append((2, name.encode("utf-8")))
    fields += [(5, item) for item in initializers]
    fields += [(11, item) for item in inputs]
    fields += [(12, item) for item in outputs]
    # One join: the initializers (the weights) are copied once.
    return b"".join(part for number, item in fields for part in _delimited_parts(number, item))


def model(graph: bytes, *, ir_version: int, opset: int, producer_name: str = "") -> bytes:
    """A ``ModelProto`` importing one opset of the default domain, as ``make_model`` writes it.

    Args:
        graph: The model's graph (:func:`graph`).
        ir_version: The ONNX IR version.
        opset: The version of the default (``""``) operator set.
        producer_name: What wrote the model; an empty one is not written.

    Returns:
        The serialised model, what ONNX Runtime's ``InferenceSession`` reads.
    """
    opset_import = _text(1, "") + _integer(2, opset)
    fields = [_integer(1, ir_version)]
    if producer_name:
        fields.append(_text(2, producer_name))
    fields += [_delimited(7, graph), _delimited(8, opset_import)]
    return b"".join(fields)
