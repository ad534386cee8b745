"""The `compress` challenge's compact format: what it accepts, what it refuses, and that it runs what it says.

``challenges/compress/assets/compact.py`` is the trusted loader of the challenge: the grader
measures a candidate's model size on ``pack``'s bytes and its accuracy and latency on what
``build`` makes of them, so a model that decodes to something else than it claims, or bytes
that make the loader work without bound, would break the verdict.
"""

from __future__ import annotations

import json
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.challenges.files import load_file

CHALLENGE = Path(__file__).resolve().parents[2] / "challenges" / "compress"


compact = load_file("compress_compact_under_test", CHALLENGE / "assets" / "compact.py")
model_code = load_file("compress_model_under_test", CHALLENGE / "assets" / "model.py")
synthetic = load_file("compress_synthetic_under_test", CHALLENGE / "assets" / "synthetic.py")


@pytest.fixture(scope="module")
def original() -> torch.nn.Module:
    torch.manual_seed(0)
    return model_code.load_model(str(CHALLENGE / "assets" / "shapecnn.pt"))


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return synthetic.make_images(32, 11)[0]


def _tiny(**fields: Any) -> dict[str, Any]:
    """A valid artifact: pool the image, flatten, one linear layer (weight given by ``fields``)."""
    tensors = {"w": torch.randn(10, 3), "b": torch.zeros(10)}
    tensors.update(fields.pop("tensors", {}))
    linear = {"op": "linear", "inputs": ["features"], "output": "logits", "weight": "w", "bias": "b", **fields}
    return {
        "format": "compact/1", "engine": "x86", "output": "logits", "tensors": tensors,
        "nodes": [
            {"op": "adaptive_avg_pool2d", "inputs": ["image"], "output": "pooled"},
            {"op": "flatten", "inputs": ["pooled"], "output": "features"},
            linear,
        ],
    }


# ---------------------------------------------------------------------------- it runs what it says


def test_the_original_exported_packed_and_rebuilt_computes_the_same_logits(original, images) -> None:
    blob = compact.pack(compact.export_float(original))
    rebuilt = compact.build(compact.unpack(blob))
    with torch.inference_mode():
        assert torch.equal(rebuilt(images), original(images))


def test_the_original_is_the_size_the_statement_gives(original) -> None:
    assert compact.size_bytes(compact.export_float(original)) == 1_904_318
    assert "1,904,318 bytes" in (CHALLENGE / "README.md").read_text()


def test_size_is_the_length_of_the_packed_bytes_tensors_and_json_included(original) -> None:
    artifact = compact.export_float(original)
    tensor_bytes = sum(t.numel() * t.element_size() for t in artifact["tensors"].values())
    header = len(compact.pack(artifact)) - tensor_bytes - len(compact.MAGIC) - 4
    assert 0 < header < 20_000  # the architecture as JSON: small, and counted
    halved = {**artifact, "tensors": {k: v.half() for k, v in artifact["tensors"].items()}}
    assert compact.size_bytes(halved) == compact.size_bytes(artifact) - tensor_bytes // 2


def test_a_quantized_artifact_runs_the_int8_kernels_it_names(original, images) -> None:
    reference = load_file("compress_reference_under_test", CHALLENGE / "reference" / "solution.py")
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.backends.quantized.engine = "x86"
        mapping = get_default_qconfig_mapping("x86").set_module_name("normalise", None)
        prepared = prepare_fx(model_code.load_model(str(CHALLENGE / "assets" / "shapecnn.pt")), mapping, (images[:1],))
        prepared(images)
        quantized = convert_fx(prepared)
        rebuilt = compact.build(compact.unpack(compact.pack(reference.export(quantized))))
        with torch.inference_mode():
            assert torch.equal(rebuilt(images), quantized(images))
    ops = {node["op"] for node in reference.export(quantized)["nodes"]}
    assert {"quantize", "quantized_conv2d", "quantized_add", "quantized_linear", "dequantize"} <= ops


