"""Recording checkpoints from torch models: layer resolution, forward-hook capture, heads.

What one capture produces is a :class:`~sentrycam_widget.records.Checkpoint` (the chosen layer's
representations, the model's logits, the labels and a copy of the head); the record types live
in :mod:`sentrycam_widget.records`, the probe set fed through the model in :mod:`sentrycam_widget.probe`.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.utils.data

from .checks import as_labels
from .errors import InputError
from .probe import ProbeLike, ProbeSet
from .records import Checkpoint, Head, LinearHead, TorchHead

_DEVICE_PROBE_BYTES = 256 * 2**20  # probes up to this size stay on the model's GPU between captures


def resolve_layer(
    model: torch.nn.Module, layer: str | torch.nn.Module | None
) -> tuple[torch.nn.Module, str, bool]:
    """Find the layer to record: ``(module, qualified name, use_input)``.

    ``None`` means the input of the last ``nn.Linear`` in ``model.modules()`` order (the
    penultimate features); a name or a module means that module's output.
    """
    named = dict(model.named_modules())
    if layer is None:
        name, module = _last_linear(model)
        return module, name, True
    if isinstance(layer, str):
        if layer not in named:
            raise InputError(_unknown_layer_message(layer, list(named)))
        return named[layer], layer, False
    if isinstance(layer, torch.nn.Module):
        for name, module in named.items():
            if module is layer:
                return module, name, False
        raise InputError(
            f"layer module {type(layer).__name__} is not a submodule of the model; pass one of "
            "model.named_modules() or its name"
        )
    raise InputError(f"layer must be a module name, a module or None, got {type(layer).__name__}")


class Recorder:
    """Captures checkpoints of one model on one probe set at one layer.

    Layer and head are resolved (and checked) once here, so a bad argument fails when the
    recorder is created rather than at the first checkpoint.

    Parameters
    ----------
    model
        The model being trained.
    probe
        A :class:`~sentrycam_widget.probe.ProbeSet`, ``(inputs, labels)`` or a DataLoader of
        ``(inputs, labels)`` batches (read once).
    layer
        The layer to record: a name of ``model.named_modules()``, a module, or None for the
        input of the last ``nn.Linear`` (the penultimate features).
    head
        Maps the recorded layer's output to the logits; needed when ``layer`` is not the input
        of the last Linear layer.
    batch_size
        Probe samples per forward pass.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        probe: ProbeLike,
        *,
        layer: str | torch.nn.Module | None = None,
        head: torch.nn.Module | Head | None = None,
        batch_size: int = 512,
    ) -> None:
        if not isinstance(model, torch.nn.Module):
            raise InputError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if int(batch_size) < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.probe = ProbeSet.from_any(probe)
        self.layer_module, self.layer_name, self.use_input = resolve_layer(model, layer)
        self.batch_size = int(batch_size)
        if head is None and not self.use_input:
            raise InputError(
                f"layer {self.layer_name!r} is not the input of the last Linear layer, so the "
                "default head does not apply; pass head=<module mapping this layer's output "
                "to the logits>"
            )
        self._head_source = head
        self._inputs_cache: tuple[tuple[torch.device, torch.dtype | None], torch.Tensor] | None = (
            None
        )

    def capture(
        self,
        *,
        index: int,
        epoch: int,
        scalars: dict[str, float] | None = None,
        step: int | None = None,
    ) -> Checkpoint:
        """Run the probe set through the model now and return the checkpoint record.

        Parameters
        ----------
        index
            The checkpoint's position in the run.
        epoch
            The user's epoch or step number.
        scalars
            Optional numbers to keep with it (``val_loss``, ...).

        Returns
        -------
        Checkpoint
            Features, logits, labels and a copy of the head.
        """
        features, logits = self.forward()
        head = self.copy_head()
        _check_head_fits(head, features, logits, self.layer_name)
        return Checkpoint(
            index=int(index),
            epoch=int(epoch),
            features=features,
            labels=self.probe.labels,
            logits=logits,
            head=head,
            scalars=dict(scalars or {}),
            step=None if step is None else int(step),
        )

    def forward(self) -> tuple[np.ndarray, np.ndarray]:
        """The probe's features [N, D] and logits [N, C] now, without copying the head.

        Returns
        -------
        tuple[np.ndarray, np.ndarray]
            As :func:`forward_probe` returns them.
        """
        return forward_probe(
            self.model,
            self._probe_inputs(),
            self.layer_module,
            self.use_input,
            self.layer_name,
            self.batch_size,
        )

    def _probe_inputs(self) -> torch.Tensor:
        """The probe in the model's float dtype, kept on its device when small enough (reused)."""
        device, dtype = _model_device_dtype(self.model)
        key = (device, dtype)
        if self._inputs_cache is None or self._inputs_cache[0] != key:
            inputs = self.probe.inputs
            if inputs.is_floating_point() and dtype is not None:
                inputs = inputs.to(dtype)
            nbytes = inputs.numel() * inputs.element_size()
            if device.type != "cpu" and nbytes <= _DEVICE_PROBE_BYTES:
                inputs = inputs.to(device)
            self._inputs_cache = (key, inputs)
        return self._inputs_cache[1]

    def head_module(self) -> torch.nn.Module | None:
        """The module the head is copied from.

        Returns
        -------
        torch.nn.Module or None
            None for a given LinearHead / TorchHead.
        """
        source = self.layer_module if self._head_source is None else self._head_source
        return source if isinstance(source, torch.nn.Module) else None

    def copy_head(self) -> Head:
        """A frozen CPU copy of the head as it is now.

        Returns
        -------
        Head
            A LinearHead for a Linear layer, else a TorchHead.
        """
        source = self._head_source
        if source is None:
            source = self.layer_module
        if isinstance(source, torch.nn.Linear):
            return _linear_head(source)
        if isinstance(source, torch.nn.Module):
            module = copy.deepcopy(source).cpu().eval()
            module.requires_grad_(False)
            return TorchHead(module)
        if isinstance(source, (LinearHead, TorchHead)):
            return copy.deepcopy(source)
        raise InputError(
            f"head must be a torch module, LinearHead or TorchHead, got {type(source).__name__}"
        )


