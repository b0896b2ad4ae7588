"""Mixed precision: bf16 autocast where the hardware has it, fp16 + dynamic loss scale on CUDA.

Master weights stay fp32 always; autocast only changes the dtype of activations inside the forward.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch

from landiff.errors import UserError
from landiff.options import native_bf16

MIN_LOSS_SCALE = 1.0  # floor for the fp16 loss scale: below it a scale only hides a real divergence


def resolve_precision(requested: str, device: torch.device) -> str:
    """Maps ``auto`` to bf16 / fp16 / fp32 for ``device`` and checks explicit requests."""
    if requested == "auto":
        if device.type == "cuda":
            return "bf16" if native_bf16(device) else "fp16"
        return "bf16" if native_bf16(device) else "fp32"
    if requested == "fp16" and device.type != "cuda":
        raise UserError("--precision fp16 needs a CUDA device; use bf16 or fp32 on CPU")
    return requested


@dataclass
class Precision:
    """The autocast context and the (optional) fp16 gradient scaler for one run."""

    mode: str
    device: torch.device
    scaler: torch.amp.GradScaler | None = None

    @classmethod
    def create(cls, requested: str, device: torch.device) -> Precision:
        mode = resolve_precision(requested, device)
        scaler = torch.amp.GradScaler("cuda") if mode == "fp16" else None
        return cls(mode=mode, device=device, scaler=scaler)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.mode == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.mode == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        return self.scaler.scale(loss) if self.scaler is not None else loss

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()
        if self.scaler.get_scale() < MIN_LOSS_SCALE:
            self.scaler.update(MIN_LOSS_SCALE)

    def state_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "scaler": self.scaler.state_dict() if self.scaler is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