ENCODINGS = ["per_channel", "per_tensor", "uint8", "codebook", "sparse_affine", "sparse_plain"]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_encoding_decodes_to_the_weights_it_stands_for(encoding: str) -> None:
    generator = torch.Generator().manual_seed(3)
    values = torch.randint(-127, 128, (10, 3), generator=generator, dtype=torch.int8)
    scale = torch.rand(10, generator=generator) + 0.01
    tensors: dict[str, torch.Tensor]
    if encoding == "per_channel":
        zero = torch.randint(-3, 4, (10,), generator=generator, dtype=torch.int32)
        ref = {"encoding": "affine", "values": "v", "scale": "s", "zero_point": "z", "axis": 0}
        tensors = {"v": values, "s": scale, "z": zero}
        expected = (values.float() - zero[:, None].float()) * scale[:, None]
    elif encoding == "per_tensor":
        ref = {"encoding": "affine", "values": "v", "scale": "s", "zero_point": "z", "axis": None}
        tensors = {"v": values, "s": torch.tensor([0.5]), "z": torch.tensor([2], dtype=torch.int8)}
        expected = (values.float() - 2) * 0.5
    elif encoding == "uint8":
        raw = torch.randint(0, 256, (10, 3), generator=generator, dtype=torch.uint8)
        ref = {"encoding": "affine", "values": "v", "scale": "s", "zero_point": "z", "axis": 1}
        tensors = {"v": raw, "s": torch.tensor([0.1, 0.2, 0.3]), "z": torch.tensor([128, 0, 255], dtype=torch.int32)}
        expected = (raw.float() - torch.tensor([128.0, 0.0, 255.0])) * torch.tensor([0.1, 0.2, 0.3])
    elif encoding == "codebook":
        book = torch.linspace(-1, 1, 7)
        index = torch.randint(0, 7, (10, 3), generator=generator, dtype=torch.uint8)
        ref = {"encoding": "codebook", "indices": "i", "codebook": "c"}
        tensors = {"i": index, "c": book.half()}
        expected = book.half().float()[index.long()]
    else:
        dense = torch.randn(10, 3, generator=generator) * (torch.rand(10, 3, generator=generator) > 0.6)
        keep = (dense != 0).reshape(-1).numpy()
        mask = torch.from_numpy(np.packbits(keep, bitorder="little"))
        kept = dense.reshape(-1)[torch.from_numpy(keep)]
        if encoding == "sparse_plain":
            inner: Any = "v"
            tensors = {"m": mask, "v": kept}
            expected = dense
        else:
            inner = {"encoding": "affine", "values": "v", "scale": "s", "zero_point": "z", "axis": None}
            step = float(kept.abs().max()) / 127
            tensors = {"m": mask, "v": torch.round(kept / step).to(torch.int8), "s": torch.tensor([step]),
                       "z": torch.tensor([0], dtype=torch.int32)}
            expected = torch.zeros(30).index_put_((torch.from_numpy(keep.nonzero()[0]),),
                                                  torch.round(kept / step) * step).reshape(10, 3)
        ref = {"encoding": "sparse", "mask": "m", "values": inner, "shape": [10, 3]}
    artifact = _tiny(weight=ref, tensors=tensors)
    del artifact["tensors"]["w"]
    unpacked = compact.unpack(compact.pack(artifact))
    assert torch.allclose(compact.decode(ref, unpacked["tensors"]), expected, atol=1e-6)
    features = torch.rand(4, 3)
    rebuilt = compact.build(unpacked)
    images = features[:, :, None, None].expand(4, 3, 64, 64).contiguous()
    assert torch.allclose(rebuilt(images), features @ expected.T, atol=1e-5)


def test_a_bfloat16_tensor_survives_the_bytes() -> None:
    artifact = _tiny(tensors={"w": torch.randn(10, 3).bfloat16()})
    assert torch.equal(compact.unpack(compact.pack(artifact))["tensors"]["w"], artifact["tensors"]["w"])


# ---------------------------------------------------------------------------- what it refuses, and how it says so


def _without(artifact: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in artifact.items() if k != key}


def _node(index: int, **change: Any) -> Any:
    def edit(artifact: dict[str, Any]) -> dict[str, Any]:
        artifact["nodes"][index].update(change)
        return artifact
    return edit


BAD_ARTIFACTS = [
    ("not a dict", lambda a: [a], "is a dict"),
    ("a field missing", lambda a: _without(a, "engine"), "exactly the fields"),
    ("an unknown format", lambda a: {**a, "format": "onnx"}, "\"format\" must be"),
    ("an unknown engine", lambda a: {**a, "engine": "cuda"}, "\"engine\" must be one of"),
    ("an unknown op", _node(2, op="gelu"), "unknown op 'gelu'"),
    ("an unknown field", _node(2, activation="relu"), "unknown field(s) ['activation']"),
    ("a missing weight", lambda a: {**a, "nodes": [*a["nodes"][:2], {"op": "linear", "inputs": ["features"],
                                                                      "output": "logits"}]},
     "missing field(s) ['weight']"),
    ("an input defined later", _node(0, inputs=["features"]), "is not the image nor the output of an earlier node"),
    ("a value written twice", _node(1, output="pooled"), "already a value"),
    ("a tensor no node uses", lambda a: {**a, "tensors": {**a["tensors"], "spare": torch.zeros(3)}},
     "no node uses: spare"),
    ("a weight naming no tensor", _node(2, weight="missing"), "names no tensor"),
    ("an integer tensor as a plain weight", lambda a: {**a, "tensors": {**a["tensors"], "w": torch.ones(10, 3,
     dtype=torch.int8)}}, "store integers with an affine encoding"),
    ("a quantized op on float values", _node(2, op="quantized_linear", scale=0.1, zero_point=0),
     "takes quantized values, got float (quantize first)"),
    ("a weight of the wrong shape", lambda a: {**a, "tensors": {**a["tensors"], "w": torch.zeros(10, 4)}},
     "does not take [B, 3] inputs"),
    ("logits of the wrong size", lambda a: {**a, "tensors": {"w": torch.zeros(7, 3), "b": torch.zeros(7)}},
     "output must be float logits of shape [B, 10]"),
    ("a tensor name with a terminal escape", lambda a: {**a, "tensors": {"w\x1b[2J": a["tensors"]["w"],
     "b": a["tensors"]["b"]}}, "tensor names are"),
    ("a tensor subclass", lambda a: {**a, "tensors": {**a["tensors"], "w": torch.nn.Parameter(a["tensors"]["w"])}},
     "plain dense tensor"),
]