def capture_checkpoint(
    model: torch.nn.Module,
    probe: ProbeLike,
    *,
    index: int,
    epoch: int,
    layer: str | torch.nn.Module | None = None,
    head: torch.nn.Module | Head | None = None,
    scalars: dict[str, float] | None = None,
    batch_size: int = 512,
) -> Checkpoint:
    """One-shot capture (use :class:`Recorder` directly to capture many checkpoints).

    Parameters
    ----------
    model, probe, layer, head, batch_size
        As for :class:`Recorder`.
    index, epoch, scalars
        As for :meth:`Recorder.capture`.

    Returns
    -------
    Checkpoint
        The captured checkpoint.
    """
    recorder = Recorder(model, probe, layer=layer, head=head, batch_size=batch_size)
    return recorder.capture(index=index, epoch=epoch, scalars=scalars)


def checkpoint_from_arrays(
    index: int,
    epoch: int,
    features: Any,
    labels: Any,
    logits: Any = None,
    head_W: Any = None,
    head_b: Any = None,
    scalars: dict[str, float] | None = None,
) -> Checkpoint:
    """Bring-your-own representations: a checkpoint from plain arrays (any framework).

    Parameters
    ----------
    index, epoch
        The checkpoint's position in the run and the user's epoch.
    features
        [N, D] representations (numpy, torch or anything array-like).
    labels
        [N] class indices.
    logits
        [N, C]; computed from the head when left out.
    head_W, head_b
        A linear head [C, D] and its bias [C] (zeros when left out); when ``logits`` are not
        given, ``logits = features @ head_W.T + head_b``.
    scalars
        Optional numbers such as ``val_loss``.

    Returns
    -------
    Checkpoint
        The checked record.
    """
    features = _as_float_array("features", features)
    head = None
    if head_W is not None:
        weight = _as_float_array("head_W", head_W)
        bias = np.zeros(weight.shape[0], np.float32) if head_b is None else head_b
        head = LinearHead(weight, _as_float_array("head_b", bias))
    elif head_b is not None:
        raise InputError("head_b was given without head_W; pass both (or only head_W)")
    return Checkpoint(
        index=int(index),
        epoch=int(epoch),
        features=features,
        labels=as_labels(labels),
        logits=None if logits is None else _as_float_array("logits", logits),
        head=head,
        scalars=dict(scalars or {}),
    )


