"""A small 1-D ResNet for fixed-length, multi-lead ECG windows: [batch, leads, samples] -> class logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput


def _norm(channels: int) -> nn.GroupNorm:
    # GroupNorm, not BatchNorm: no running statistics, so a frozen base stays frozen under LoRA and
    # tiny clinical batches do not skew it.
    return nn.GroupNorm(min(8, channels), channels)


class ResBlock1d(nn.Module):
    """conv-norm-relu-conv-norm plus a strided 1x1 shortcut; halves the time axis."""

    def __init__(self, cin: int, cout: int, kernel: int = 7) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(cin, cout, kernel, stride=2, padding=kernel // 2, bias=False)
        self.norm1 = _norm(cout)
        self.conv2 = nn.Conv1d(cout, cout, kernel, padding=kernel // 2, bias=False)
        self.norm2 = _norm(cout)
        self.skip = nn.Conv1d(cin, cout, 1, stride=2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(out)) + self.skip(x))


class EcgNet(nn.Module):
    """Stem, `depth` residual blocks (channels double each block), global average pool, MLP head.

    Each lead of each record is standardised inside `forward`, so serving needs no separate preprocessing
    and amplitude units (mV or ADC counts) do not matter.
    """

    main_input_name = "signals"  # read by Trainer for its bookkeeping

    def __init__(self, leads: int, num_labels: int, width: int = 16, depth: int = 3, dropout: float = 0.1) -> None:
        super().__init__()
        # Not `config`: Trainer and peft take a `.config` attribute for a Hugging Face PretrainedConfig.
        self.hparams = {"leads": leads, "num_labels": num_labels, "width": width, "depth": depth, "dropout": dropout}
        self.stem = nn.Conv1d(leads, width, 15, stride=2, padding=7, bias=False)
        self.stem_norm = _norm(width)
        chans = [width * 2 ** i for i in range(depth + 1)]
        self.blocks = nn.Sequential(*(ResBlock1d(chans[i], chans[i + 1]) for i in range(depth)))
        self.embed = nn.Linear(chans[-1], chans[-1])  # a Linear in the body, so adalora/ia3 have a target
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(chans[-1], num_labels)

    def reset_head(self, num_labels: int) -> None:
        """A fresh classifier for a new label set, keeping the learned features."""
        self.head = nn.Linear(self.head.in_features, num_labels)
        self.hparams["num_labels"] = num_labels

    def features(self, signals: torch.Tensor) -> torch.Tensor:
        x = signals.float()
        x = (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + 1e-6)
        x = F.relu(self.stem_norm(self.stem(x)))
        x = self.blocks(x).mean(-1)
        return self.dropout(F.relu(self.embed(x)))

    def forward(self, signals: torch.Tensor, labels: torch.Tensor | None = None) -> SequenceClassifierOutput:
        logits = self.head(self.features(signals))
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        # A ModelOutput with .loss, so Trainer and AdaLoRA's orthogonality penalty treat it like an HF model.
        return SequenceClassifierOutput(loss=loss, logits=logits)