@pytest.mark.parametrize(("what", "edit", "message"), BAD_ARTIFACTS, ids=[case[0] for case in BAD_ARTIFACTS])
def test_a_malformed_artifact_is_refused_with_a_message_that_says_what(what: str, edit: Any, message: str) -> None:
    with pytest.raises(compact.CompactError) as refused:
        compact.pack(edit(_tiny()))
    assert message in str(refused.value)


BAD_ENCODINGS = [
    ("a scale per element", {"encoding": "affine", "values": "v", "scale": "s", "zero_point": "z", "axis": 0},
     {"v": torch.zeros(10, 3, dtype=torch.int8), "s": torch.ones(10, 3), "z": torch.zeros(10, dtype=torch.int32)},
     "must have shape [10]"),
    ("a non-finite scale", {"encoding": "affine", "values": "v", "scale": "s", "zero_point": "z", "axis": None},
     {"v": torch.zeros(10, 3, dtype=torch.int8), "s": torch.tensor([float("nan")]),
      "z": torch.zeros(1, dtype=torch.int32)}, "must be finite"),
    ("a codebook index past its end", {"encoding": "codebook", "indices": "i", "codebook": "c"},
     {"i": torch.full((10, 3), 4, dtype=torch.uint8), "c": torch.zeros(4)}, "every index is below its length"),
    ("a codebook of 300 entries", {"encoding": "codebook", "indices": "i", "codebook": "c"},
     {"i": torch.zeros(10, 3, dtype=torch.uint8), "c": torch.zeros(300)}, "1 to 256 entries"),
    ("a sparse mask of the wrong length", {"encoding": "sparse", "mask": "m", "values": "v", "shape": [10, 3]},
     {"m": torch.zeros(3, dtype=torch.uint8), "v": torch.zeros(0)}, "must be uint8 of shape [4]"),
    ("sparse values that are sparse", {"encoding": "sparse", "mask": "m", "shape": [10, 3], "values": {
        "encoding": "sparse", "mask": "m", "values": "v", "shape": [30]}},
     {"m": torch.zeros(4, dtype=torch.uint8), "v": torch.zeros(0)}, "cannot be sparse themselves"),
    ("an unknown encoding", {"encoding": "pickle", "data": "v"}, {"v": torch.zeros(1)}, "unknown encoding 'pickle'"),
]


@pytest.mark.parametrize(("what", "ref", "tensors", "message"), BAD_ENCODINGS, ids=[c[0] for c in BAD_ENCODINGS])
def test_a_malformed_encoding_is_refused(what: str, ref: Any, tensors: dict[str, torch.Tensor], message: str) -> None:
    artifact = _tiny(weight=ref, tensors=tensors)
    del artifact["tensors"]["w"]
    with pytest.raises(compact.CompactError) as refused:
        compact.pack(artifact)
    assert message in str(refused.value)


def test_a_sparse_mask_must_match_its_values_and_set_no_bits_past_the_end() -> None:
    ref = {"encoding": "sparse", "mask": "m", "values": "v", "shape": [10, 3]}
    two_bits = torch.tensor([3, 0, 0, 0], dtype=torch.uint8)
    with pytest.raises(compact.CompactError, match="3 values for 2 set mask bits"):
        compact.decode(ref, {"m": two_bits, "v": torch.zeros(3)})
    past_the_end = torch.tensor([0, 0, 0, 0b01000000], dtype=torch.uint8)  # bit 30 of a 30-element tensor
    with pytest.raises(compact.CompactError, match="past the end"):
        compact.decode(ref, {"m": past_the_end, "v": torch.zeros(1)})


