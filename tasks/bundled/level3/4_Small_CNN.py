import torch
import torch.nn as nn


class Model(nn.Module):
    """A small image classifier: two (conv3x3 -> ReLU -> maxpool2) stages and a linear head."""

    def __init__(self, in_channels: int, channels1: int, channels2: int, image_size: int, num_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels1, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(channels1, channels2, kernel_size=3, padding=1)
        self.pool = nn.MaxPool2d(2)
        feat = image_size // 4
        self.fc = nn.Linear(channels2 * feat * feat, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        return self.fc(torch.flatten(x, 1))


batch_size = 128
in_channels = 3
channels1 = 32
channels2 = 64
image_size = 64
num_classes = 1000


def get_inputs():
    return [torch.randn(batch_size, in_channels, image_size, image_size)]


def get_init_inputs():
    return [in_channels, channels1, channels2, image_size, num_classes]


SIZES = {"small": {"batch_size": 4, "channels1": 8, "channels2": 16, "image_size": 16, "num_classes": 16}}
