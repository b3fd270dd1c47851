"""What both exporters (ONNX, AOTInductor) trace: the classifier wrapped to take positional int64 inputs
and return only the logits, and example inputs of two lengths (so the graph sees padding)."""

from __future__ import annotations

import inspect
from typing import Any

# Two texts of different lengths: the traced graph must see padding to keep the mask arithmetic general.
EXPORT_SAMPLE = ["a short tweet", "a somewhat longer example tweet about a delayed flight and a lost bag"]


def logits_only(model: Any, input_names: list[str], as_float: bool = False) -> Any:
    """The classifier as a module taking positional int64 inputs and returning only the logits
    (``as_float``: cast to fp32, for bf16 models)."""
    import torch  # torch is heavy (seconds): imported only when this runs

    class LogitsOnly(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            logits = self.model(**dict(zip(input_names, inputs, strict=True))).logits
            return logits.float() if as_float else logits

    return LogitsOnly()


def example_inputs(tokenizer: Any, model: Any) -> tuple[list[str], tuple[Any, ...]]:
    """The tokenizer outputs ``model.forward`` accepts, in tokenizer order, and ``EXPORT_SAMPLE``
    tokenized into them: what both exporters trace with."""
    accepted = set(inspect.signature(model.forward).parameters)
    input_names = [name for name in tokenizer.model_input_names if name in accepted]
    encoded = tokenizer(EXPORT_SAMPLE, padding=True, return_tensors="pt")
    return input_names, tuple(encoded[name] for name in input_names)