def test_a_model_too_heavy_to_evaluate_is_refused_before_it_runs() -> None:
    wide = {"op": "conv2d", "inputs": ["image"], "output": "wide", "weight": "big", "padding": 1}
    artifact = _tiny()
    artifact["nodes"] = [wide, *artifact["nodes"]]
    artifact["nodes"][1]["inputs"] = ["wide"]
    artifact["tensors"]["big"] = torch.zeros(512, 3, 3, 3)  # 512 x 64 x 64 values: 2 million per image
    artifact["tensors"]["w"] = torch.zeros(10, 512)
    with pytest.raises(compact.CompactError, match="grows beyond what this format runs"):
        compact.pack(artifact)


def _head(artifact: dict[str, Any], source: str, channels: int) -> None:
    """Pool ``source``, flatten, and a linear layer to 10 logits."""
    artifact["nodes"] += [
        {"op": "adaptive_avg_pool2d", "inputs": [source], "output": "pooled"},
        {"op": "flatten", "inputs": ["pooled"], "output": "features"},
        {"op": "linear", "inputs": ["features"], "output": "logits", "weight": "w"},
    ]
    artifact["tensors"]["w"] = torch.zeros(10, channels)


def test_a_model_with_too_many_multiply_adds_is_refused() -> None:
    """Three 3x3 convolutions of 128 channels at 32 x 32: about 305 million multiply-adds per image."""
    artifact = {"format": "compact/1", "engine": "x86", "output": "logits", "nodes": [], "tensors": {}}
    source, channels = "image", 3
    for index in range(3):
        artifact["nodes"].append({"op": "conv2d", "inputs": [source], "output": f"c{index}", "weight": f"k{index}",
                                  "padding": 1, "stride": 2 if index == 0 else 1})
        artifact["tensors"][f"k{index}"] = torch.zeros(128, channels, 3, 3)
        source, channels = f"c{index}", 128
    _head(artifact, source, channels)
    with pytest.raises(compact.CompactError, match="grows beyond what this format runs"):
        compact.pack(artifact)
    artifact["nodes"] = artifact["nodes"][:2] + artifact["nodes"][3:]  # two convolutions: 155 million, accepted
    artifact["nodes"][2]["inputs"] = ["c1"]
    del artifact["tensors"]["k2"]
    compact.pack(artifact)


def test_a_model_that_keeps_too_many_values_is_refused() -> None:
    """170 ReLUs of the image, each small, together over 2 million elements per image."""
    artifact = {"format": "compact/1", "engine": "x86", "output": "logits", "tensors": {},
                "nodes": [{"op": "relu", "inputs": ["image"], "output": f"r{index}"} for index in range(170)]}
    _head(artifact, "r169", 3)
    with pytest.raises(compact.CompactError, match="grows beyond what this format runs"):
        compact.pack(artifact)


# ---------------------------------------------------------------------------- hostile bytes


def _packed_with_header(header: Any, payload: bytes = b"") -> bytes:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return compact.MAGIC + struct.pack("<I", len(text)) + text + payload


HOSTILE_BYTES = [
    ("no magic", b"PK\x03\x04" + bytes(100), "wrong magic"),
    ("a pickle", b"\x80\x04\x95" + bytes(100), "wrong magic"),
    ("a header longer than the bytes", compact.MAGIC + struct.pack("<I", 10_000) + b"{}", "truncated or too long"),
    ("a header over the limit", compact.MAGIC + struct.pack("<I", 2**31) + b"{}", "truncated or too long"),
    ("deeply nested JSON", _packed_with_header(b"[" * 100_000 + b"]" * 100_000), "not valid JSON"),
    ("a tensor larger than the bytes", _packed_with_header({"tensors": [["w", "float32", [1000, 1000]]]}),
     "shorter than its tensor list says"),
    ("a huge declared shape", _packed_with_header({"tensors": [["w", "float32", [2**40, 2**40]]]}),
     "shorter than its tensor list says"),
    ("an unknown dtype", _packed_with_header({"tensors": [["w", "object", [1]]]}), "tensor list is malformed"),
    ("a name twice", _packed_with_header({"tensors": [["w", "uint8", [1]], ["w", "uint8", [1]]]}, b"ab"),
     "appears twice"),
    ("bytes after the last tensor", _packed_with_header({"tensors": [["w", "uint8", [1]]]}, b"ab"),
     "bytes after its last tensor"),
]


@pytest.mark.parametrize(("what", "blob", "message"), HOSTILE_BYTES, ids=[case[0] for case in HOSTILE_BYTES])
def test_hostile_bytes_are_refused_without_decoding_more_than_they_hold(what: str, blob: bytes, message: str) -> None:
    with pytest.raises(compact.CompactError) as refused:
        compact.unpack(blob)
    assert message in str(refused.value)


def test_bytes_that_pack_a_valid_header_but_a_bad_model_are_refused_by_the_schema() -> None:
    blob = bytearray(compact.pack(_tiny()))
    text = bytes(blob).replace(b'"op":"linear"', b'"op":"eval!!"')
    with pytest.raises(compact.CompactError, match="unknown op"):
        compact.unpack(text)