def forward_probe(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    layer: torch.nn.Module,
    use_input: bool,
    layer_name: str,
    batch_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Eval-mode, no-grad forward of the probe in batches; per-module train flags restored.

    Returns the layer's flattened features [N, D] and the logits [N, C] (float32, CPU): the
    model's output tensor, or the ``logits`` of a Hugging Face style output object or dict.
    """
    captured: list[torch.Tensor] = []

    def hook(_module: torch.nn.Module, args: tuple[Any, ...], output: Any) -> None:
        value = args[0] if use_input else output
        if not isinstance(value, torch.Tensor):
            where = "input" if use_input else "output"
            raise InputError(
                f"the {where} of layer {layer_name!r} is a {type(value).__name__}, not a tensor; "
                "choose a layer whose output is one tensor"
            )
        captured.append(value.detach())

    device, dtype = _model_device_dtype(model)
    flags = [(module, module.training) for module in model.modules()]
    handle = layer.register_forward_hook(hook)
    feats, outs = [], []
    try:
        model.eval()
        with torch.no_grad():
            for start in range(0, inputs.shape[0], batch_size):
                batch = inputs[start : start + batch_size].to(device)
                if batch.is_floating_point() and dtype is not None:
                    batch = batch.to(dtype)
                captured.clear()
                output = model(batch)
                feats.append(_single_capture(captured, layer_name, batch.shape[0]))
                outs.append(_logits_of(output, batch.shape[0]))
    finally:
        handle.remove()
        for module, training in flags:
            module.training = training
    return torch.cat(feats).numpy(), torch.cat(outs).numpy()


def _single_capture(captured: list[torch.Tensor], layer_name: str, batch: int) -> torch.Tensor:
    if len(captured) != 1:
        raise InputError(
            f"layer {layer_name!r} ran {len(captured)} times in one forward pass; choose a layer "
            "that runs exactly once"
        )
    value = captured[0]
    if value.shape[0] != batch:
        raise InputError(
            f"layer {layer_name!r} produced shape {tuple(value.shape)}; its first dimension must "
            f"be the batch ({batch})"
        )
    return value.reshape(batch, -1).float().cpu()


def _logits_of(output: Any, batch: int) -> torch.Tensor:
    if isinstance(output, Mapping) and "logits" in output:
        output = output["logits"]
    elif not isinstance(output, torch.Tensor) and isinstance(
        getattr(output, "logits", None), torch.Tensor
    ):
        output = output.logits
    if not isinstance(output, torch.Tensor) or output.ndim != 2 or output.shape[0] != batch:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise InputError(f"the model must return logits [batch, C]; it returned {shape}")
    return output.detach().float().cpu()


def _model_device_dtype(model: torch.nn.Module) -> tuple[torch.device, torch.dtype | None]:
    for tensor in [*model.parameters(), *model.buffers()]:
        dtype = tensor.dtype if tensor.is_floating_point() else None
        return tensor.device, dtype
    return torch.device("cpu"), None


def _last_linear(model: torch.nn.Module) -> tuple[str, torch.nn.Linear]:
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    if not linears:
        raise InputError(
            "the model has no nn.Linear layer, so there is no default layer; pass layer=<name> "
            "and head=<module mapping it to the logits>"
        )
    return linears[-1]


def _unknown_layer_message(layer: str, names: list[str]) -> str:
    names = [n for n in names if n]
    close = difflib.get_close_matches(layer, names, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    shown = ", ".join(names[:40]) + (", ..." if len(names) > 40 else "")
    return f"the model has no layer named {layer!r}.{hint} Available layers: {shown}"


def _linear_head(linear: torch.nn.Linear) -> LinearHead:
    weight = _copied(linear.weight)
    bias = np.zeros(weight.shape[0], np.float32) if linear.bias is None else _copied(linear.bias)
    return LinearHead(weight, bias)


def _copied(parameter: torch.Tensor) -> np.ndarray:
    """A float32 numpy copy made in torch: a numpy view of the parameter itself would pin its
    storage (FSDP frees an unsharded parameter's storage after the forward)."""
    return parameter.detach().to("cpu", torch.float32, copy=True).numpy()


def _check_head_fits(head: Head, features: np.ndarray, logits: np.ndarray, layer: str) -> None:
    """The head must map this layer's [N, D] features to [N, C] logits."""
    d, c = features.shape[1], logits.shape[1]
    if isinstance(head, LinearHead):
        if head.in_features != d:
            raise InputError(
                f"the head expects {head.in_features} input features but layer {layer!r} gives {d}"
            )
        return
    try:
        out = head(features[:2])
    except Exception as exc:
        raise InputError(
            f"the head cannot be applied to layer {layer!r}'s flattened features [N, {d}]: {exc}"
        ) from exc
    if out.ndim != 2 or out.shape[1] != c:
        raise InputError(
            f"the head maps layer {layer!r}'s features to shape {tuple(out.shape)}, but the "
            f"model's logits have {c} classes"
        )


def _as_float_array(name: str, value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be a numeric array: {exc}") from exc
