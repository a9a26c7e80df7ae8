"""The zoo's VGG16 and the seeds' model formats: ``.tflite`` (LiteRT) and Keras ``.keras`` /
``.h5`` (Keras 3 on PyTorch), each built tiny in the test with its labels and sidecar."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from image_classification.model import load_classifier
from image_classification.model.preprocess import decode_image
from image_classification.model.registry import get_spec

LABELS = ["red", "green", "blue"]


def _write_labels_and_sidecar(model: Path, **sidecar: object) -> None:
    model.with_suffix(".txt").write_text("\n".join(LABELS) + "\n")
    model.with_suffix(".json").write_text(json.dumps(sidecar))


def _expected(
    photos: dict[str, bytes], size: int, weights: np.ndarray, bias: np.ndarray
) -> np.ndarray:
    """What the tiny models compute: mean colour of the preprocessed image -> dense -> softmax."""
    from image_classification.model.sidecar import Sidecar

    spec = Sidecar(input_size=size, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)).preprocess(None)
    pixels = decode_image(photos["espresso"], spec).pixels  # 3 x H x W, 0..1
    logits = pixels.mean(axis=(1, 2)) @ weights + bias
    e = np.exp(logits - logits.max())
    return e / e.sum()


WEIGHTS = np.array([[4.0, -2.0, -2.0], [-2.0, 4.0, -2.0], [-2.0, -2.0, 4.0]], dtype=np.float32)
BIAS = np.array([0.1, 0.0, -0.1], dtype=np.float32)
SIDECAR = {"input_size": 32, "mean": [0, 0, 0], "std": [1, 1, 1], "activation": "none"}


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_keras_model_runs_on_keras3_torch_backend(
    tmp_path: Path, photos: dict[str, bytes], suffix: str
) -> None:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.layers[-1].set_weights([WEIGHTS, BIAS])
    path = tmp_path / f"colours{suffix}"
    model.save(path)
    _write_labels_and_sidecar(path, **SIDECAR)
    classifier = load_classifier(path)
    assert classifier.model_id.startswith("colours@") and "/keras/" in classifier.model_id
    result = classifier.classify(photos["espresso"], top_k=3)
    got = {c.label: c.confidence for c in result}
    want = _expected(photos, 32, WEIGHTS, BIAS)
    assert np.allclose([got[label] for label in LABELS], want, atol=1e-4)


def _tiny_tflite(path: Path, size: int) -> None:
    """input 1 x size x size x 3 -> MEAN over H, W -> FULLY_CONNECTED -> SOFTMAX, written
    with LiteRT's own flatbuffer schema (no TensorFlow needed)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    def buffer(data: np.ndarray | None) -> s.BufferT:
        b = s.BufferT()
        b.data = None if data is None else np.frombuffer(data.tobytes(), dtype=np.uint8)
        return b

    def tensor(name: str, shape: list[int], buffer_index: int, kind: int) -> s.TensorT:
        t = s.TensorT()
        t.name, t.shape, t.buffer, t.type = name, shape, buffer_index, kind
        return t

    def code(op: int) -> s.OperatorCodeT:
        c = s.OperatorCodeT()
        c.builtinCode = op
        c.deprecatedBuiltinCode = op
        c.version = 1
        return c

    def operator(
        index: int, inputs: list[int], outputs: list[int], kind: int, options: object
    ) -> s.OperatorT:
        o = s.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = index, inputs, outputs
        o.builtinOptionsType, o.builtinOptions = kind, options
        return o

    f32, i32 = s.TensorType.FLOAT32, s.TensorType.INT32
    graph = s.SubGraphT()
    graph.tensors = [
        tensor("pixels", [1, size, size, 3], 0, f32),
        tensor("axes", [2], 1, i32),
        tensor("mean", [1, 3], 0, f32),
        tensor("weights", [3, 3], 2, f32),
        tensor("bias", [3], 3, f32),
        tensor("logits", [1, 3], 0, f32),
        tensor("probabilities", [1, 3], 0, f32),
    ]
    graph.inputs, graph.outputs = [0], [6]
    reducer = s.ReducerOptionsT()
    reducer.keepDims = False
    dense = s.FullyConnectedOptionsT()
    softmax = s.SoftmaxOptionsT()
    softmax.beta = 1.0
    graph.operators = [
        operator(0, [0, 1], [2], s.BuiltinOptions.ReducerOptions, reducer),
        operator(1, [2, 3, 4], [5], s.BuiltinOptions.FullyConnectedOptions, dense),
        operator(2, [5], [6], s.BuiltinOptions.SoftmaxOptions, softmax),
    ]
    model = s.ModelT()
    model.version = 3
    model.operatorCodes = [
        code(s.BuiltinOperator.MEAN),
        code(s.BuiltinOperator.FULLY_CONNECTED),
        code(s.BuiltinOperator.SOFTMAX),
    ]
    model.subgraphs = [graph]
    # FULLY_CONNECTED's weights are out x in (the transpose of Keras' Dense kernel).
    model.buffers = [
        buffer(None),
        buffer(np.array([1, 2], dtype=np.int32)),
        buffer(np.ascontiguousarray(WEIGHTS.T)),
        buffer(BIAS),
    ]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))


def test_tflite_model_runs_on_litert(tmp_path: Path, photos: dict[str, bytes]) -> None:
    path = tmp_path / "flowers.tflite"
    _tiny_tflite(path, 32)
    _write_labels_and_sidecar(path, **SIDECAR)
    classifier = load_classifier(path)
    assert "/litert/" in classifier.model_id
    results = classifier.classify_batch([photos["espresso"], photos["espresso"]], top_k=3)
    got = {c.label: c.confidence for c in results[0]}
    want = _expected(photos, 32, WEIGHTS, BIAS)
    assert np.allclose([got[label] for label in LABELS], want, atol=1e-4)
    assert results[0] == results[1]


def test_custom_model_needs_matching_labels(tmp_path: Path) -> None:
    from image_classification.model import ConfigurationError

    path = tmp_path / "m.tflite"
    _tiny_tflite(path, 32)
    path.with_suffix(".txt").write_text("only\ntwo\n")
    with pytest.raises(ConfigurationError, match="outputs 3 classes but the labels file has 2"):
        load_classifier(path)


@pytest.mark.slow
def test_vgg16_random_weights_agree_on_torch_and_onnxruntime(
    tmp_path: Path, photos: dict[str, bytes]
) -> None:
    import torch
    import torchvision

    spec = get_spec("vgg16")
    assert spec.download_url == "https://download.pytorch.org/models/vgg16-397923af.pth"
    torch.manual_seed(0)
    weights = tmp_path / spec.weights_file
    torch.save(torchvision.models.vgg16(weights=None).state_dict(), weights)
    onnx = load_classifier(
        "vgg16", "onnxruntime", weights_path=weights, cache_dir=tmp_path, threads=2
    )
    eager = load_classifier("vgg16", "torch", weights_path=weights, threads=2)
    pixels = decode_image(photos["cat"], spec.preprocess).pixels[None]
    assert np.allclose(onnx.probabilities(pixels), eager.probabilities(pixels), atol=1e-4)
    assert onnx.model_id.startswith("vgg16@")
