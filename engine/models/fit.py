"""What data fits a model, and what model settings fit some data: the other half of a pair.

When a user opens a model that does not take the open data (or data the open model cannot take),
PruneLab keeps the new choice and asks for the other half, preset to what fits. The answer is read
from the model itself and from the files beside it, most specific first:

- a channel-pruned export's ``.shapes.json`` records its input shape and class count;
- a Hugging Face folder carries its tokenizer (the model folder itself) and often ``data/`` TSVs;
- a text model (embedding first) takes tokens; a BiLSTM has its vocabulary;
- otherwise the first layer gives the channels (a convolution's ``in_channels``) or features (a
  linear layer's ``in_features``), a usual image size is tried in a forward pass (the size that
  fits the first layer's style first: 224 for a strided stem, 28 for one channel, 32 otherwise),
  and the class count is the width of the output of that pass (else of the last linear layer).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from engine.config import TEXT_DATA_SOURCES, DataSpec, ModelSpec
from engine.metrics import forward_batch, model_device

# Image sides people train at, in the order tried when the first layer does not say which.
USUAL_IMAGE_SIZES = (224, 32, 28, 64, 96, 128, 256, 299)
# A stem that downsamples at once (ResNet's 7x7 stride-2 conv) is an ImageNet-style network.
IMAGENET_STEM_KERNEL = 7
# Tokens a synthetic text input has when nothing else says (BERT-style models are often run at 64-128).
DEFAULT_TOKENS = 64
# A flat input of this many features is most likely a flattened image of this shape.
FLAT_IMAGE_SHAPES = {784: (1, 28, 28), 3072: (3, 32, 32), 1024: (1, 32, 32)}


@dataclass
class DataFit:
    """What one example input of the model looks like and how many classes it scores.

    ``kind``: ``image`` (C, H, W floats), ``features`` (a flat float vector), ``tokens`` (token ids,
    with an attention mask for Hugging Face models or lengths for a BiLSTM). ``data`` is the data
    usually opened with the model when there is a guess (a Hugging Face folder's ``data/`` TSVs);
    ``notes`` say where each figure came from, for the dialog and the log."""
    kind: str
    input_shape: tuple[int, ...]
    num_classes: Optional[int]
    vocab_size: Optional[int] = None
    token_input: str = ""           # "mask" (input_ids, attention_mask) or "lengths" (BiLSTM)
    data: Optional[DataSpec] = None
    notes: list[str] = field(default_factory=list)

    @property
    def channels(self) -> Optional[int]:
        return self.input_shape[0] if self.kind == "image" else None

    @property
    def image_size(self) -> Optional[int]:
        return self.input_shape[-1] if self.kind == "image" else None

    def describe(self) -> str:
        shape = "x".join(str(n) for n in self.input_shape)
        what = {"image": f"{shape} images", "features": f"vectors of {shape} features",
                "tokens": f"texts of {shape} tokens"}[self.kind]
        classes = f", {self.num_classes} classes" if self.num_classes else ""
        return f"{what}{classes}"

    def data_spec(self, current: Optional[DataSpec] = None) -> DataSpec:
        """A data spec preset to this fit: the suggested data when there is one, else the current
        kind of image data with the channels and size set (the user picks the folder), else
        synthetic inputs of this shape (no-data mode)."""
        if self.data is not None:
            return self.data
        if self.kind == "image" and self.channels in (1, 3):
            source = current.source if current is not None and current.source not in (
                "demo", "none", *TEXT_DATA_SOURCES) else "imagefolder"
            root = current.root if current is not None and current.source == source else None
            return DataSpec(source=source, root=root, channels=self.channels,
                            image_size=self.image_size)
        if self.kind == "tokens" and self.token_input == "lengths":
            return DataSpec(source="text_demo")
        return DataSpec(source="none", input_shape=list(self.input_shape))


class FitError(ValueError):
    """Nothing usual fits the model; the message says what was tried."""


class PairMismatch(ValueError):
    """A model and data that do not go together. ``kind``: ``input`` (the model cannot take the
    data's inputs), ``classes`` (it scores another number of classes), ``text`` (text model and
    data of another kind). ``fit`` is the data that would fit the model (None where nothing usual
    does); ``data_classes``/``data_shape`` describe the data, to preset a model that fits it."""

    def __init__(self, message: str, kind: str, fit: Optional[DataFit] = None,
                 data_classes: Optional[int] = None,
                 data_shape: Optional[tuple[int, ...]] = None) -> None:
        super().__init__(message)
        self.kind, self.fit = kind, fit
        self.data_classes, self.data_shape = data_classes, data_shape

    def with_fit(self, loaded, spec: Optional[ModelSpec]) -> "PairMismatch":
        try:
            self.fit = infer_data_fit(loaded.model, spec, loaded.tokenizer, loaded.vocab)
        except FitError:
            self.fit = None
        return self

    @classmethod
    def between(cls, message: str, kind: str, loaded, spec: Optional[ModelSpec]) -> "PairMismatch":
        return cls(message, kind).with_fit(loaded, spec)


def infer_data_fit(model: nn.Module, spec: Optional[ModelSpec] = None,
                   tokenizer: Optional[object] = None, vocab: Optional[object] = None) -> DataFit:
    """The data that fits ``model`` (a loaded model; ``spec`` says where it came from, for the files
    beside it). Raises FitError when no usual input shape runs through it."""
    from_file = _fit_from_shapes_file(spec) if spec is not None else None
    if from_file is not None:
        return from_file
    first = first_layer(model)
    if isinstance(first, nn.Embedding) or tokenizer is not None or vocab is not None:
        return _token_fit(model, first, spec, tokenizer)
    notes: list[str] = []
    for shape in candidate_shapes(first, notes):
        classes = _output_classes(model, torch.zeros(1, *shape, device=model_device(model)))
        if classes is not None:
            kind = "image" if len(shape) == 3 else "features"
            notes.append(f"a {'x'.join(map(str, shape))} input runs through the model; its output "
                         f"has {classes} scores")
            return DataFit(kind, tuple(shape), classes, notes=notes)
    raise FitError("no usual input shape runs through this model (tried "
                   + ", ".join("x".join(map(str, s)) for s in candidate_shapes(first, [])) + ")")


def first_layer(model: nn.Module) -> Optional[nn.Module]:
    """The first module, in registration order, that reads the input."""
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.Embedding)):
            return module
    return None


def last_linear_width(model: nn.Module) -> Optional[int]:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1].out_features if linears else None


def candidate_shapes(first: Optional[nn.Module], notes: list[str]) -> list[tuple[int, ...]]:
    """Input shapes (without the batch) worth trying, most likely first."""
    if isinstance(first, nn.Conv2d):
        channels = first.in_channels
        kernel, stride = first.kernel_size[0], first.stride[0]
        notes.append(f"the first layer is a {kernel}x{kernel} convolution on {channels} channel(s)")
        if kernel >= IMAGENET_STEM_KERNEL or stride >= 2:
            order = USUAL_IMAGE_SIZES
        elif channels == 1:
            order = (28, 32, 64, 224)
        else:
            order = (32, 224, 28, 64, 96, 128, 256, 299)
        return [(channels, s, s) for s in order]
    if isinstance(first, nn.Linear):
        notes.append(f"the first layer is a linear layer of {first.in_features} features")
        flat = FLAT_IMAGE_SHAPES.get(first.in_features)
        return [(first.in_features,)] + ([flat] if flat else [])
    return [(3, s, s) for s in USUAL_IMAGE_SIZES] + [(1, 28, 28)]


@torch.no_grad()
def _output_classes(model: nn.Module, example) -> Optional[int]:
    was_training = model.training
    model.eval()
    try:
        out = forward_batch(model, example)
    except Exception:   # a shape that does not fit: any error from the user's forward means "no"
        return None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        return None
    return int(out.shape[1])


def _token_fit(model: nn.Module, first: Optional[nn.Module], spec: Optional[ModelSpec],
               tokenizer: Optional[object]) -> DataFit:
    from engine.text.bilstm import BiLSTMClassifier
    notes = []
    vocab_size = first.num_embeddings if isinstance(first, nn.Embedding) else None
    token_input = "lengths" if isinstance(model, BiLSTMClassifier) else "mask"
    classes = getattr(model, "num_labels", None) or last_linear_width(model)
    data = None
    if spec is not None and spec.source in ("hf", "text_demo"):
        from engine.text.sources import suggested_data
        data = suggested_data(spec.source, spec.path)
    if spec is not None and spec.source == "hf" and spec.path:
        notes.append(f"a Hugging Face model: its tokenizer is in {Path(spec.path).name}")
        if data is None:
            notes.append("no data/ folder of TSVs beside it: choose text<TAB>label files")
            data = DataSpec(source="hf_tsv", tokenizer_path=spec.path)
        else:
            notes.append(f"TSVs found in {data.root}")
    elif token_input == "lengths":
        notes.append("a BiLSTM: it reads texts through its own vocabulary")
    tokens = DEFAULT_TOKENS
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if limit:
        tokens = min(tokens, int(limit))
    return DataFit("tokens", (tokens,), classes, vocab_size=vocab_size, token_input=token_input,
                   data=data, notes=notes)


def _fit_from_shapes_file(spec: ModelSpec) -> Optional[DataFit]:
    """A channel-pruned export's ``.shapes.json`` (named by the spec, or beside the checkpoint)."""
    shapes = shapes_beside(spec)
    if shapes is None:
        return None
    from engine.structured.rebuild import read_shapes
    doc = read_shapes(shapes)
    shape = doc.get("input_shape")
    if not shape:
        return None
    shape = tuple(int(n) for n in shape)
    kind = "image" if len(shape) == 3 else "features" if len(shape) == 1 else "image"
    return DataFit(kind, shape, int(doc["num_classes"]),
                   notes=[f"input shape and class count from {shapes.name}"])


def shapes_beside(spec: ModelSpec) -> Optional[Path]:
    if spec.shapes:
        return Path(spec.shapes).expanduser()
    if spec.source == "state_dict" and spec.path:
        path = Path(spec.path).expanduser()
        candidate = path.with_name(f"{path.stem}.shapes.json")
        if candidate.is_file():
            return candidate
    return None


# ---------------------------------------------------------------- the other direction

@dataclass
class ModelFit:
    """Model settings preset to some data: the class count, and an architecture when the current
    one cannot take the data (the demo LeNet reads 1x28x28 digits only)."""
    spec: ModelSpec
    notes: list[str] = field(default_factory=list)


# What to offer for data a built-in small model cannot read: a usual classifier per input channels.
IMAGE_ARCH_FOR_CHANNELS = {3: "resnet18", 1: "lenet"}


def model_fit_for_data(num_classes: int, input_shape: tuple[int, ...],
                       current: Optional[ModelSpec] = None) -> ModelFit:
    """A model spec for data with ``num_classes`` classes and inputs of ``input_shape``: the
    current source and architecture where they can be rebuilt with another class count, else a
    usual torchvision classifier (random init; the user points it at weights)."""
    notes = [f"the data has {num_classes} classes"]
    current = current or ModelSpec()
    rebuildable = current.source in ("torchvision", "state_dict", "python") and not current.shapes
    if rebuildable and not (current.source == "state_dict" and current.arch in ("lenet", "bilstm")
                            and len(input_shape) == 3 and input_shape[0] != 1):
        spec = ModelSpec(source=current.source, arch=current.arch, path=current.path,
                         factory=current.factory, num_classes=num_classes)
        return ModelFit(spec, notes)
    channels = input_shape[0] if len(input_shape) == 3 else 3
    arch = IMAGE_ARCH_FOR_CHANNELS.get(channels, "resnet18")
    if arch == "lenet" and tuple(input_shape) != (1, 28, 28):
        arch = "resnet18"
    notes.append(f"{'x'.join(map(str, input_shape))} inputs: {arch} takes them")
    return ModelFit(ModelSpec(source="torchvision", arch=arch, num_classes=num_classes), notes)


# ---------------------------------------------------------------- what a dropped folder holds

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")


def is_model_folder(path: Path) -> bool:
    """A Hugging Face folder (``save_pretrained``): a config.json beside the weights."""
    return (path / "config.json").is_file()


def data_spec_for_folder(path: str | Path) -> Optional[DataSpec]:
    """The data a folder holds: images in one sub-folder per class (or ``train/`` and ``val/``
    inside) as ``imagefolder``; ``.tsv`` or ``.csv`` files as text data. None when it is neither.
    Only the folder's listing is read (one image per class folder at most)."""
    path = Path(path).expanduser()
    if not path.is_dir() or is_model_folder(path):
        return None
    files = [p for p in path.iterdir() if p.is_file()]
    if any(p.suffix.lower() == ".tsv" for p in files):
        return DataSpec(source="text_tsv", root=str(path))
    if any(p.suffix.lower() == ".csv" for p in files):
        return DataSpec(source="text_csv", root=str(path))
    top = path / "train" if (path / "train").is_dir() else path
    for class_dir in (d for d in top.iterdir() if d.is_dir()):
        image = next((f for f in class_dir.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES), None)
        if image is not None:
            channels, size = _image_kind(image)
            return DataSpec(source="imagefolder", root=str(path), channels=channels,
                            image_size=size)
    return None


# Images up to this side are used at their own size (digits, CIFAR); larger ones at 224.
SMALL_IMAGE_SIDE = 64


def _image_kind(path: Path) -> tuple[int, int]:
    """(channels, side) to read a folder of images like ``path`` with: greyscale or colour, at
    the image's own size when small, else the usual 224."""
    try:
        from PIL import Image
        with Image.open(path) as img:
            channels = 1 if img.mode in ("1", "L", "I", "I;16", "F") else 3
            side = min(img.size)
    except Exception:   # unreadable: the loader says so when the data opens
        return 3, 224
    return channels, side if side <= SMALL_IMAGE_SIDE else 224


def checkpoint_classes(path: str | Path) -> Optional[int]:
    """The class count a classifier checkpoint was saved with: the rows of its last 2-D weight
    (the classifier head). Read without loading the tensors (memory-mapped, or safetensors'
    header), so asking is cheap even for a big model; None when the file does not say."""
    path = Path(path).expanduser()
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors import safe_open
            with safe_open(str(path), framework="pt") as f:
                shapes = {k: f.get_slice(k).get_shape() for k in f.keys()}
        else:
            from engine.models.checkpoints import unwrap_state_dict
            state = unwrap_state_dict(torch.load(path, map_location="cpu", weights_only=True,
                                                 mmap=True), path.name)
            shapes = {k: list(v.shape) for k, v in state.items()}
    except Exception:   # unreadable here: the loader reports it properly when the model opens
        return None
    heads = [shape for key, shape in shapes.items() if key.endswith("weight") and len(shape) == 2]
    return int(heads[-1][0]) if heads else None
